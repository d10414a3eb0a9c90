"""What the Slack adapter keeps in the store, as protocols it owns: exactly what slack/* reads and writes there.

The store's classes (jitbot.store) fit them as they are, and jitbot.runtime hands them in, so that no module here
imports the store: `SlackStore` is what `Store` composes, each part the concern of one of its classes.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import timedelta
from typing import Any, Protocol

from jitbot.core.domain import AccessRequest
from jitbot.core.events import AuditEvent


class MessageState(Protocol):
    """Each request's Slack message references, digests, announcements held for a channel, alerts, App Home viewers
    (jitbot.store.slack_state)."""

    def slack_refs(self, request_id: str) -> dict[str, str]: ...

    def set_slack_refs(self, request_id: str, **refs: str) -> None: ...

    def drop_slack_refs(self, request_id: str, *names: str) -> None: ...

    def unannounced(self, resources: set[str], scan: int) -> list[AccessRequest]:
        """Pending requests of `resources` whose approval message is not posted yet, oldest first."""

    def digest(self, channel: str, ts: str) -> dict[str, int]:
        """The requests the digest at (`channel`, `ts`) carries, each with the version of it the message shows."""

    def show_digest(self, channel: str, ts: str, shown: dict[str, int]) -> None: ...

    def block_announcement(self, request_id: str, channel: str) -> bool:
        """The approval message waits for `channel` to be fixed; True the first time."""

    def unblock_channel(self, channel: str) -> list[str]:
        """The requests waiting for `channel`, forgotten as waiting: the caller announces them now."""

    def claim_slack_alert(self, channel: str, code: str, every: timedelta) -> bool: ...

    def home_viewers(self) -> set[str]: ...

    def add_home_viewer(self, user: str) -> None: ...


class RequestReader(Protocol):
    """The requests, read (jitbot.store.requests)."""

    def get(self, request_id: str) -> AccessRequest: ...

    def many(self, request_ids: list[str]) -> list[AccessRequest]: ...

    def undecided(self, limit: int) -> list[AccessRequest]: ...

    def open_requests_of(self, user: str) -> list[AccessRequest]: ...


class Deliveries(Protocol):
    """Slack's deliveries (trigger ids) seen, and the replies given to them (jitbot.store.deliveries)."""

    def first_delivery(self, delivery: str) -> bool:
        """True the first time the delivery is seen within the replay window."""

    def first_command(self, delivery: str, user: str) -> tuple[bool, dict[str, str] | None]:
        """first_delivery of a command, and what Slack said of the person who sent it (if kept), at once."""

    def forget_delivery(self, delivery: str) -> None: ...

    def save_delivery_reply(self, delivery: str, reply: str, pipe: Any = None) -> None:
        """The answer to the first delivery; on `pipe`, with whatever else it writes (a request and its reply)."""

    def delivery_reply(self, delivery: str, wait: timedelta) -> str | None:
        """The answer given to the first delivery, waiting up to `wait` while it is being worked out."""


class Turns(Protocol):
    """Exclusive sections across processes (jitbot.store.locks)."""

    def lock(self, name: str, ttl: timedelta) -> AbstractContextManager[bool]:
        """Yields False if someone else holds it."""

    def serial(self, name: str, ttl: timedelta, wait: timedelta) -> AbstractContextManager[None]:
        """Waits up to `wait` for the holder; TimeoutError if it never came free."""


class ReviewReader(Protocol):
    def review(self, request_id: str) -> dict[str, str]: ...


class FailureReader(Protocol):
    def revocation_failures(self, request_id: str) -> dict[str, str]: ...


class SlackErrors(Protocol):
    """The metrics sink's count of Slack's refusals (jitbot.store.counters)."""

    def count_slack_error(self, method: str, code: str) -> None: ...


class AuditRecord(Protocol):
    def record(self, event: AuditEvent) -> None: ...


class SlackStore(Protocol):
    """The store as the Slack adapter uses it: its parts by the names `Store` gives them."""

    @property
    def slack(self) -> MessageState: ...

    @property
    def requests(self) -> RequestReader: ...

    @property
    def deliveries(self) -> Deliveries: ...

    @property
    def locks(self) -> Turns: ...

    @property
    def reviews(self) -> ReviewReader: ...

    @property
    def failures(self) -> FailureReader: ...

    @property
    def metrics(self) -> SlackErrors: ...

    @property
    def chain(self) -> AuditRecord: ...


class TokenBuckets(Protocol):
    """Slack's rate-limit token buckets, shared by every worker (jitbot.store.pacing)."""

    def take(self, buckets: Sequence[tuple[str, float, float, float]], now: float, urgent: bool) -> float:
        """One try at every bucket (name, tokens per second, burst, reserve): 0 if a token was taken from each,
        else the seconds until each would have one, nothing taken."""
