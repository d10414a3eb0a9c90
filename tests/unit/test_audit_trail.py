"""The audit trail is tamper-evident: every kind of tampering is found and named; a clean trail verifies."""

import csv
import io
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from unittest.mock import Mock

import fakeredis
import pytest

from jitbot.app.guard import Guard
from jitbot.app.people import People
from jitbot.core.catalog import parse_catalog
from jitbot.core.csv_cells import FORMULA_STARTS
from jitbot.core.domain import approve, grant, open_request
from jitbot.core.events import AuditEvent
from jitbot.ops.audit_trail import export_trail, verify_trail
from jitbot.slack.surface import build_surface
from jitbot.store import Store, audit
from jitbot.store.keys import AUDIT

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
Entries = list[tuple[bytes, dict[bytes, bytes]]]


@pytest.fixture
def store() -> Store:
    store = Store(fakeredis.FakeRedis())
    for n in range(4):  # 4 requests x (requested, approved, granted) + 1 refusal = 13 records
        request, event = open_request(f"r-abc23{n + 2}", "U0ALICE", "prod-db", timedelta(hours=1), "INC-1", NOW, "aws")
        store.requests.create(request, event, pending_until=NOW + timedelta(hours=1))
        store.requests.transition(request.id, lambda r: approve(r, "U0BOB", 1, NOW))
        store.requests.transition(request.id, lambda r: grant(r, {}, NOW))
    store.chain.record(AuditEvent("refused", "-", "unverified", "-", NOW, "-", {"reason": "bad signature"}))
    return store


def rewrite(store: Store, change: Callable[[Entries], Entries]) -> None:
    """Tamper as someone with write access to Redis would: rewrite the stream, keeping the stream ids."""
    entries = change(store.redis.xrange(AUDIT))
    store.redis.delete(AUDIT)
    for entry_id, fields in entries:
        store.redis.xadd(AUDIT, fields, id=entry_id)


def verdict(store: Store) -> tuple[int, str]:
    out = io.StringIO()
    return verify_trail(store, None, out), out.getvalue()


def test_verify_when_untouched_then_ok_with_count(store: Store) -> None:
    assert verdict(store) == (0, "OK: the live trail has 13 records and its hash chain is intact.\n")


def test_verify_when_a_field_is_edited_then_names_that_record(store: Store) -> None:
    def edit(entries: Entries) -> Entries:
        entries[4][1][b"actor"] = b"U0MALLORY"  # who approved request 2
        return entries

    rewrite(store, edit)
    code, text = verdict(store)
    assert code == 1 and "record 5 " in text and "was edited" in text


def test_verify_when_edited_and_rehashed_then_the_next_record_breaks(store: Store) -> None:
    def forge(entries: Entries) -> Entries:
        fields = {k.decode(): v.decode() for k, v in entries[4][1].items()}
        fields["actor"] = "U0MALLORY"
        fields["hash"] = audit.record_hash(fields)
        entries[4] = (entries[4][0], {k.encode(): v.encode() for k, v in fields.items()})
        return entries

    rewrite(store, forge)
    code, text = verdict(store)
    assert code == 1 and "record 6 " in text and "does not follow record 5" in text


def test_verify_when_a_record_is_deleted_then_names_the_gap(store: Store) -> None:
    rewrite(store, lambda entries: entries[:6] + entries[7:])
    code, text = verdict(store)
    assert code == 1 and "record 8 " in text and "does not follow record 6" in text


def test_verify_when_two_records_are_swapped_then_names_the_first_out_of_place(store: Store) -> None:
    def swap(entries: Entries) -> Entries:
        (id_a, a), (id_b, b) = entries[2], entries[3]
        entries[2], entries[3] = (id_a, b), (id_b, a)
        return entries

    rewrite(store, swap)
    code, text = verdict(store)
    assert code == 1 and "record 4 " in text and "does not follow record 2" in text


def test_verify_when_the_tail_is_truncated_then_says_so(store: Store) -> None:
    rewrite(store, lambda entries: entries[:-2])
    code, text = verdict(store)
    assert code == 1 and "ends at record 11 but its head says 13: truncated" in text


def test_export_jsonl_then_file_verifies_and_a_tampered_file_does_not(store: Store, tmp_path) -> None:
    out = io.StringIO()
    assert export_trail(store, None, None, "jsonl", out) == 0
    lines = out.getvalue().splitlines()
    assert len(lines) == 13 and json.loads(lines[0])["seq"] == "1"
    clean = tmp_path / "trail.jsonl"
    clean.write_text(out.getvalue())
    assert verify_trail(None, str(clean), io.StringIO()) == 0
    row = json.loads(lines[7])
    row["actor"] = "U0MALLORY"
    tampered = tmp_path / "tampered.jsonl"
    tampered.write_text("\n".join([*lines[:7], json.dumps(row), *lines[8:]]))
    text = io.StringIO()
    assert verify_trail(None, str(tampered), text) == 1 and "record 8 " in text.getvalue()


def test_export_when_time_range_then_only_those_records_and_the_slice_verifies(store: Store, tmp_path) -> None:
    entries = store.redis.xrange(AUDIT)
    first_ms = int(entries[5][0].split(b"-")[0])
    since = datetime.fromtimestamp(first_ms / 1000, UTC).isoformat()
    out = io.StringIO()
    assert export_trail(store, since, None, "jsonl", out) == 0
    seqs = [int(json.loads(line)["seq"]) for line in out.getvalue().splitlines()]
    assert seqs[-1] == 13 and seqs == list(range(seqs[0], 14)) and seqs[0] <= 6
    part = tmp_path / "part.jsonl"
    part.write_text(out.getvalue())
    assert verify_trail(None, str(part), io.StringIO()) == 0


def test_export_csv_then_header_and_every_record(store: Store) -> None:
    out = io.StringIO()
    assert export_trail(store, None, None, "csv", out) == 0
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert len(rows) == 13 and rows[0]["event"] == "requested" and rows[-1]["event"] == "refused"
    assert all(len(r["hash"]) == 64 for r in rows)


PLANTED = '=HYPERLINK("http://x","y")'
CATALOG = """
approver_channel: C0APPROVALS
resources:
  prod-db: {provider: fake, approvers: [U0BOB]}
"""


def exported_csv(store: Store) -> list[dict[str, str]]:
    out = io.StringIO()
    assert export_trail(store, None, None, "csv", out) == 0
    return list(csv.DictReader(io.StringIO(out.getvalue())))


def test_export_when_a_formula_is_typed_as_resource_then_recorded_unknown_with_the_text_in_detail() -> None:
    store, catalog = Store(fakeredis.FakeRedis()), parse_catalog(CATALOG)
    guard = Guard(catalog, store, People(catalog, Mock(), store), lambda: NOW)
    commands = build_surface(guard, Mock(), Mock(), Mock()).commands
    commands.handle_command("U0MALLORY", f"request {PLANTED} 1h INC-1 take a look")
    commands.handle_command("U0MALLORY", "request prod-db soon INC-1")  # refused: no duration
    [planted, named] = exported_csv(store)
    assert (planted["resource"], json.loads(planted["detail"])["typed"]) == ("unknown", PLANTED)
    assert named["resource"] == "prod-db" and "typed" not in json.loads(named["detail"])
    jsonl = io.StringIO()
    export_trail(store, None, None, "jsonl", jsonl)
    assert [json.loads(line)["resource"] for line in jsonl.getvalue().splitlines()] == ["unknown", "prod-db"]


def test_export_csv_when_an_older_record_holds_a_formula_then_every_cell_inert(store: Store) -> None:
    store.chain.record(AuditEvent("refused", "-", "U0MALLORY", PLANTED, NOW, "-", {"attempted": "command"}))
    rows = exported_csv(store)
    assert rows[-1]["resource"] == "'" + PLANTED
    assert all(not cell.startswith(FORMULA_STARTS) for row in rows for cell in row.values() if cell != "-")


def test_export_when_bad_date_then_clear_message_and_exit_2(store: Store) -> None:
    out = io.StringIO()
    assert export_trail(store, "last tuesday", None, "jsonl", out) == 2
    assert "'last tuesday' is not an ISO date" in out.getvalue()
