"""What the use cases keep, by concern: the ports of the store. `Repository` is what a use case is given; the Redis
store (jitbot.store.Store) satisfies it as it is, one attribute per concern, and no use case sees a key or a client.

A write that changes a request's state writes its audit record with it, whole or not at all (`transition`,
`create`, the reviews'); `AuditLog.record` is for a record that changes no state (a refusal, an orphan found).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Any, Protocol

from jitbot.core.domain import AccessRequest, Change, Moved
from jitbot.core.events import AuditEvent

Writes = Callable[[Any], None]  # queues more writes on the pipeline of an audited write (recorded, never executed)


class RequestRepository(Protocol):
    """Access requests; each write also places the request in the indexes that schedule what happens to it next."""

    def create(
        self, request: AccessRequest, event: AuditEvent, pending_until: datetime, also: Writes | None = None
    ) -> bool:
        """A new request with its record, and whatever `also` queues, at once; False (nothing written) if its id
        is taken."""

    def get(self, request_id: str) -> AccessRequest:
        """The stored request; core.errors.NotFound if there is none."""

    def transition(self, request_id: str, change: Change) -> Moved:
        """`change` applied to the fresh state and written with its record; applied again if another writer came
        first."""

    def many(self, request_ids: list[str]) -> list[AccessRequest]:
        """The requests that still exist, in the order asked."""

    def open_requests_of(self, user: str) -> list[AccessRequest]: ...

    def all_open(self, limit: int) -> list[AccessRequest]:
        """Pending requests and live grants of everyone, oldest first, at most `limit` of each."""

    def retry_revocation_at(self, request_id: str, when: datetime) -> None:
        """Revoking the grant is tried again at `when` (by the sweeper, or the reconciler)."""

    def set_timer(self, kind: str, request_id: str, when: datetime) -> None:
        """Move a timer the request has set (a state change sets and clears them)."""

    def clear_timer(self, kind: str, request_id: str) -> None: ...


class Schedule(Protocol):
    """What is due, each oldest first: what the reconciler re-drives."""

    def overdue(self, before: datetime) -> list[str]:
        """Grants (and approvals never issued) whose end came before `before`."""

    def due_timers(self, now: datetime) -> list[tuple[str, str]]:
        """The policies' timers whose time has come, as (kind, request id)."""

    def timed_out(self, now: datetime) -> list[str]:
        """Pending requests nobody decided on in time."""

    def due_reviews(self, now: datetime) -> list[str]:
        """Open break-glass reviews whose next alert is due."""


class AuditLog(Protocol):
    def record(self, event: AuditEvent) -> None:
        """An audit record with no change of state (a refused click, an orphan found in a cloud)."""


class ReviewRepository(Protocol):
    """Break-glass reviews, open from the grant until someone other than its user closes them."""

    def open_review(self, event: AuditEvent, due: datetime) -> None:
        """Open the review `event` records; its first re-alert is at `due`."""

    def close_review(self, event: AuditEvent) -> bool:
        """Close an open review with `event`'s outcome; False (nothing written) if it was closed already."""

    def next_review_alert(self, request_id: str, due: datetime) -> int:
        """One more alert counted, the next one scheduled at `due`; how many were sent."""


class RevocationFailures(Protocol):
    """The failed attempts to revoke one grant."""

    def note_revocation_failure(self, request_id: str, error: str, now: datetime) -> int:
        """One more failed attempt (its error kept); how many in a row."""

    def revocation_failures(self, request_id: str) -> dict[str, str]: ...

    def claim_revocation_alert(self, request_id: str) -> bool:
        """True once per failing revocation: the one caller that raises the alert."""

    def close_revocation_failures(self, request_id: str) -> None:
        """Revoked at last: what failed is kept a while, for the alert's resolution."""


class Deliveries(Protocol):
    """Slack deliveries seen, and what the directory said of people and groups, kept a short while."""

    def first_delivery(self, delivery: str) -> bool:
        """True the first time a delivery id is seen within the replay window."""

    def cached_person(self, user: str) -> dict[str, str] | None: ...

    def cache_person(self, user: str, facts: dict[str, str]) -> None: ...

    def cached_members(self, group: str) -> frozenset[str] | None: ...

    def cache_members(self, group: str, members: frozenset[str]) -> None: ...


class Locks(Protocol):
    def lock(self, name: str, ttl: timedelta) -> AbstractContextManager[bool]:
        """An exclusive section across processes, held at most `ttl`; yields False if someone else holds it."""

    def save_drift(self, orphaned: dict[str, int], at: datetime, findings: str) -> str:
        """A drift scan's orphans left, by provider, and the fingerprint of its findings; the previous scan's."""


class Metrics(Protocol):
    """Best-effort counters: a metric never breaks what it measures."""

    def count_provider_error(self, provider: str, retryable: bool) -> None: ...

    def observe_revocation_lag(self, seconds: float) -> None:
        """How long after its end a grant was cut and recorded."""


class Repository(Protocol):
    """Everything the use cases keep, one concern each."""

    @property
    def requests(self) -> RequestRepository: ...

    @property
    def schedule(self) -> Schedule: ...

    @property
    def chain(self) -> AuditLog: ...

    @property
    def reviews(self) -> ReviewRepository: ...

    @property
    def failures(self) -> RevocationFailures: ...

    @property
    def deliveries(self) -> Deliveries: ...

    @property
    def locks(self) -> Locks: ...

    @property
    def metrics(self) -> Metrics: ...
