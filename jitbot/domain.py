"""Access requests and their lifecycle: one transition table, and `apply()` as the only way to move.

Every status change returns the audit event that describes it, so a change and its record cannot part.
Times are timezone-aware UTC datetimes passed in by the caller.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from jitbot.errors import InvalidTransition

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


class Action(StrEnum):
    ENDORSE = "endorse"  # one approval of several still needed
    APPROVE = "approve"
    DENY = "deny"
    GRANT = "grant"
    FAIL = "fail"
    EXPIRE = "expire"
    REVOKE = "revoke"
    CANCEL = "cancel"
    TIME_OUT = "time_out"  # nobody decided in time


TRANSITIONS: dict[Status, dict[Action, Status]] = {
    Status.PENDING: {
        Action.ENDORSE: Status.PENDING,
        Action.APPROVE: Status.APPROVED,
        Action.DENY: Status.DENIED,
        Action.CANCEL: Status.CANCELLED,
        Action.TIME_OUT: Status.EXPIRED,
    },
    Status.APPROVED: {Action.GRANT: Status.ACTIVE, Action.FAIL: Status.FAILED},
    Status.ACTIVE: {Action.EXPIRE: Status.EXPIRED, Action.REVOKE: Status.REVOKED, Action.FAIL: Status.FAILED},
}

EVENT_NAMES = {
    Action.ENDORSE: "endorsed",
    Action.APPROVE: "approved",
    Action.DENY: "denied",
    Action.GRANT: "granted",
    Action.FAIL: "failed",
    Action.EXPIRE: "expired",
    Action.REVOKE: "revoked",
    Action.CANCEL: "cancelled",
    Action.TIME_OUT: "timed out",
}


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

    def time_left(self, now: datetime) -> timedelta:
        return max(self.expires_at - now, timedelta(0)) if self.expires_at else timedelta(0)


@dataclass(frozen=True)
class AuditEvent:
    event: str
    request_id: str
    actor: str
    resource: str
    at: datetime
    status: str
    detail: dict[str, Any] = field(default_factory=dict)
    provider: str = ""


def new_request_id() -> str:
    return "r-" + "".join(secrets.choice(ID_ALPHABET) for _ in range(6))


def open_request(
    request_id: str,
    requester: str,
    resource: str,
    duration: timedelta,
    reason: str,
    now: datetime,
    provider: str = "",
) -> tuple[AccessRequest, AuditEvent]:
    request = AccessRequest(request_id, requester, resource, duration, reason, created_at=now, provider=provider)
    detail = {"duration_s": int(duration.total_seconds()), "reason": reason}
    return request, AuditEvent("requested", request_id, requester, resource, now, request.status, detail, provider)


def apply(
    request: AccessRequest, action: Action, actor: str, now: datetime, **changes: Any
) -> tuple[AccessRequest, AuditEvent]:
    """Move `request` by `action`; raise InvalidTransition when its status does not allow it."""
    target = TRANSITIONS.get(request.status, {}).get(action)
    if target is None:
        raise InvalidTransition(
            f"Request {request.id} is {request.status}; it can no longer be {EVENT_NAMES[action]}."
        ) from None
    moved = replace(request, status=target, version=request.version + 1, **changes)
    detail = {key: _plain(value) for key, value in changes.items() if key != "grant"}
    event = AuditEvent(EVENT_NAMES[action], request.id, actor, request.resource, now, target, detail, request.provider)
    return moved, event


def approve(request: AccessRequest, approver: str, required: int, now: datetime) -> tuple[AccessRequest, AuditEvent]:
    """Count one approval; the request becomes APPROVED once `required` distinct approvers agreed."""
    approvals = (*request.approvals, approver)
    if len(approvals) < required:
        return apply(request, Action.ENDORSE, approver, now, approvals=approvals)
    return apply(request, Action.APPROVE, approver, now, approvals=approvals, decided_by=approver, decided_at=now)


def grant(request: AccessRequest, handle: dict[str, str], now: datetime) -> tuple[AccessRequest, AuditEvent]:
    """The cloud issued access: the grant runs for the requested duration from now."""
    expires_at = now + request.duration
    return apply(request, Action.GRANT, "jitbot", now, granted_at=now, expires_at=expires_at, grant=handle)


def refusal(request: AccessRequest, actor: str, action: str, reason: str, now: datetime) -> AuditEvent:
    """The audit record of an attempt that policy refused; the request itself does not change."""
    detail = {"attempted": action, "reason": reason}
    return AuditEvent("refused", request.id, actor, request.resource, now, request.status, detail, request.provider)


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return int(value.total_seconds())
    if isinstance(value, tuple):
        return list(value)
    return value
