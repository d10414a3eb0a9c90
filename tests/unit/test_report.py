"""The access review over a synthetic 90-day trail written through the real Store, checked against hand-made figures.

The history (requests on the Wednesday of each ISO week, 09:00 UTC onwards; week 0 is 2026-W35):

    prod-db   w0  ALICE 1h, FRANK 1h, GRACE 2h        all approved, granted, expired on time
              w1-w6  DAVE 1h 1h 1h 2h 2h 2h          (DAVE asks 6 times); w2 needs two approvals
              w5  EVE 8h                              denied
              w7  ALICE 2h; w8-w11 ALICE, GRACE, FRANK, ALICE 3h; w10's grant is extended by 1h
              w9  a break-glass record
              w12 GRACE 3h, FRANK 3h, HEIDI 4h        HEIDI's revoked after 30 minutes
    staging   w0 ALICE 2h, w6 ALICE 2h                approved; w3 EVE 4h denied; w6 EVE 1h timed out
              w12 FRANK 2h                            auto-approved
    legacy-vault                                      only asked for outside the period

Every grant starts 6 minutes after its request; an approval comes at 5 minutes.
"""

import csv
import io
import struct
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from types import SimpleNamespace

import fakeredis
import pytest

from jitbot.core.catalog import parse_catalog
from jitbot.core.domain import (
    AccessRequest,
    approve,
    approve_by_policy,
    confirm_end,
    deny,
    end_now,
    grant,
    open_request,
    time_out,
)
from jitbot.core.events import AuditEvent, EventName
from jitbot.ops.report import ALL, CHART, Report, ResourceReport, build_report, p90, trend_verdict
from jitbot.ops.report_command import read_records, run_report
from jitbot.ops.report_render import render_chart, to_csv, to_markdown
from jitbot.store import Store, audit
from jitbot.store.audit import AuditRecord
from jitbot.store.keys import AUDIT

UNTIL = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)  # a Monday: the period ends with a whole week
SINCE = UNTIL - timedelta(days=90)  # Tuesday 2026-08-25: the first week (W35) is partial
NOW = UNTIL + timedelta(hours=9)
RESOURCES = ("prod-db", "staging", "legacy-vault")
ALICE, BOB, CAROL, DAVE, EVE = "U0ALICE", "U0BOB", "U0CAROL", "U0DAVE", "U0EVE"
FRANK, GRACE, HEIDI, ADMIN = "U0FRANK", "U0GRACE", "U0HEIDI", "U0ADMIN"
H, M = 3600, 60
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class History:
    """Writes request flows through the Store, each step at the time the test says."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.count = 0

    def ask(self, at: datetime, user: str, resource: str, hours: float) -> str:
        self.count += 1
        request, event = open_request(f"r-{self.count:06d}", user, resource, timedelta(hours=hours), "INC", at)
        assert self.store.requests.create(request, event, pending_until=at + timedelta(hours=1))
        return request.id

    def move(self, request_id: str, change: Callable[[AccessRequest], tuple[AccessRequest, AuditEvent]]) -> None:
        self.store.requests.transition(request_id, change)

    def granted(self, at: datetime, user: str, resource: str, hours: float, *approvers: str) -> tuple[str, datetime]:
        """Asked at `at`, approved by `approvers` at +5 min, granted at +6 min; returns the id and the grant time."""
        request_id = self.ask(at, user, resource, hours)
        for approver in approvers:
            self.move(
                request_id, partial(approve, approver=approver, required=len(approvers), now=at + timedelta(minutes=5))
            )
        if not approvers:
            auto = at + timedelta(minutes=5)
            self.move(request_id, lambda r: approve_by_policy(r, auto))
        self.move(request_id, lambda r: grant(r, {}, at + timedelta(minutes=6)))
        return request_id, at + timedelta(minutes=6)

    def used(self, at: datetime, user: str, resource: str, hours: float, *approvers: str) -> None:
        """Granted and expired on time."""
        request_id, start = self.granted(at, user, resource, hours, *approvers)
        self.move(request_id, lambda r: confirm_end(r, "gone", start + timedelta(hours=hours)))

    def denied(self, at: datetime, user: str, resource: str, hours: float, approver: str) -> None:
        request_id = self.ask(at, user, resource, hours)
        when = at + timedelta(minutes=10)
        self.move(request_id, lambda r: deny(r, approver, when, None))

    def timed_out(self, at: datetime, user: str, resource: str, hours: float) -> None:
        request_id = self.ask(at, user, resource, hours)
        when = at + timedelta(hours=1)
        self.move(request_id, lambda r: time_out(r, when))


def wednesday(week: int, hour: int = 9) -> datetime:
    return datetime(2026, 8, 26, hour, tzinfo=UTC) + timedelta(weeks=week)


def write_history(store: Store) -> None:
    h = History(store)
    h.ask(SINCE - timedelta(days=1), ALICE, "legacy-vault", 1)  # before the period
    h.used(wednesday(0, 9), ALICE, "prod-db", 1, BOB)
    h.used(wednesday(0, 10), FRANK, "prod-db", 1, CAROL)
    h.used(wednesday(0, 11), GRACE, "prod-db", 2, BOB)
    h.used(wednesday(0, 12), ALICE, "staging", 2, CAROL)
    for week, hours, approvers in [(1, 1, [BOB]), (2, 1, [BOB, CAROL]), (3, 1, [CAROL])]:
        h.used(wednesday(week), DAVE, "prod-db", hours, *approvers)
    h.denied(wednesday(3, 10), EVE, "staging", 4, BOB)
    h.used(wednesday(4), DAVE, "prod-db", 2, BOB)
    refused = AuditEvent("refused", "-", EVE, "prod-dbx", wednesday(4, 10), "-", {"reason": "no such resource"})
    store.chain.record(refused)
    h.used(wednesday(5), DAVE, "prod-db", 2, CAROL)
    h.denied(wednesday(5, 10), EVE, "prod-db", 8, CAROL)
    h.used(wednesday(6), DAVE, "prod-db", 2, BOB)
    h.used(wednesday(6, 10), ALICE, "staging", 2, BOB)
    h.timed_out(wednesday(6, 11), EVE, "staging", 1)
    h.used(wednesday(7), ALICE, "prod-db", 2, CAROL)
    h.used(wednesday(8), ALICE, "prod-db", 3, BOB)
    h.used(wednesday(9), GRACE, "prod-db", 3, CAROL)
    store.chain.record(AuditEvent(EventName.BREAK_GLASS, "r-bg0001", GRACE, "prod-db", wednesday(9, 23), "active", {}))
    write_extended(h, wednesday(10))
    h.used(wednesday(11), ALICE, "prod-db", 3, CAROL)
    h.used(wednesday(12, 9), GRACE, "prod-db", 3, BOB)
    h.used(wednesday(12, 10), FRANK, "prod-db", 3, CAROL)
    write_revoked(h, wednesday(12, 11))
    h.used(wednesday(12, 12), FRANK, "staging", 2)  # no approvers: auto-approved
    h.ask(UNTIL, ALICE, "legacy-vault", 1)  # the period's end is exclusive


def write_extended(h: History, at: datetime) -> None:
    """FRANK's 3h grant, extended by an hour: used for 4h."""
    request_id, start = h.granted(at, FRANK, "prod-db", 3, BOB)
    extended = AuditEvent("extended", request_id, FRANK, "prod-db", start + timedelta(hours=2), "active", {})
    h.store.chain.record(extended)
    h.move(request_id, lambda r: confirm_end(r, "gone", start + timedelta(hours=4)))


def write_revoked(h: History, at: datetime) -> None:
    """HEIDI's 4h grant, revoked after 30 minutes."""
    request_id, start = h.granted(at, HEIDI, "prod-db", 4, BOB)
    h.move(request_id, lambda r: end_now(r, ADMIN, start + timedelta(minutes=30)))
    h.move(request_id, lambda r: confirm_end(r, "gone", start + timedelta(minutes=30)))


def trail(store: Store) -> list[AuditRecord]:
    return [AuditRecord.from_fields(fields) for _, fields in store.chain.entries()]


@pytest.fixture(scope="module")
def records() -> list[AuditRecord]:
    store = Store(fakeredis.FakeRedis())
    write_history(store)
    return trail(store)


@pytest.fixture(scope="module")
def report(records: list[AuditRecord]) -> Report:
    return build_report(records, RESOURCES, SINCE, UNTIL, "week", NOW)


def part(report: Report, name: str) -> ResourceReport:
    return report.overall if name == ALL else next(p for p in report.resources if p.name == name)


COUNTED = ["requests", "grants", "approvals", "auto_approvals", "denials", "timed_out", "early_ends"]
COUNTED += ["extensions", "breakglass", "used"]


def counts(report: Report, name: str) -> tuple[int, ...]:
    return tuple(getattr(part(report, name).total, n) for n in COUNTED)


def figures_of(report: Report, name: str, week: int) -> tuple[object, ...]:
    f = part(report, name).buckets[week].figures
    return (f.requests, f.requested_median, f.requested_p90, f.used, f.used_median, f.used_p90)


def test_build_report_synthetic_history_counts_match_hand_figures(report: Report) -> None:
    # requests, grants, approvals, auto, denials, timed out, early ends, extensions, break-glass, used (measured)
    assert counts(report, "prod-db") == (18, 17, 18, 0, 1, 0, 1, 1, 1, 17)
    assert counts(report, "staging") == (5, 3, 2, 1, 1, 1, 0, 0, 0, 3)
    assert counts(report, ALL) == (23, 20, 20, 1, 2, 1, 1, 1, 1, 20)
    assert part(report, "prod-db").total.approvers == {BOB: 10, CAROL: 8}  # BOB's endorsement in w2 counts
    assert part(report, "staging").total.approvers == {BOB: 1, CAROL: 1}
    assert report.overall.total.approvers == {BOB: 11, CAROL: 9}


def test_build_report_synthetic_history_durations_match_hand_figures(report: Report) -> None:
    # prod-db requested, sorted (h): 1 x5, 2 x5, 3 x6, 4, 8 -> median (9th+10th)/2 = 2, p90 rank ceil(16.2)=17 -> 4
    # prod-db used: 0.5, 1 x5, 2 x5, 3 x5, 4 -> median 9th = 2, p90 rank ceil(15.3)=16 -> 3
    t = part(report, "prod-db").total
    assert (t.requested_median, t.requested_p90, t.used_median, t.used_p90) == (2 * H, 4 * H, 2 * H, 3 * H)
    # staging requested 1, 2, 2, 2, 4 -> median 2, p90 rank ceil(4.5)=5 -> 4; used 2, 2, 2
    t = part(report, "staging").total
    assert (t.requested_median, t.requested_p90, t.used_median, t.used_p90) == (2 * H, 4 * H, 2 * H, 2 * H)
    # all requested: 1 x6, 2 x8, 3 x6, 4 x2, 8 -> median 12th = 2, p90 rank ceil(20.7)=21 -> 4
    # all used: 0.5, 1 x5, 2 x8, 3 x5, 4 -> median (10th+11th)/2 = 2, p90 rank 18 -> 3
    t = report.overall.total
    assert (t.requested_median, t.requested_p90, t.used_median, t.used_p90) == (2 * H, 4 * H, 2 * H, 3 * H)


def test_build_report_weekly_buckets_match_hand_figures(report: Report) -> None:
    assert len(report.overall.buckets) == 13
    assert [b.label for b in report.overall.buckets][::6] == ["2026-W35", "2026-W41", "2026-W47"]
    assert report.overall.buckets[0].start == datetime(2026, 8, 24, tzinfo=UTC)  # Monday before SINCE
    # (requests, requested median, p90 by rank ceil(0.9 n), used, used median, used p90)
    assert figures_of(report, "prod-db", 0) == (3, 1 * H, 2 * H, 3, 1 * H, 2 * H)
    assert figures_of(report, "prod-db", 5) == (2, 5 * H, 8 * H, 1, 2 * H, 2 * H)  # 2h and a denied 8h
    assert figures_of(report, "prod-db", 10) == (1, 3 * H, 3 * H, 1, 4 * H, 4 * H)  # extended by 1h
    assert figures_of(report, "prod-db", 12) == (3, 3 * H, 4 * H, 3, 3 * H, 3 * H)  # used 3, 3 and 0.5
    assert figures_of(report, "staging", 1) == (0, None, None, 0, None, None)
    assert figures_of(report, ALL, 0) == (4, 1.5 * H, 2 * H, 4, 1.5 * H, 2 * H)  # 1, 1, 2, 2
    assert figures_of(report, ALL, 6) == (3, 2 * H, 2 * H, 2, 2 * H, 2 * H)  # 2, 2 and a timed-out 1h
    assert part(report, "prod-db").buckets[12].figures.early_ends == 1
    assert part(report, "staging").buckets[12].figures.auto_approvals == 1


def test_build_report_creeping_durations_verdict_creep(report: Report) -> None:
    prod = part(report, "prod-db").trend
    assert prod.ratio == 3.0 and prod.verdict == "requested durations grew 3.0\u00d7 (creep)"
    assert prod.first is not None and prod.first.label == "2026-W35"
    assert prod.last is not None and prod.last.label == "2026-W47"
    assert report.overall.trend.verdict == "requested durations grew 2.0\u00d7 (creep)"  # 1.5h -> 3h
    assert part(report, "staging").trend.verdict == "requested durations stable (1.0\u00d7)"
    assert part(report, "legacy-vault").trend.verdict == "not enough data for a trend"


def test_trend_verdict_thresholds_then_creep_stable_or_shrank() -> None:
    assert trend_verdict(1.26) == "requested durations grew 1.3\u00d7 (creep)"
    assert trend_verdict(1.25) == "requested durations stable (1.2\u00d7)"
    assert trend_verdict(0.5) == "requested durations shrank to 0.5\u00d7"


def test_build_report_repeat_requests_then_pairs_at_threshold_sorted_by_count(records: list[AuditRecord]) -> None:
    default = build_report(records, RESOURCES, SINCE, UNTIL, "week", NOW)
    assert [(r.user, r.resource, r.requests) for r in default.repeaters] == [(DAVE, "prod-db", 6)]
    lower = build_report(records, RESOURCES, SINCE, UNTIL, "week", NOW, repeat_threshold=4)
    assert [(r.user, r.resource, r.requests) for r in lower.repeaters] == [(DAVE, "prod-db", 6), (ALICE, "prod-db", 4)]


def test_build_report_records_outside_period_or_refused_then_ignored(report: Report) -> None:
    assert report.never_requested == ("legacy-vault",)  # asked for a day before and exactly at the end
    assert [p.name for p in report.resources] == list(RESOURCES)  # the refused `prod-dbx` is no resource


def test_build_report_month_buckets_then_calendar_months(records: list[AuditRecord]) -> None:
    monthly = build_report(records, RESOURCES, SINCE, UNTIL, "month", NOW)
    assert [b.label for b in monthly.overall.buckets] == ["2026-08", "2026-09", "2026-10", "2026-11"]
    # August: only week 0 (1, 1, 2, 2); November: w10 (Nov 4) 3, w11 3, w12 3, 3, 4, 2
    assert figures_of(monthly, ALL, 0)[:3] == (4, 1.5 * H, 2 * H)
    assert figures_of(monthly, ALL, 3)[:3] == (6, 3 * H, 4 * H)
    assert sum(b.figures.requests for b in monthly.overall.buckets) == 23


def test_build_report_unknown_bucket_raises_value_error(records: list[AuditRecord]) -> None:
    with pytest.raises(ValueError, match="bucket must be one of week, month"):
        build_report(records, RESOURCES, SINCE, UNTIL, "day", NOW)


def test_build_report_expired_while_pending_then_counted_as_timed_out() -> None:
    """Older trails recorded a time-out as `expired`; a grant's end must not be taken for one."""
    at = SINCE + timedelta(days=1)
    records = [
        AuditRecord(1, "requested", "r-old001", ALICE, "prod-db", "", at, "pending", {"duration_s": H}, "", ""),
        AuditRecord(2, "refused", "r-old001", ALICE, "prod-db", "", at, "pending", {"attempted": "decide"}, "", ""),
        AuditRecord(3, "expired", "r-old001", "jitbot", "prod-db", "", at + timedelta(hours=1), "expired", {}, "", ""),
        AuditRecord(4, "expired", "r-old002", "jitbot", "prod-db", "", at, "expired", {"decided_at": "x"}, "", ""),
        AuditRecord(5, "expired", "r-old003", "jitbot", "prod-db", "", at, "expired", {"note": None}, "", ""),
    ]
    total = build_report(records, ["prod-db"], SINCE, UNTIL, "week", NOW).overall.total
    assert (total.requests, total.timed_out, total.used) == (1, 2, 0)


def test_p90_nearest_rank_then_integer_rank_and_actual_value() -> None:
    assert p90([float(n) for n in range(1, 71)]) == 63.0  # 0.9 * 70 is 63.00000000000001 in floating point
    assert p90([5.0, 1.0, 3.0]) == 5.0 and p90([]) is None
    assert p90([float(n) for n in range(1, 11)]) == 9.0


def test_to_csv_synthetic_history_then_row_per_resource_per_bucket_plus_overall(report: Report) -> None:
    rows = list(csv.DictReader(io.StringIO(to_csv(report))))
    assert len(rows) == (3 + 1) * 13
    assert [r["resource"] for r in rows[::13]] == ["prod-db", "staging", "legacy-vault", ALL]
    w47 = next(r for r in rows if r["resource"] == "prod-db" and r["bucket"] == "2026-W47")
    assert w47["bucket_start"] == "2026-11-16" and w47["requests"] == "3" and w47["early_ends"] == "1"
    assert (w47["requested_median_s"], w47["requested_p90_s"], w47["used_p90_s"]) == ("10800", "14400", "10800")
    assert w47["approvals_by_approver"] == f"{BOB}=2 {CAROL}=1"
    first = next(r for r in rows if r["resource"] == ALL and r["bucket"] == "2026-W35")
    assert (first["requests"], first["requested_median_s"], first["used_median_s"]) == ("4", "5400", "5400")
    empty = next(r for r in rows if r["resource"] == "legacy-vault")
    assert (empty["requests"], empty["requested_median_s"]) == ("0", "")


def test_to_csv_when_a_resource_name_starts_a_formula_then_the_cell_is_inert() -> None:
    planted = "=cmd|' /C calc'!A0"
    rows = list(csv.DictReader(io.StringIO(to_csv(build_report([], [planted], SINCE, UNTIL, "week", NOW)))))
    assert {r["resource"] for r in rows} == {"'" + planted, ALL}


def test_to_markdown_synthetic_history_then_review_lines(report: Report) -> None:
    text = to_markdown(report)
    assert text.startswith("# Access review, 2026-08-25 to 2026-11-23\n")
    assert "- **23 requests**, 20 grants: 20 approvals by people, 1 auto-approval, 2 denials, 1 timed out" in text
    assert "- **1 early end** (revoked), 1 extension, 1 break-glass use" in text
    assert "- Requested duration: median 2h, p90 4h; actually used: median 2h, p90 3h" in text
    assert "| prod-db | 18 | 17 | 18 | 0 | 1 | 0 | 1 | 1 | 1 | 2h / 4h | 2h / 3h |" in text
    assert "- **prod-db**: requested durations grew 3.0\u00d7 (creep): median 1h in 2026-W35 → 3h in 2026-W47" in text
    assert f"| {BOB} | 11 | prod-db 10, staging 1 |" in text
    assert f"| {DAVE} | prod-db | 6 |" in text
    assert "## Never requested" in text and "\n- legacy-vault\n" in text.split("## Never requested")[1] + "\n"
    assert f"]({CHART})" in text
    assert "| 2026-09-28 (W40) | 2 | 5h | 8h | 1 | 2h | 2h |" in text


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_render_chart_synthetic_history_then_1000_by_500_png(report: Report, tmp_path: Path) -> None:
    path = tmp_path / CHART
    render_chart(report, path)
    assert png_size(path) == (1000, 500)


def test_read_records_window_then_bounded_by_stream_ids() -> None:
    store = Store(fakeredis.FakeRedis())
    head = (0, audit.GENESIS)
    for n, at in enumerate([SINCE - timedelta(hours=2), SINCE + timedelta(hours=1), UNTIL + timedelta(hours=2)]):
        fields = audit.chain(AuditEvent("requested", f"r-{n:06d}", ALICE, "prod-db", at, "pending"), head)
        store.redis.xadd(AUDIT, fields, id=f"{int(at.timestamp() * 1000)}-0")  # type: ignore[arg-type]
        head = (n + 1, fields["hash"])
    assert [r.request_id for r in read_records(store, SINCE, UNTIL)] == ["r-000001"]


def live_runtime() -> SimpleNamespace:
    """Only .store and .catalog are used; records written at real time, as fakeredis stamps stream ids by it."""
    catalog = parse_catalog(
        "approver_channel: C0APPROVALS\nresources:\n"
        "  prod-db: {provider: fake, approvers: [U0BOB]}\n  legacy-vault: {provider: fake, approvers: [U0BOB]}\n"
    )
    store = Store(fakeredis.FakeRedis())
    h = History(store)
    start = datetime.now(UTC) - timedelta(days=20)
    for n, hours in enumerate([1, 1, 2]):
        h.used(start + timedelta(days=7 * n), ALICE, "prod-db", hours, BOB)
    return SimpleNamespace(store=store, catalog=catalog)


def test_run_report_live_trail_then_writes_three_files_and_returns_0(tmp_path: Path) -> None:
    out, folder = io.StringIO(), tmp_path / "review" / "q4"
    assert run_report(live_runtime(), "30d", "week", str(folder), out) == 0
    text = out.getvalue()
    assert "- **3 requests**, 3 grants: 3 approvals by people" in text
    assert text.endswith(f"Wrote {folder / 'report.md'}, {folder / 'report.csv'} and {folder / CHART}.\n")
    assert (folder / "report.md").read_text() in text
    assert next(csv.reader(io.StringIO((folder / "report.csv").read_text())))[:3] == [
        "resource",
        "bucket",
        "bucket_start",
    ]
    assert png_size(folder / CHART) == (1000, 500)


@pytest.mark.parametrize("period", ["90", "ninety days", "0d", "9999d"])
def test_run_report_bad_period_then_message_and_returns_2(period: str, tmp_path: Path) -> None:
    out = io.StringIO()
    assert run_report(live_runtime(), period, "week", str(tmp_path / "r"), out) == 2
    assert out.getvalue().startswith("jitbot report: --period: ") and not (tmp_path / "r").exists()


def test_run_report_out_is_a_file_then_message_and_returns_1(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("not a folder")
    out = io.StringIO()
    assert run_report(live_runtime(), "30d", "week", str(tmp_path / "taken"), out) == 1
    assert out.getvalue().startswith(f"jitbot report: cannot write the report into {tmp_path / 'taken'}: ")
