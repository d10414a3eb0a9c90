"""The audit record: one format for the Redis stream and for the structlog line, never a secret."""

from __future__ import annotations

import json

from jitbot import logs
from jitbot.domain import AuditEvent
from jitbot.redaction import redact

STREAM = "jitbot:audit"
_log = logs.get("jitbot.audit")


def to_fields(event: AuditEvent) -> dict[str, str]:
    """The stream entry: flat strings; `detail` as canonical JSON, passed through redaction."""
    return {
        "event": event.event,
        "request_id": event.request_id,
        "actor": event.actor,
        "resource": event.resource,
        "at": event.at.isoformat(),
        "status": event.status,
        "detail": redact(json.dumps(event.detail, sort_keys=True, separators=(",", ":"))),
    }


def emit(event: AuditEvent) -> None:
    """The structlog line for an event already written to the stream."""
    fields = to_fields(event)
    detail = json.loads(fields.pop("detail"))
    _log.info("audit", audit_event=fields.pop("event"), **fields, detail=detail)
