"""`jitbot audit export|verify`: the hash-chained trail out to JSONL or CSV, and checked, live or from a file."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import TextIO

from jitbot.core.csv_cells import write_csv
from jitbot.core.errors import UsageError
from jitbot.store import Store, audit

COLUMNS = ["stream_id", *audit.CHAINED, "hash"]


def stream_bound(text: str | None, exclusive: bool) -> str:
    """An ISO date or time (UTC unless it says otherwise) → a Redis stream id bound."""
    if not text:
        return "+" if exclusive else "-"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"'{text}' is not an ISO date or time, e.g. 2026-11-01 or 2026-11-01T12:00") from None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    ms = int(moment.timestamp() * 1000)
    return f"({ms}-0" if exclusive else f"{ms}-0"


def export_trail(store: Store, since: str | None, until: str | None, fmt: str, out: TextIO) -> int:
    try:
        entries = store.chain.entries(stream_bound(since, False), stream_bound(until, True))
        rows = ({"stream_id": entry_id, **fields} for entry_id, fields in entries)
        if fmt == "csv":
            write_csv(out, COLUMNS, ([row.get(column, "") for column in COLUMNS] for row in rows))
        else:
            out.writelines(audit.canonical(row) + "\n" for row in rows)
    except UsageError as error:
        print(f"jitbot audit export: {error}", file=out)
        return 2
    return 0


def verify_trail(store: Store | None, path: str | None, out: TextIO) -> int:
    """Verify the live trail against its head, or an exported JSONL file on its own; 0 if intact."""
    if store is not None:
        verdict = audit.verify(store.chain.entries(), store.chain.head())
        source = "the live trail"
    else:
        assert path is not None
        with open(path, encoding="utf-8") as handle:
            verdict = audit.verify(read_export(handle), None)
        source = path
    if verdict.ok:
        print(f"OK: {source} has {verdict.checked} records and its hash chain is intact.", file=out)
        return 0
    print(f"TAMPERED: {source}: {verdict.problem} ({verdict.checked} records before it check out).", file=out)
    return 1


def read_export(lines: Iterable[str]) -> Iterator[tuple[str, dict[str, str]]]:
    for line in lines:
        if line.strip():
            row = json.loads(line)
            yield row.pop("stream_id", "?"), row
