"""The break-glass review: a second small table beside the request's, each move returning its audit event.

A break-glass grant is approved by the person who used it, so someone else reviews it after the fact. The review
is kept in its own hash beside the request (store.review_key), not in the request's record: every move is of an open
review, which the store checks as it writes one (a compare-and-set on the status; a re-alert only while it is due).
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum, StrEnum, unique

from jitbot.core.domain import AccessRequest
from jitbot.core.events import AUTO, AuditEvent, EventName


class ReviewStatus(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    FLAGGED = "flagged"

    @property
    def is_final(self) -> bool:
        return self not in REVIEW_TRANSITIONS


@unique  # an event names one move: the trail must say which it records
class ReviewAction(Enum):
    """A move of an open review; its value is the event that records it."""

    REALERT = EventName.REVIEW_REALERTED  # still open at its time: security is alerted again
    ACKNOWLEDGE = EventName.REVIEW_ACKNOWLEDGED
    FLAG = EventName.REVIEW_FLAGGED


REVIEW_TRANSITIONS: dict[ReviewStatus, dict[ReviewAction, ReviewStatus]] = {
    ReviewStatus.OPEN: {
        ReviewAction.REALERT: ReviewStatus.OPEN,
        ReviewAction.ACKNOWLEDGE: ReviewStatus.ACKNOWLEDGED,
        ReviewAction.FLAG: ReviewStatus.FLAGGED,
    },
}


def open_review(request: AccessRequest, now: datetime) -> AuditEvent:
    """A break-glass use opens its review as it is approved, by jitbot."""
    status = ReviewStatus.OPEN
    return AuditEvent(EventName.REVIEW_OPENED, request.id, AUTO, request.resource, now, status, {}, request.provider)


def realert_review(request: AccessRequest, alerts: int, now: datetime) -> AuditEvent:
    """Still open when its time came: `alerts` re-alerts so far. Recorded without the provider, as it always was."""
    return _move(request, ReviewAction.REALERT, AUTO, now, {"alerts": alerts}, provider="")


def close_review(request: AccessRequest, reviewer: str, acknowledge: bool, now: datetime) -> AuditEvent:
    """Someone other than its user acknowledges the use, or flags it (policy says who: Deciding.review)."""
    action = ReviewAction.ACKNOWLEDGE if acknowledge else ReviewAction.FLAG
    return _move(request, action, reviewer, now, {}, request.provider)


def _move(
    request: AccessRequest, action: ReviewAction, actor: str, now: datetime, detail: dict[str, int], provider: str
) -> AuditEvent:
    target = REVIEW_TRANSITIONS[ReviewStatus.OPEN][action]
    return AuditEvent(action.value, request.id, actor, request.resource, now, target, detail, provider)
