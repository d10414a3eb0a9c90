"""The access review's figures, from audit records: grants, approvals, duration creep, repeat requesters (pure)."""

from __future__ import annotations

import functools
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from jitbot.core.events import AUTO, EventName
from jitbot.store.audit import AuditRecord

BUCKETS = ("week", "month")
ALL = "(all)"  # the overall rows; a resource name cannot hold parentheses
CREEP, SHRINK = 1.25, 0.8  # last bucket's median requested duration against the first's
REPEAT_THRESHOLD = 5
CHART = "duration-trend.png"
CHART_LINES = 10  # one colour each from matplotlib's ten; more would be spaghetti (the CSV has them all)
TIMES, NONE = "\u00d7", "\u2013"  # multiplication sign, en dash: escaped, as ruff flags look-alikes in source
STREAM_SKEW = timedelta(hours=1)  # stream ids come from Redis's clock, `at` from ours: read a margin, let `at` decide
COUNTS = (  # the Figures fields that count events, in report order
    *("requests", "grants", "approvals", "auto_approvals", "denials", "timed_out", "cancelled", "failed"),
    *("early_ends", "extensions", "breakglass", "used"),
)
COUNTED: dict[str, str] = {  # event → the Figures field it counts
    EventName.REQUESTED: "requests",
    EventName.GRANTED: "grants",
    EventName.DENIED: "denials",
    EventName.TIMED_OUT: "timed_out",
    EventName.CANCELLED: "cancelled",
    EventName.FAILED: "failed",
    EventName.REVOKED: "early_ends",
    EventName.EXTENDED: "extensions",
    EventName.BREAK_GLASS: "breakglass",
}
ENDS = (EventName.EXPIRED, EventName.REVOKED, EventName.FAILED)  # events that end a grant
STILL_PENDING = (EventName.REQUESTED, EventName.ENDORSED)  # after these, a request still waits for a decision
APPROVING = (EventName.APPROVED, EventName.ENDORSED)  # one approval, the last one needed or not


@dataclass(frozen=True)
class Figures:
    """Counts, and durations in seconds: median, and p90 by nearest rank; None when there is nothing to measure.

    `approvals` (by people, `approvers` says who) counts endorsements too; `used` counts the grants whose use was
    measured: granted and ended (expired, revoked, failed) both within the period.
    """

    requests: int
    grants: int
    approvals: int
    auto_approvals: int
    denials: int
    timed_out: int
    cancelled: int
    failed: int
    early_ends: int
    extensions: int
    breakglass: int
    used: int
    approvers: dict[str, int]
    requested_median: float | None
    requested_p90: float | None
    used_median: float | None
    used_p90: float | None


@dataclass(frozen=True)
class Bucket:
    start: datetime
    label: str
    figures: Figures


@dataclass(frozen=True)
class Trend:
    verdict: str
    ratio: float | None = None  # last bucket's median requested duration over the first's
    first: Bucket | None = None
    last: Bucket | None = None


@dataclass(frozen=True)
class ResourceReport:
    name: str
    total: Figures
    buckets: tuple[Bucket, ...]
    trend: Trend


@dataclass(frozen=True)
class Repeat:
    user: str
    resource: str
    requests: int


@dataclass(frozen=True)
class Report:
    since: datetime
    until: datetime
    bucket: str
    generated_at: datetime
    overall: ResourceReport
    resources: tuple[ResourceReport, ...]
    repeaters: tuple[Repeat, ...]
    never_requested: tuple[str, ...]
    repeat_threshold: int


@dataclass(frozen=True)
class _Fact:
    resource: str
    bucket: datetime  # the start of the event's bucket, or of the grant's start for its use
    figure: str
    who: str
    seconds: float | None = None


def build_report(
    records: Iterable[AuditRecord],
    resources: Sequence[str],
    since: datetime,
    until: datetime,
    bucket: str,
    now: datetime,
    repeat_threshold: int = REPEAT_THRESHOLD,
) -> Report:
    """The review of the records with since <= at < until, given in trail order, per resource and overall."""
    starts = bucket_starts(since, until, bucket)
    facts = list(_facts((r for r in records if since <= r.at < until), bucket))
    grouped: defaultdict[str, list[_Fact]] = defaultdict(list)
    for fact in facts:
        grouped[fact.resource].append(fact)
    names = [*resources, *sorted(set(grouped) - set(resources))]
    asked = {f.resource for f in facts if f.figure == "requests"}
    return Report(
        since,
        until,
        bucket,
        now,
        _resource_report(ALL, facts, starts, bucket),
        tuple(_resource_report(name, grouped[name], starts, bucket) for name in names),
        _repeaters(facts, repeat_threshold),
        tuple(name for name in resources if name not in asked),
        repeat_threshold,
    )


def _facts(records: Iterable[AuditRecord], bucket: str) -> Iterator[_Fact]:
    """What each record counts for; a grant's start is kept until its end to measure how long it was used."""
    started: dict[str, datetime] = {}
    pending: set[str] = set()
    for record in records:
        rid = record.request_id
        was_pending = rid in pending
        if record.event != EventName.REFUSED:  # a refused click leaves the request as it was
            pending.discard(rid)
        if record.event in STILL_PENDING:
            pending.add(rid)
        figure = _figure(record, was_pending)
        if figure:
            when = bucket_start(record.at, bucket)
            yield _Fact(record.resource, when, figure, record.actor, _requested_seconds(record))
        if record.event == EventName.GRANTED:
            started[rid] = record.at
        elif record.event in ENDS and rid in started:
            begin = started.pop(rid)
            used = (record.at - begin).total_seconds()
            yield _Fact(record.resource, bucket_start(begin, bucket), "used", record.actor, used)


def _figure(record: AuditRecord, was_pending: bool) -> str | None:
    if record.event in APPROVING:
        if record.actor != AUTO:
            return "approvals"
        return "auto_approvals" if record.event == EventName.APPROVED else None
    if record.event == EventName.EXPIRED:
        # A pending request that nobody decided: today's trail says "timed out"; earlier ones said "expired",
        # with the `decided_at` a time-out sets (a grant's end sets only a note).
        return "timed_out" if was_pending or "decided_at" in record.detail else None
    return COUNTED.get(record.event)


def _requested_seconds(record: AuditRecord) -> float | None:
    value = record.detail.get("duration_s") if record.event == EventName.REQUESTED else None
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _resource_report(name: str, facts: list[_Fact], starts: Sequence[datetime], bucket: str) -> ResourceReport:
    grouped: defaultdict[datetime, list[_Fact]] = defaultdict(list)
    for fact in facts:
        grouped[fact.bucket].append(fact)
    buckets = tuple(Bucket(start, bucket_label(start, bucket), _figures(grouped[start])) for start in starts)
    return ResourceReport(name, _figures(facts), buckets, _trend(buckets))


def _figures(facts: list[_Fact]) -> Figures:
    counts = Counter(f.figure for f in facts)
    approvers = Counter(f.who for f in facts if f.figure == "approvals")
    requested = [f.seconds for f in facts if f.figure == "requests" and f.seconds is not None]
    used = [f.seconds for f in facts if f.figure == "used" and f.seconds is not None]
    values: dict[str, Any] = {name: counts[name] for name in COUNTS}
    return Figures(
        **values,
        approvers=dict(sorted(approvers.items(), key=lambda item: (-item[1], item[0]))),
        requested_median=median(requested),
        requested_p90=p90(requested),
        used_median=median(used),
        used_p90=p90(used),
    )


def median(values: Sequence[float]) -> float | None:
    """The middle value, or the mean of the two middle ones."""
    return statistics.median(values) if values else None


def p90(values: Sequence[float]) -> float | None:
    """Nearest rank: the smallest value with at least 90% of the values at or below it, i.e. sorted[⌈0.9·n⌉ - 1].

    The rank is computed in integers: 0.9 * 70 is 63.00000000000001 in floating point, one rank too far.
    """
    return sorted(values)[(90 * len(values) + 99) // 100 - 1] if values else None


def _trend(buckets: Sequence[Bucket]) -> Trend:
    measured = [b for b in buckets if b.figures.requested_median]
    if len(measured) < 2:
        return Trend("not enough data for a trend")
    first, last = measured[0], measured[-1]
    ratio = (last.figures.requested_median or 0) / (first.figures.requested_median or 1)
    return Trend(trend_verdict(ratio), ratio, first, last)


def trend_verdict(ratio: float) -> str:
    if ratio > CREEP:
        return f"requested durations grew {ratio:.1f}{TIMES} (creep)"
    if ratio < SHRINK:
        return f"requested durations shrank to {ratio:.1f}{TIMES}"
    return f"requested durations stable ({ratio:.1f}{TIMES})"


def _repeaters(facts: Iterable[_Fact], threshold: int) -> tuple[Repeat, ...]:
    asks = Counter((f.who, f.resource) for f in facts if f.figure == "requests")
    repeats = [Repeat(user, resource, n) for (user, resource), n in asks.items() if n >= threshold]
    return tuple(sorted(repeats, key=lambda r: (-r.requests, r.user, r.resource)))


def bucket_start(at: datetime, bucket: str) -> datetime:
    """Midnight UTC on the Monday of `at`'s ISO week, or on the first of its month."""
    return _bucket_of_day(at.astimezone(UTC).date(), bucket)


@functools.lru_cache(maxsize=1024)  # a report asks for the same few hundred days again and again
def _bucket_of_day(day: date, bucket: str) -> datetime:
    midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
    if bucket == "week":
        return midnight - timedelta(days=day.weekday())
    if bucket == "month":
        return midnight.replace(day=1)
    raise ValueError(f"bucket must be one of {', '.join(BUCKETS)}, not {bucket!r}")


def bucket_starts(since: datetime, until: datetime, bucket: str) -> tuple[datetime, ...]:
    """Every bucket that meets [since, until); the first and the last may be partial."""
    starts = [bucket_start(since, bucket)]
    while True:
        following = bucket_start(starts[-1] + timedelta(days=32 if bucket == "month" else 7), bucket)
        if following >= until:
            return tuple(starts)
        starts.append(following)


def bucket_label(start: datetime, bucket: str) -> str:
    return start.strftime("%G-W%V") if bucket == "week" else start.strftime("%Y-%m")
