"""An Identity Center account assignment without calling AWS: its parameters and ledger key, who holds it, what
is left of it once a grant lets go, and what the requester's DM shows.

Identity Center has one assignment per (user, permission set, account), whoever made it: jitbot records in a
`Ledger` which of its grants hold one and whether jitbot created it (aws_sso.py makes the calls).
"""

from __future__ import annotations

import hashlib
import re
import threading
from datetime import datetime, timedelta
from typing import Any, Protocol

from jitbot.core.catalog import Resource
from jitbot.core.domain import AccessRequest
from jitbot.core.durations import format_duration
from jitbot.providers.aws_sso_settings import SsoSettings
from jitbot.providers.base import Held

DEFAULT_SESSION_DURATION = "PT1H"  # Identity Center's default when a permission set names none
ISO_DURATION = re.compile(r"PT(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?")
HANDLE_KEYS = {"instance_arn": "InstanceArn", "account_id": "TargetId", "permission_set_arn": "PermissionSetArn"}
STANDING_LEFT = "standing assignment, not jitbot's: left as it was"
NO_GRANT = "no grant recorded for it, and the ledger lists it nowhere: no assignment of its own to check"
STANDING = (
    "you already hold this permission set on this account outside jitbot: nothing was granted, and nothing will"
    " be removed when this grant ends"
)


class Ledger(Protocol):
    """Which grants hold an assignment, and whether jitbot created it (jitbot.store.locks.Locks is one)."""

    def shared(self, key: str) -> tuple[bool, set[str]] | None: ...

    def hold_shared(self, key: str, holder: str, created: bool | None) -> None: ...

    def release_shared(self, key: str, holder: str) -> None: ...


class MemoryLedger:
    """A Ledger for one process (`jitbot check`, tests); the workers use Redis."""

    def __init__(self) -> None:
        self._held: dict[str, tuple[bool, set[str]]] = {}
        self._lock = threading.Lock()

    def shared(self, key: str) -> tuple[bool, set[str]] | None:
        with self._lock:
            found = self._held.get(key)
            return (found[0], set(found[1])) if found else None

    def hold_shared(self, key: str, holder: str, created: bool | None) -> None:
        with self._lock:
            was, holders = self._held.get(key, (False, set()))
            self._held[key] = (was if created is None else created, holders | {holder})

    def release_shared(self, key: str, holder: str) -> None:
        with self._lock:
            created, holders = self._held.get(key, (False, set()))
            if holders - {holder}:
                self._held[key] = (created, holders - {holder})
            else:
                self._held.pop(key, None)


def assignment_key(params: dict[str, str]) -> str:
    """One assignment, whoever made it: its instance, account, permission set and user."""
    parts = (params["InstanceArn"], params["TargetId"], params["PermissionSetArn"], params["PrincipalId"])
    return "sso:" + hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]


def assignment_params(request: AccessRequest, resource: Resource, principal_id: str) -> dict[str, str]:
    """The assignment as AWS names it; the handle's values win, so a revoke removes what was granted even
    if the catalog has changed since."""
    return target_params(resource, request.grant) | {"PrincipalType": "USER", "PrincipalId": principal_id}


def target_params(resource: Resource, handle: dict[str, str] | None = None) -> dict[str, str]:
    """The account and permission set an assignment is of, whoever it is for (`handle`'s values first)."""
    settings = resource.settings_as(SsoSettings)
    catalog = {
        "InstanceArn": settings.instance_arn,
        "TargetId": settings.account_id,
        "PermissionSetArn": settings.permission_set_arn,
    }
    given = handle or {}
    return {"TargetType": "AWS_ACCOUNT"} | {name: given.get(key) or catalog[name] for key, name in HANDLE_KEYS.items()}


def held_assignment(params: dict[str, str], entry: tuple[bool, set[str]] | None) -> Held | None:
    """The assignment as the drift scan sees it, when the ledger says jitbot created it; None for a standing one
    (recorded as found, or never recorded): those are never jitbot's to remove."""
    if entry is None or not entry[0]:
        return None
    what = f"{params['PermissionSetArn']} for user {params['PrincipalId']} on account {params['TargetId']}"
    return Held(frozenset(entry[1]), what, params)


def revoked_state(entry: tuple[bool, set[str]] | None, handle: dict[str, str]) -> str | None:
    """What is left of an assignment once a grant has let go of it, by the ledger (or, its entry gone, by the
    grant's handle); None when jitbot made it and nothing holds it any more: then AWS must no longer show it."""
    if entry is None and "standing" in handle:
        return STANDING_LEFT
    if entry is None:
        return None if "principal_id" in handle else NO_GRANT
    created, others = entry
    if not created:
        return STANDING_LEFT
    return "assignment kept for " + ", ".join(sorted(others)) if others else None


def session_length(iso_duration: str) -> timedelta | None:
    """Permission sets state their session duration in ISO 8601 (`PT1H`, `PT1H30M`); None if not of that form."""
    match = ISO_DURATION.fullmatch(iso_duration)
    if not match or not any(match.groups()):
        return None
    hours, minutes, seconds = (int(part or 0) for part in match.groups())
    return timedelta(hours=hours, minutes=minutes, seconds=seconds)


def access_lines(
    request: AccessRequest, resource: Resource, permission_set: dict[str, Any], principal_id: str, until: datetime
) -> dict[str, str]:
    """What the requester's DM shows: where to go and for how long; no keys, the portal issues those."""
    raw = permission_set.get("SessionDuration", DEFAULT_SESSION_DURATION)
    length = session_length(raw)
    sessions = (
        f"{(until + length).isoformat()} at the latest (a session lasts {format_duration(length)})"
        if length
        else f"up to {raw} after they were opened"
    )
    settings = resource.settings_as(SsoSettings)
    return {
        "Account": settings.account_id,
        "Permission set": permission_set["Name"],
        "Identity": request.identity.get("email", principal_id),
        "Until": until.isoformat(),
        "Sessions already open last until": sessions,
        "Portal": "your AWS access portal" if settings.portal_url is None else settings.portal_url,
    }
