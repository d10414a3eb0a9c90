"""The audit trail's vocabulary: every event name jitbot writes, the record each step returns, and jitbot's own actor.

Each value is stored as spelled here, in the hash-chained stream, and read back by the report and the metrics: a value
changed would split one event in two on the trail, so values never change (tests/unit/test_events.py pins them).
Each request move names its event as its value (`domain.Action`), each review move likewise (`review.ReviewAction`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

AUTO = "jitbot"  # the actor of what jitbot or its policy does on its own


class EventName(StrEnum):
    REQUESTED = "requested"
    REFUSED = "refused"  # an attempt policy refused; the request does not change
    ENDORSED = "endorsed"
    APPROVED = "approved"
    DENIED = "denied"
    GRANTED = "granted"
    FAILED = "failed"
    EXPIRED = "expired"
    REVOKED = "revoked"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed out"
    ESCALATED = "escalated"
    BREAK_GLASS = "break-glass"
    END_REQUESTED = "end requested"
    EXTENSION_REQUESTED = "extension requested"
    EXTENSION_ENDORSED = "extension endorsed"
    EXTENDED = "extended"
    EXTENSION_DENIED = "extension denied"
    EXTENSION_TIMED_OUT = "extension timed out"
    RENEWED = "renewed"
    REVIEW_OPENED = "review opened"
    REVIEW_REALERTED = "review re-alerted"
    REVIEW_ACKNOWLEDGED = "review acknowledged"
    REVIEW_FLAGGED = "review flagged"
    REVOCATION_DEFERRED = "revocation deferred"  # the cloud said when it allows the revocation: it waits till then
    REVOCATION_FAILED = "revocation failed"
    RENEWAL_FAILED = "renewal failed"
    # the drift scan's records: access jitbot made that no live grant explains, taken away or left (the cloud refused)
    ORPHAN_REMOVED = "orphan removed"
    ORPHAN_KEPT = "orphan not removed"
    ANNOUNCEMENT_BLOCKED = "announcement blocked"  # Slack refused the approval message for a reason an admin must fix


@dataclass(frozen=True)
class AuditEvent:
    event: EventName
    request_id: str
    actor: str
    resource: str
    at: datetime
    status: str
    detail: dict[str, Any] = field(default_factory=dict)
    provider: str = ""


def plain(value: Any) -> Any:
    """A detail value as the trail keeps it (canonical JSON): times in ISO 8601, durations in seconds."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return int(value.total_seconds())
    if isinstance(value, tuple):
        return list(value)
    return value
