"""A provider that touches no cloud: for tests and for trying jitbot out. Shipped, like httpx's MockTransport."""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Sequence
from datetime import datetime

from jitbot.core.catalog import Resource
from jitbot.core.domain import AccessRequest
from jitbot.core.errors import ProviderError
from jitbot.core.redaction import Credentials
from jitbot.providers.base import Ending, Held, Issued, Outcome
from jitbot.providers.fake_settings import FakeSettings
from jitbot.providers.limits import Limits, Throttle


class FakeProvider:
    """Issues random credentials and remembers what is live (in this process).

    `fail_next` makes the next calls fail (in-process tests). Across processes, the resource's settings do:
    `delay` (seconds per call) and `fail_when_exists` (a path: while that file exists, every call fails
    with a retryable error, as a cloud outage would). A resource's `policy` setting names the shared policy its
    revocations write (as a GCP project's): grants of one policy are revoked in one write and read back in one
    read; without it, each grant is its own write (as an Azure PIM removal).

    `limits` (benchmarks): each call takes its lognormal latency, and each policy (else each resource) takes
    `writes_per_s` writes, a write beyond answered as a cloud throttles (`throttle.refused` counts them, and
    `throttle.writes` the writes that went through).
    """

    merges_ends = False

    def __init__(self, limits: Limits | None = None) -> None:
        self.live: set[str] = set()
        self.calls: list[tuple[str, str]] = []
        self.fail_next: list[Exception] = []  # a ProviderError as a cloud refuses; any other as a buggy provider
        self.throttle = Throttle(limits) if limits else None

    def grant(self, request: AccessRequest, resource: Resource, now: datetime) -> Issued:
        self._call("grant", request, resource)
        self.live.add(request.id)
        secret = Credentials({"FAKE_TOKEN": "fake-" + secrets.token_urlsafe(24)})
        return Issued({"session": f"fake-{request.id}"}, secret)

    def extend(self, request: AccessRequest, resource: Resource, now: datetime) -> Issued:
        return self.grant(request, resource, now)  # a fresh token, as a cloud without extension would give

    def revoke(self, request: AccessRequest, resource: Resource, now: datetime) -> None:
        self._call("revoke", request, resource, write=True)
        self.live.discard(request.id)

    def shared_policy(self, request: AccessRequest, resource: Resource) -> str:
        return _knobs(resource).policy or request.id

    def revoke_many(self, grants: Sequence[Ending], now: datetime) -> dict[str, Outcome]:
        """One write takes every grant out of their policy, one read shows each gone."""
        requests, resource = [request for request, _ in grants], grants[0][1]
        try:
            self._call("revoke", requests, resource, write=True)
            self.live.difference_update(request.id for request in requests)
            self._call("verify", requests, resource)
        except ProviderError as error:
            return dict.fromkeys((request.id for request in requests), error)
        return {request.id: self.read_back(request) for request in requests}

    def check(self, resource: Resource) -> str:
        self._call("check", None, resource)
        return "ok: fake cloud"

    def verify_revoked(self, request: AccessRequest, resource: Resource, now: datetime) -> str:
        self._call("verify", request, resource)
        outcome = self.read_back(request)
        if isinstance(outcome, ProviderError):
            raise outcome
        return outcome

    def read_back(self, request: AccessRequest) -> Outcome:
        """What a read of the fake cloud shows of `request`'s access (the read itself is the caller's call)."""
        if request.id in self.live:
            return ProviderError(f"fake cloud still holds {request.id}", retryable=True)
        return "fake cloud: not live"

    def held(self, resource: Resource, now: datetime) -> list[Held]:
        """Nothing: the fake cloud lives in each process's memory, so no process can see another's grants."""
        self._call("held", None, resource)
        return []

    def remove(self, held: Held, resource: Resource, now: datetime) -> bool:
        """Nothing to remove: `held` finds nothing."""
        self._call("remove", None, resource)
        return False

    def _call(
        self, operation: str, about: AccessRequest | list[AccessRequest] | None, resource: Resource, write: bool = False
    ) -> None:
        """One call to the fake cloud, about one request, several (one write or read for all), or none."""
        ids = [request.id for request in (about if isinstance(about, list) else [about])] if about else ["-"]
        self.calls.extend((operation, request_id) for request_id in ids)
        knobs = _knobs(resource)
        time.sleep(knobs.delay)
        if self.fail_next:
            raise self.fail_next.pop(0)
        outage = knobs.fail_when_exists
        if outage and os.path.exists(outage):
            raise ProviderError(f"fake cloud outage: {operation} refused while {outage} exists", retryable=True)
        if self.throttle:
            _limit(self.throttle, operation, resource, write)


def _limit(throttle: Throttle, operation: str, resource: Resource, write: bool) -> None:
    """The latency of a call, and for a write its policy's rate: a write beyond it is refused, retryable."""
    throttle.wait()
    policy = _knobs(resource).policy or resource.name
    wait_s = throttle.take(policy) if write else None
    if wait_s is not None:
        raise ProviderError(
            f"fake cloud throttled {operation} on {policy}: HTTP 429, retry in {wait_s:.1f}s",
            retryable=True,
            throttled=True,
        )


def _knobs(resource: Resource) -> FakeSettings:
    """The resource's fake settings; none for a resource of a real cloud, which tests serve with the fake too."""
    return resource.settings if isinstance(resource.settings, FakeSettings) else FakeSettings()
