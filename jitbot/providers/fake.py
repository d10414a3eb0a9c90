"""A provider that touches no cloud: for tests and for trying jitbot out. Shipped, like httpx's MockTransport."""

from __future__ import annotations

import os
import secrets
import time
from datetime import datetime

from jitbot.catalog import Resource
from jitbot.domain import AccessRequest
from jitbot.errors import ProviderError
from jitbot.providers.base import Held, Issued
from jitbot.redaction import Credentials


class FakeProvider:
    """Issues random credentials and remembers what is live (in this process).

    `fail_next` makes the next calls fail (in-process tests). Across processes, the resource's settings do:
    `delay` (seconds per call) and `fail_when_exists` (a path: while that file exists, every call fails
    with a retryable error, as a cloud outage would).
    """

    def __init__(self) -> None:
        self.live: set[str] = set()
        self.calls: list[tuple[str, str]] = []
        self.fail_next: list[ProviderError] = []

    def grant(self, request: AccessRequest, resource: Resource, now: datetime) -> Issued:
        self._call("grant", request, resource)
        self.live.add(request.id)
        secret = Credentials({"FAKE_TOKEN": "fake-" + secrets.token_urlsafe(24)})
        return Issued({"session": f"fake-{request.id}"}, secret)

    def extend(self, request: AccessRequest, resource: Resource, now: datetime) -> Issued:
        return self.grant(request, resource, now)  # a fresh token, as a cloud without extension would give

    def revoke(self, request: AccessRequest, resource: Resource, now: datetime) -> None:
        self._call("revoke", request, resource)
        self.live.discard(request.id)

    def check(self, resource: Resource) -> str:
        self._call("check", None, resource)
        return "ok: fake cloud"

    def verify_revoked(self, request: AccessRequest, resource: Resource, now: datetime) -> str:
        self._call("verify", request, resource)
        if request.id in self.live:
            raise ProviderError(f"fake cloud still holds {request.id}", retryable=True)
        return "fake cloud: not live"

    def held(self, resource: Resource, now: datetime) -> list[Held]:
        """Nothing: the fake cloud lives in each process's memory, so no process can see another's grants."""
        self._call("held", None, resource)
        return []

    def remove(self, held: Held, resource: Resource, now: datetime) -> bool:
        """Nothing to remove: `held` finds nothing."""
        self._call("remove", None, resource)
        return False

    def _call(self, operation: str, request: AccessRequest | None, resource: Resource) -> None:
        self.calls.append((operation, request.id if request else "-"))
        time.sleep(resource.settings.get("delay", 0))
        if self.fail_next:
            raise self.fail_next.pop(0)
        outage = resource.settings.get("fail_when_exists")
        if outage and os.path.exists(outage):
            raise ProviderError(f"fake cloud outage: {operation} refused while {outage} exists", retryable=True)
