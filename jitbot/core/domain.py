"""Access requests and their lifecycle: one transition table, and a named function for each move.

Each move (`approve`, `grant`, `end_now`, …) sets its own fields and returns the audit event that describes it, so a
change and its record cannot part; all go through the private `_apply`, which refuses what the table does not allow.
The break-glass review's smaller table is beside it, in jitbot.review. Times are timezone-aware UTC, passed in.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import Enum, StrEnum, unique
from typing import Any, TypeAlias

from jitbot.core.errors import InvalidTransition, TimedOut
from jitbot.core.events import AUTO, AuditEvent, EventName, plain

ID_ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"  # no 0/o, 1/l/i: ids are read aloud and typed


class Status(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    ACTIVE = "active"
    DENIED = "denied"
    FAILED = "failed"
    EXPIRED = "expired"
    REVOKED = "revoked"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self not in TRANSITIONS


@unique  # an event names one action: the trail must say which move it records
class Action(Enum):
    """A move of the table; its value is the event that records it."""

    ENDORSE = EventName.ENDORSED  # one approval of several still needed
    APPROVE = EventName.APPROVED
    DENY = EventName.DENIED
    GRANT = EventName.GRANTED
    FAIL = EventName.FAILED
    EXPIRE = EventName.EXPIRED
    REVOKE = EventName.REVOKED
    CANCEL = EventName.CANCELLED
    TIME_OUT = EventName.TIMED_OUT  # nobody decided in time
    ESCALATE = EventName.ESCALATED  # nobody decided in time: announced to a second set of approvers
    BREAK_GLASS = EventName.BREAK_GLASS  # approved without anyone, reviewed after the fact
    END_NOW = EventName.END_REQUESTED  # someone asked to end an active grant before its time
    ASK_EXTENSION = EventName.EXTENSION_REQUESTED
    ENDORSE_EXTENSION = EventName.EXTENSION_ENDORSED
    EXTEND = EventName.EXTENDED
    DENY_EXTENSION = EventName.EXTENSION_DENIED
    TIME_OUT_EXTENSION = EventName.EXTENSION_TIMED_OUT  # nobody decided the extension in time: the grant runs on
    RENEW = EventName.RENEWED  # the cloud's access was brought up to an extended expiry


TRANSITIONS: dict[Status, dict[Action, Status]] = {
    Status.PENDING: {
        Action.ENDORSE: Status.PENDING,
        Action.APPROVE: Status.APPROVED,
        Action.DENY: Status.DENIED,
        Action.CANCEL: Status.CANCELLED,
        Action.TIME_OUT: Status.EXPIRED,
        Action.ESCALATE: Status.PENDING,
        Action.BREAK_GLASS: Status.APPROVED,
    },
    Status.APPROVED: {Action.GRANT: Status.ACTIVE, Action.FAIL: Status.FAILED},
    Status.ACTIVE: {
        Action.EXPIRE: Status.EXPIRED,
        Action.REVOKE: Status.REVOKED,
        Action.FAIL: Status.FAILED,
        Action.END_NOW: Status.ACTIVE,
        Action.ASK_EXTENSION: Status.ACTIVE,
        Action.ENDORSE_EXTENSION: Status.ACTIVE,
        Action.EXTEND: Status.ACTIVE,
        Action.DENY_EXTENSION: Status.ACTIVE,
        Action.TIME_OUT_EXTENSION: Status.ACTIVE,
        Action.RENEW: Status.ACTIVE,
    },
}
# what approvers decide: refused once the deadline of what they decide on has passed (AccessRequest.deadline)
DECISIONS = frozenset(
    {Action.ENDORSE, Action.APPROVE, Action.DENY, Action.ENDORSE_EXTENSION, Action.EXTEND, Action.DENY_EXTENSION}
)

_NO_EXTENSION: dict[str, Any] = {  # an extension decided or timed out: nothing waits any more
    "extend_by": None,
    "extend_reason": None,
    "extend_approvals": (),
    "extend_decide_by": None,
}
REMIND_BEFORE = timedelta(minutes=5)  # the expiring-soon DM, for grants of at least REMIND_FROM
REMIND_FROM = timedelta(minutes=30)
REFRESH_BEFORE = timedelta(minutes=5)  # credentials the cloud ends before the grant's end are renewed this early
NOT_ISSUED = "not issued in time"  # the note of an approved request whose issue never came before its end


@dataclass(frozen=True)
class AccessRequest:
    id: str
    requester: str
    resource: str
    duration: timedelta
    reason: str
    created_at: datetime
    status: Status = Status.PENDING
    approvals: tuple[str, ...] = ()
    decided_by: str | None = None
    decided_at: datetime | None = None
    granted_at: datetime | None = None
    expires_at: datetime | None = None
    grant: dict[str, str] = field(default_factory=dict)  # the provider's non-secret handle on the grant
    note: str | None = None  # why it failed, or was denied
    version: int = 0
    provider: str = ""  # the catalog's provider when it was asked for; the audit trail keeps it
    identity: dict[str, str] = field(default_factory=dict)  # the cloud principal, resolved at request time
    breakglass: bool = False
    auto_approve_at: datetime | None = None  # approved by policy then, unless someone decided first
    escalate_at: datetime | None = None  # announced to the escalation approvers then, unless decided
    escalated: bool = False
    ending_by: str | None = None  # who asked to end it before its time
    extend_by: timedelta | None = None  # an extension waiting for approval
    extend_reason: str | None = None
    extend_approvals: tuple[str, ...] = ()
    decide_by: datetime | None = None  # the request times out then (pending_timeout); unset on older requests
    extend_decide_by: datetime | None = None  # the extension waiting for approval times out then
    verified_at: datetime | None = None  # when the cloud was read back and showed the access gone
    verified: str | None = None  # what that read-back found

    @property
    def deadline(self) -> datetime | None:
        """When what waits for approvers times out: the request while pending, else the extension it waits for."""
        if self.status is Status.PENDING:
            return self.decide_by
        return self.extend_decide_by if self.extend_by is not None else None

    def time_left(self, now: datetime) -> timedelta:
        return max(self.expires_at - now, timedelta(0)) if self.expires_at else timedelta(0)

    @property
    def granted_for(self) -> timedelta:
        """How long the grant runs in all, extensions included."""
        return self.expires_at - self.granted_at if self.expires_at and self.granted_at else self.duration

    @property
    def refresh_at(self) -> datetime | None:
        """When the cloud's credentials end before the grant does (AWS role chaining issues an hour at most):
        fresh ones are issued a little before, for as long as the grant has left."""
        stamp = self.grant.get("credentials_expire_at")
        if self.status is not Status.ACTIVE or self.ending_by or not self.expires_at or not stamp:
            return None
        credentials_end = datetime.fromisoformat(stamp)
        return credentials_end - REFRESH_BEFORE if credentials_end < self.expires_at else None

    @property
    def remind_at(self) -> datetime | None:
        """When the expiring-soon DM is due: only for active grants long enough to warrant one."""
        if self.status is not Status.ACTIVE or self.ending_by or not self.expires_at:
            return None
        return self.expires_at - REMIND_BEFORE if self.granted_for >= REMIND_FROM else None


Moved: TypeAlias = tuple[AccessRequest, AuditEvent]  # a request after a move, and the audit event that records it
Change: TypeAlias = Callable[[AccessRequest], Moved]  # a move of the stored request, applied to its fresh state


def session_name(request: AccessRequest) -> str:
    """The AWS role session of a request: ties it to the request and the Slack user in CloudTrail."""
    return f"jit-{request.id}-{request.requester}"[:64]


def new_request_id() -> str:
    """`r-` and six characters of ID_ALPHABET, uniformly at random, from one draw (each secrets.choice is a read of
    the system's random source)."""
    draw, chars = secrets.randbelow(len(ID_ALPHABET) ** 6), []
    for _ in range(6):
        draw, index = divmod(draw, len(ID_ALPHABET))
        chars.append(ID_ALPHABET[index])
    return "r-" + "".join(chars)


def open_request(
    request_id: str, requester: str, resource: str, duration: timedelta, reason: str, now: datetime, provider: str = ""
) -> Moved:
    request = AccessRequest(request_id, requester, resource, duration, reason, created_at=now, provider=provider)
    detail = {"duration_s": int(duration.total_seconds()), "reason": reason}
    event = AuditEvent(EventName.REQUESTED, request_id, requester, resource, now, request.status, detail, provider)
    return request, event


def _apply(request: AccessRequest, action: Action, actor: str, now: datetime, **changes: Any) -> Moved:
    """Move `request` by `action`, setting `changes` (its audit detail, but for the provider's handle); raise
    InvalidTransition when its status does not allow it, TimedOut when it is a decision after the deadline."""
    target = TRANSITIONS.get(request.status, {}).get(action)
    if target is None:
        raise InvalidTransition(
            f"Request {request.id} is {request.status}; it can no longer be {action.value}."
        ) from None
    if action in DECISIONS:
        check_in_time(request, now)
    moved = replace(request, status=target, version=request.version + 1, **changes)
    detail = {key: plain(value) for key, value in changes.items() if key != "grant"}
    event = AuditEvent(action.value, request.id, actor, request.resource, now, target, detail, request.provider)
    return moved, event


def check_in_time(request: AccessRequest, now: datetime) -> None:
    """TimedOut once what waits for approvers is past its deadline. Checked inside the transaction of every
    decision, so that a reconciler running late cannot let a stale request (or extension) through."""
    deadline = request.deadline
    if deadline is None or now <= deadline:
        return
    what = f"The extension of {request.id}" if request.status is Status.ACTIVE else f"Request {request.id}"
    raise TimedOut(
        f"{what} timed out at {deadline:%Y-%m-%d %H:%M:%S} UTC, before anyone decided;"
        " it can no longer be approved or denied."
    )


def time_out(request: AccessRequest, now: datetime) -> Moved:
    """Nobody decided in time: a pending request expires; an extension asked for is dropped (the grant runs on)."""
    if request.status is Status.ACTIVE and request.extend_by is not None:
        return _apply(request, Action.TIME_OUT_EXTENSION, AUTO, now, **_NO_EXTENSION)
    return _apply(request, Action.TIME_OUT, AUTO, now, decided_at=now)


def escalate(request: AccessRequest, now: datetime) -> Moved:
    """Nobody decided in time: the request is announced to the escalation approvers as well, still pending."""
    return _apply(request, Action.ESCALATE, AUTO, now, escalated=True)


def approve(request: AccessRequest, approver: str, required: int, now: datetime) -> Moved:
    """Count one approval; the request (or its pending extension) is approved once `required` distinct agreed."""
    if request.status is Status.ACTIVE:
        return _approve_extension(request, approver, required, now)
    approvals = (*request.approvals, approver)
    if len(approvals) < required:
        return _apply(request, Action.ENDORSE, approver, now, approvals=approvals)
    return _apply(request, Action.APPROVE, approver, now, approvals=approvals, decided_by=approver, decided_at=now)


def approve_by_policy(request: AccessRequest, now: datetime) -> Moved:
    """Approved by jitbot on its own: within the resource's auto-approval bound, or once its delay has passed."""
    return _apply(request, Action.APPROVE, AUTO, now, decided_by=AUTO, decided_at=now)


def break_glass(request: AccessRequest, user: str, now: datetime) -> Moved:
    """Approved by the person who asked, without anyone else: a break-glass review follows (jitbot.review)."""
    return _apply(request, Action.BREAK_GLASS, user, now, decided_by=user, decided_at=now)


def deny(request: AccessRequest, approver: str, now: datetime, note: str | None) -> Moved:
    """Deny the request, or the extension it waits for (the grant itself then runs on as before)."""
    if request.status is Status.ACTIVE:
        if request.extend_by is None:
            raise InvalidTransition(f"Request {request.id} is already active; there is no extension to deny.")
        return _apply(request, Action.DENY_EXTENSION, approver, now, note=note, **_NO_EXTENSION)
    return _apply(request, Action.DENY, approver, now, decided_by=approver, decided_at=now, note=note)


def cancel(request: AccessRequest, user: str, now: datetime) -> Moved:
    """The requester withdraws a request before anyone decided (policy.check_cancel says who may)."""
    return _apply(request, Action.CANCEL, user, now, decided_at=now)


def ask_extension(request: AccessRequest, by: timedelta, reason: str, now: datetime, decide_within: timedelta) -> Moved:
    """Ask `by` more; approvers have `decide_within` (the resource's pending_timeout) from now to decide."""
    if request.extend_by is not None:
        raise InvalidTransition(f"Request {request.id} already has an extension waiting for approval.")
    asked = {"extend_by": by, "extend_reason": reason, "extend_approvals": (), "extend_decide_by": now + decide_within}
    return _apply(request, Action.ASK_EXTENSION, request.requester, now, **asked)


def extend(request: AccessRequest, actor: str, now: datetime) -> Moved:
    """The extension is approved: the grant now ends `extend_by` later."""
    if request.extend_by is None or request.expires_at is None:
        raise InvalidTransition(f"Request {request.id} has no extension waiting.")
    expires_at = request.expires_at + request.extend_by
    return _apply(request, Action.EXTEND, actor, now, expires_at=expires_at, **_NO_EXTENSION)


def _approve_extension(request: AccessRequest, approver: str, required: int, now: datetime) -> Moved:
    if request.extend_by is None:
        raise InvalidTransition(f"Request {request.id} is already active; there is nothing to approve.")
    if request.ending_by:
        raise InvalidTransition(f"Request {request.id} is being ended; its extension can no longer be approved.")
    approvals = (*request.extend_approvals, approver)
    if len(approvals) < required:
        return _apply(request, Action.ENDORSE_EXTENSION, approver, now, extend_approvals=approvals)
    return extend(request, approver, now)


def grant(request: AccessRequest, handle: dict[str, str], now: datetime) -> Moved:
    """The cloud issued access: the grant runs for the requested duration from now."""
    expires_at = now + request.duration
    return _apply(request, Action.GRANT, AUTO, now, granted_at=now, expires_at=expires_at, grant=handle)


def fail(request: AccessRequest, note: str, now: datetime) -> Moved:
    """The cloud refused to issue it for good, or it was not issued in time: `note` says which, and why."""
    return _apply(request, Action.FAIL, AUTO, now, note=note)


def renew(request: AccessRequest, handle: dict[str, str], now: datetime) -> Moved:
    """The cloud's access was brought up to the grant's new end. Refused once an end was asked for: access issued
    meanwhile must be cut, not recorded. The handle keeps the latest credentials' end ever issued, so that a
    revocation covers every set."""
    if request.ending_by:
        raise InvalidTransition(f"Request {request.id} is being ended; its access is not renewed.")
    latest = max(handle.get("credentials_expire_at", ""), request.grant.get("credentials_expire_at", ""))
    merged = handle | ({"credentials_expire_at": latest} if latest else {})
    return _apply(request, Action.RENEW, AUTO, now, grant=merged)


def end_now(request: AccessRequest, user: str, now: datetime, note: str | None = None) -> Moved:
    """End an active grant before its time: it ends now, recorded once the cloud has cut it (confirm_end). jitbot
    ends one itself (`user` AUTO) when its access could not be delivered, `note` saying so."""
    why = {} if note is None else {"note": note}
    return _apply(request, Action.END_NOW, user, now, ending_by=user, expires_at=now, **why)


def confirm_end(request: AccessRequest, verified: str, now: datetime) -> Moved:
    """The cloud showed the access gone (`verified` says how): EXPIRED at its end, REVOKED when someone asked to
    end it, FAILED when it was never issued or when jitbot ended it itself (its note kept), by whoever ended it."""
    if request.ending_by == AUTO:  # its access was never delivered
        action, note = Action.FAIL, request.note
    elif request.status is not Status.ACTIVE:
        action, note = Action.FAIL, NOT_ISSUED
    else:
        action, note = (Action.REVOKE if request.ending_by else Action.EXPIRE), None
    actor = request.ending_by or AUTO
    return _apply(request, action, actor, now, note=note, verified_at=now, verified=verified)


def refusal(
    request: AccessRequest, actor: str, action: str, reason: str, now: datetime, code: str | None = None
) -> AuditEvent:
    """The audit record of an attempt that policy refused; the request itself does not change. `code` names
    the reason where it has a name (`not eligible`, `guest`, …)."""
    detail = {"attempted": action, "reason": reason} | ({"refusal": code} if code else {})
    status = request.status
    return AuditEvent(EventName.REFUSED, request.id, actor, request.resource, now, status, detail, request.provider)
