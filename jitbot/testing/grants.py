"""Active grants (and pending requests) loaded through the store's real write path, for benchmarks and tests
at scale.

Each is requested, approved and granted (three audited transitions), as the issue job leaves it: with the role
session's name and when its credentials end. One ended early is then asked to end (End now) at its end, its
credentials outliving it by `outlive`; one that is not ends at its own expiry, its credentials with it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial

from jitbot.core.domain import AccessRequest, Moved, approve_by_policy, end_now, grant, new_request_id, open_request
from jitbot.store import Store

DURATION = timedelta(hours=1)


def load_grants(
    store: Store,
    ends: list[datetime],
    resources: list[str],
    early: Callable[[int], bool] = lambda n: False,
    outlive: timedelta = timedelta(minutes=15),
    requester: str = "",
) -> list[str]:
    """A grant per entry of `ends`, of `resources` in turn, to `requester` (else to 500 people in turn);
    `early(n)` says whether the n-th is ended early."""
    ids, now = [], datetime.now(UTC)
    for n, end in enumerate(ends):
        request = _asked(store, requester or f"U0USER{n % 500}", resources[n % len(resources)], now)
        ended_early = early(n)
        credentials_end = end + outlive if ended_early else end
        handle = {"session_name": f"jit-{request.id}-U0", "credentials_expire_at": credentials_end.isoformat()}
        started = now if ended_early else end - DURATION  # an early end is not due before it is asked
        store.requests.transition(request.id, lambda r: approve_by_policy(r, now))
        store.requests.transition(request.id, partial(_granted, handle=handle, started=started))
        if ended_early:
            store.requests.transition(request.id, partial(_ended_early, at=end))
        ids.append(request.id)
    return ids


def load_pending(store: Store, count: int, resources: list[str], requester: str) -> list[str]:
    """`count` requests of `requester` waiting for approval, of `resources` in turn (nobody is told of them)."""
    now = datetime.now(UTC)
    return [_asked(store, requester, resources[n % len(resources)], now).id for n in range(count)]


def _asked(store: Store, requester: str, resource: str, now: datetime) -> AccessRequest:
    while True:  # a taken id (1 in ~10^9 a draw, but 10^5 draws) is drawn again, as the service does
        request, event = open_request(new_request_id(), requester, resource, DURATION, "load", now)
        if store.requests.create(request, event, pending_until=now + DURATION):
            return request


def _granted(request: AccessRequest, handle: dict[str, str], started: datetime) -> Moved:
    return grant(request, handle, started)


def _ended_early(request: AccessRequest, at: datetime) -> Moved:
    return end_now(request, "U0BOB", at)
