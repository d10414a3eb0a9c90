"""The one request codec (a request ↔ the JSON Redis holds), and the two conversions every store module needs."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from jitbot.core.domain import AccessRequest, Status

_DATETIMES = (
    "created_at",
    "decided_at",
    "granted_at",
    "expires_at",
    "auto_approve_at",
    "escalate_at",
    "decide_by",
    "extend_decide_by",
    "verified_at",
)
_TUPLES = ("approvals", "extend_approvals")


def _unset(field: dataclasses.Field[Any]) -> Any:
    factory: Any = field.default_factory
    return factory() if factory is not dataclasses.MISSING else field.default


_UNSET = {  # fields that are empty unless set (None, False, 0, nothing): stored only once set
    field.name: _unset(field) for field in dataclasses.fields(AccessRequest) if not _unset(field)
}


def encode(request: AccessRequest) -> str:
    """Compact JSON of the fields that differ from their defaults (decode restores those): a grant is about
    550 bytes instead of 780, most of what Redis holds per grant."""
    data: dict[str, Any] = {}
    for name, value in vars(request).items():
        if name in _UNSET and value == _UNSET[name]:
            continue
        if isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, timedelta):
            value = value.total_seconds()
        elif isinstance(value, tuple):
            value = list(value)
        data[name] = value
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def decode(raw: bytes | str) -> AccessRequest:
    data = json.loads(raw)
    for name in _DATETIMES:
        data[name] = datetime.fromisoformat(data[name]).astimezone(UTC) if data.get(name) else None
    data["duration"] = timedelta(seconds=data["duration"])
    if data.get("extend_by") is not None:
        data["extend_by"] = timedelta(seconds=data["extend_by"])
    data["status"] = Status(data["status"])
    for name in _TUPLES:
        data[name] = tuple(data.get(name, ()))
    return AccessRequest(**data)


def text(value: Any) -> str:
    """A Redis answer as text: the client answers bytes (RQ needs a bytes connection)."""
    return value.decode() if isinstance(value, bytes) else str(value)


def ms(span: timedelta) -> int:
    """A span as the milliseconds of PX."""
    return int(span.total_seconds() * 1000)
