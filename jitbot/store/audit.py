"""The audit trail: hash-chained records in a Redis stream, mirrored as structlog lines; never a secret.

Each record carries `seq`, the event's fields, `prev` (the previous record's hash) and `hash`, the SHA-256
of its own canonical JSON. `jitbot:audit:head` holds the last `seq:hash`, written in the same transaction,
so an edited, deleted, reordered or truncated record breaks the chain where it happened. The log line of
every record carries its hash too: a copy in a SIEM anchors the chain outside Redis.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jitbot.core.events import AuditEvent
from jitbot.core.redaction import redact
from jitbot.observability import logs

GENESIS = "0" * 64
CHAINED = ("seq", "event", "request_id", "actor", "resource", "provider", "at", "status", "detail", "prev")
_log = logs.get("jitbot.audit")


@dataclass(frozen=True)
class AuditRecord:
    seq: int
    event: str
    request_id: str
    actor: str
    resource: str
    provider: str
    at: datetime
    status: str
    detail: dict[str, Any]
    prev: str
    hash: str

    @classmethod
    def from_fields(cls, fields: dict[str, str]) -> AuditRecord:
        return cls(
            int(fields["seq"]),
            fields["event"],
            fields["request_id"],
            fields["actor"],
            fields["resource"],
            fields["provider"],
            datetime.fromisoformat(fields["at"]),
            fields["status"],
            json.loads(fields["detail"]),
            fields["prev"],
            fields["hash"],
        )


@dataclass(frozen=True)
class Verdict:
    ok: bool
    checked: int
    problem: str | None = None  # names the first record that does not fit


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def parse_head(raw: bytes | str | None) -> tuple[int, str]:
    """`seq:hash` of the last record, or (0, GENESIS) for an empty trail."""
    if not raw:
        return 0, GENESIS
    text = raw.decode() if isinstance(raw, bytes) else raw
    seq, digest = text.split(":", 1)
    return int(seq), digest


def chain(event: AuditEvent, head: tuple[int, str]) -> dict[str, str]:
    """The stream entry for `event` following `head`: flat strings, detail redacted, hash over the rest."""
    fields = {
        "seq": str(head[0] + 1),
        "event": event.event,
        "request_id": event.request_id,
        "actor": event.actor,
        "resource": event.resource,
        "provider": event.provider,
        "at": event.at.isoformat(),
        "status": event.status,
        "detail": redact(canonical(event.detail)),
        "prev": head[1],
    }
    fields["hash"] = record_hash(fields)
    return fields


def record_hash(fields: dict[str, str]) -> str:
    return hashlib.sha256(canonical({name: fields.get(name, "") for name in CHAINED}).encode()).hexdigest()


def verify(entries: Iterable[tuple[str, dict[str, str]]], head: tuple[int, str] | None) -> Verdict:
    """Re-compute the chain over (stream id, fields) in order; `head` (if known) must be its end.

    With a head (the live trail) the chain must start at record 1; without one (an export of a time
    range) it may start anywhere, and each record must follow the one before.
    """
    seq, previous, checked = 0, GENESIS, 0
    for entry_id, fields in entries:
        if checked == 0 and head is None and fields.get("seq", "").isdigit():
            seq, previous = int(fields["seq"]) - 1, fields.get("prev", "")
        where = f"record {fields.get('seq', '?')} (stream id {entry_id})"
        if fields.get("hash") != record_hash(fields):
            return Verdict(False, checked, f"{where} was edited: its hash does not match its content")
        if fields["prev"] != previous or fields["seq"] != str(seq + 1):
            return Verdict(False, checked, f"{where} does not follow record {seq}: one was deleted or reordered")
        seq, previous, checked = seq + 1, fields["hash"], checked + 1
    if head is not None and head != (seq, previous):
        return Verdict(False, checked, f"the trail ends at record {seq} but its head says {head[0]}: truncated")
    return Verdict(True, checked)


def emit(fields: dict[str, str]) -> None:
    """The structlog line for a record already written to the stream."""
    line = dict(fields)
    detail = json.loads(line.pop("detail"))
    _log.info("audit", audit_event=line.pop("event"), **line, detail=detail)
