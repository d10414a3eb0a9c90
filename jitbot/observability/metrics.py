"""Prometheus metrics kept in Redis, so that every web and worker process (and RQ's job children) adds up.

Counters and the revocation-lag histogram are Redis hashes that any process bumps with HINCRBY; gauges are
read from the store's indexes at scrape time (`jitbot.metrics_collector` turns both into metric families for the
`/metrics` of any web process): no PROMETHEUS_MULTIPROC_DIR, nothing kept per process, nothing lost at a fork.

    jitbot:metrics:counters         events:<event>  provider_errors:<provider>:<retryable|fatal>
                                    slack_errors:<method>:<code>  unverified:<reason> (bumped by the store)
    jitbot:metrics:revocation_lag   one cumulative count per bucket bound (`le`), `+Inf`, and `sum`

This module says what the metrics are; the store writes them (jitbot.store.counters: audit events in the audited
write itself, so exactly once per audit record; everything else best effort, through `store.metrics`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Protocol

from jitbot.core.catalog import Resource
from jitbot.core.domain import AccessRequest, Action
from jitbot.core.errors import ProviderError
from jitbot.core.events import EventName
from jitbot.providers.base import Ending, Held, Issued, Outcome, Provider

LAG_BOUNDS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)  # seconds past the grant's end
LAG_BUCKETS = (*(str(bound) for bound in LAG_BOUNDS), "+Inf")  # the `le` labels, also the hash's fields
OVERDUE_S = 30  # the reconciler sweeps every ~10 s with 5 s grace: later is a fault
KNOWN_EVENTS = (
    EventName.REQUESTED,
    EventName.REFUSED,
    *(action.value for action in Action),
    EventName.ORPHAN_REMOVED,
    EventName.ORPHAN_KEPT,
)  # shown at 0 before they first happen
COUNTER_FAMILIES = {  # field prefix → (metric name, help, label names)
    "events": ("jitbot_events", "Audit records written, by event (the outcome of each step).", ("event",)),
    "provider_errors": (
        "jitbot_provider_errors",
        "Cloud calls (grant, revoke) that failed, by provider and kind (retryable or fatal).",
        ("provider", "kind"),
    ),
    "unverified": (
        "jitbot_unverified_requests",
        "Requests to /slack/events refused before they could be verified (unsigned, stale, forged, too large), by"
        " reason: counted exactly, audited at most once a minute per reason.",
        ("reason",),
    ),
    "slack_errors": (
        "jitbot_slack_api_errors",
        "Slack Web API calls that failed after retries, by method and Slack's error code.",
        ("method", "error"),
    ),
}


class ErrorCounter(Protocol):
    """Where failed cloud calls are counted (jitbot.store.counters.MetricsSink)."""

    def count_provider_error(self, provider: str, retryable: bool) -> None: ...


class CountedProvider:
    """A provider whose failed calls are counted by provider and kind; everything else passes through."""

    def __init__(self, inner: Provider, sink: ErrorCounter, name: str) -> None:
        self.inner, self.sink, self.name = inner, sink, name
        self.merges_ends = inner.merges_ends

    def grant(self, request: AccessRequest, resource: Resource, now: datetime) -> Issued:
        with self._counting():
            return self.inner.grant(request, resource, now)

    def extend(self, request: AccessRequest, resource: Resource, now: datetime) -> Issued:
        with self._counting():
            return self.inner.extend(request, resource, now)

    def revoke(self, request: AccessRequest, resource: Resource, now: datetime) -> None:
        with self._counting():
            self.inner.revoke(request, resource, now)

    def shared_policy(self, request: AccessRequest, resource: Resource) -> str:
        return self.inner.shared_policy(request, resource)

    def revoke_many(self, grants: Sequence[Ending], now: datetime) -> dict[str, Outcome]:
        outcomes = self.inner.revoke_many(grants, now)
        for outcome in outcomes.values():
            if isinstance(outcome, ProviderError):
                self.sink.count_provider_error(self.name, outcome.retryable)
        return outcomes

    def check(self, resource: Resource) -> str:
        return self.inner.check(resource)

    def verify_revoked(self, request: AccessRequest, resource: Resource, now: datetime) -> str:
        with self._counting():
            return self.inner.verify_revoked(request, resource, now)

    def held(self, resource: Resource, now: datetime) -> list[Held]:
        with self._counting():
            return self.inner.held(resource, now)

    def remove(self, held: Held, resource: Resource, now: datetime) -> bool:
        with self._counting():
            return self.inner.remove(held, resource, now)

    @contextmanager
    def _counting(self) -> Iterator[None]:
        try:
            yield
        except ProviderError as error:
            self.sink.count_provider_error(self.name, error.retryable)
            raise
