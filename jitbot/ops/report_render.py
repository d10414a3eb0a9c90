"""The access review as people read it: Markdown, CSV and the duration-trend chart (PNG)."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from jitbot.core.csv_cells import write_csv
from jitbot.core.durations import format_duration
from jitbot.ops.report import ALL, CHART, CHART_LINES, COUNTS, NONE, Bucket, Figures, Report, ResourceReport, Trend


def to_markdown(report: Report) -> str:
    """The review document: headline figures, a table per resource, approvers, trends, repeaters, unused resources."""
    parts = [
        _md_headline(report),
        _md_resources(report),
        _md_approvers(report),
        _md_trends(report),
        _md_repeaters(report),
        _md_never_requested(report),
    ]
    return "\n\n".join(parts) + "\n"


def _md_headline(report: Report) -> str:
    t = report.overall.total
    figures = [
        f"- **{_n(t.requests, 'request')}**, {_n(t.grants, 'grant')}: {_n(t.approvals, 'approval')} by people,"
        f" {_n(t.auto_approvals, 'auto-approval')}, {_n(t.denials, 'denial')}, {t.timed_out} timed out,"
        f" {t.cancelled} cancelled, {t.failed} failed",
        f"- **{_n(t.early_ends, 'early end')}** (revoked), {_n(t.extensions, 'extension')},"
        f" {_n(t.breakglass, 'break-glass use')}",
        f"- Requested duration: median {_dur(t.requested_median)}, p90 {_dur(t.requested_p90)};"
        f" actually used: median {_dur(t.used_median)}, p90 {_dur(t.used_p90)} ({_n(t.used, 'grant')} measured)",
        f"- Trend: {_trend_line(report.overall.trend)}",
        f"- {_n(len(report.repeaters), 'repeat requester')};"
        f" {_n(len(report.never_requested), 'catalog resource')} never requested",
    ]
    return _md_intro(report) + "\n\n" + "\n".join(figures)


def _md_intro(report: Report) -> str:
    days = (report.until - report.since) / timedelta(days=1)
    buckets = "ISO weeks (Monday to Sunday, UTC)" if report.bucket == "week" else "calendar months (UTC)"
    return (
        f"# Access review, {report.since:%Y-%m-%d} to {report.until:%Y-%m-%d}\n\n"
        f"{days:g} days, {_when(report.since)} to {_when(report.until)} UTC, in {buckets}; the first and the last"
        f" may be partial. Generated {_when(report.generated_at)} UTC.\n\n"
        "Durations are medians and p90s (nearest rank: the smallest value that at least 90% of the values do not"
        " exceed). *Requested* counts every request, denied and timed-out ones too. *Used* runs from the grant to its"
        " end (expiry, revocation or failure) and counts the grants that began and ended in the period. *Approvals*"
        " are by people, an endorsement (one approval of several) included."
    )


def _md_resources(report: Report) -> str:
    header = ["Resource", "Requests", "Grants", "Approvals", "Auto", "Denied", "Timed out", "Early ends"]
    header += ["Extended", "Break-glass", "Requested median / p90", "Used median / p90"]
    rows = [_md_resource_row(part.name, part.total) for part in report.resources]
    rows.append(_md_resource_row("**all**", report.overall.total))
    return "## Per resource\n\n" + _md_table(header, rows)


def _md_resource_row(name: str, t: Figures) -> list[str]:
    counts = [t.requests, t.grants, t.approvals, t.auto_approvals, t.denials, t.timed_out, t.early_ends]
    counts += [t.extensions, t.breakglass]
    spans = [f"{_dur(t.requested_median)} / {_dur(t.requested_p90)}", f"{_dur(t.used_median)} / {_dur(t.used_p90)}"]
    return [name, *map(str, counts), *spans]


def _md_approvers(report: Report) -> str:
    rows = []
    for approver, count in report.overall.total.approvers.items():
        where = [(p.name, p.total.approvers[approver]) for p in report.resources if approver in p.total.approvers]
        rows.append([approver, str(count), ", ".join(f"{name} {n}" for name, n in where)])
    table = _md_table(["Approver", "Approvals", "By resource"], rows) if rows else "No approvals by people."
    return "## Approvals by approver\n\n" + table


def _md_trends(report: Report) -> str:
    noun = _bucket_noun(report)
    lines = [f"## Duration trend by {noun}", "", f"![Median requested and used duration by {noun}]({CHART})", ""]
    parts = [p for p in (report.overall, *report.resources) if p.total.requests]
    lines += [f"- **{_part_name(p)}**: {_trend_line(p.trend)}" for p in parts]
    for part in parts:
        header = [noun.capitalize(), "Requests", "Requested median", "Requested p90", "Used", "Used median"]
        rows = [_md_bucket_row(b, report.bucket) for b in part.buckets if b.figures.requests or b.figures.used]
        lines += ["", f"### {_part_name(part)}", "", _md_table([*header, "Used p90"], rows)]
    return "\n".join(lines)


def _md_bucket_row(b: Bucket, bucket: str) -> list[str]:
    f = b.figures
    when = f"{b.start:%Y-%m-%d} ({b.label[-3:]})" if bucket == "week" else b.label
    durations = [_dur(f.requested_median), _dur(f.requested_p90), str(f.used), _dur(f.used_median), _dur(f.used_p90)]
    return [when, str(f.requests), *durations]


def _md_repeaters(report: Report) -> str:
    title = f"## Repeat requesters ({report.repeat_threshold} or more requests for the same resource)\n\n"
    if not report.repeaters:
        return title + "None."
    rows = [[r.user, r.resource, str(r.requests)] for r in report.repeaters]
    return (
        title
        + "Candidates for a standing role or a different one:\n\n"
        + _md_table(["User", "Resource", "Requests"], rows)
    )


def _md_never_requested(report: Report) -> str:
    title = "## Never requested\n\n"
    if not report.never_requested:
        return title + "Every resource in the catalog was requested."
    names = "\n".join(f"- {name}" for name in report.never_requested)
    return title + "In the catalog but not requested once in the period; candidates for removal:\n\n" + names


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    """Columns of figures (every cell starts with a digit, or is empty) are right-aligned."""
    figures = [i > 0 and all(row[i][:1].isdigit() or row[i][:1] == NONE for row in rows) for i in range(len(header))]
    align = ["--:" if right else "---" for right in figures]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in [header, align, *rows])


def _trend_line(trend: Trend) -> str:
    if trend.first is None or trend.last is None:
        return trend.verdict
    first, last = trend.first, trend.last
    return (
        f"{trend.verdict}: median {_dur(first.figures.requested_median)} in {first.label}"
        f" → {_dur(last.figures.requested_median)} in {last.label}"
    )


def _part_name(part: ResourceReport) -> str:
    return "All resources" if part.name == ALL else part.name


def _bucket_noun(report: Report) -> str:
    return "week" if report.bucket == "week" else "month"


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _dur(seconds: float | None) -> str:
    return NONE if seconds is None else format_duration(timedelta(seconds=round(seconds)))


def _when(at: datetime) -> str:
    return f"{at.astimezone(UTC):%Y-%m-%d %H:%M}"


CSV_COLUMNS = (
    *("resource", "bucket", "bucket_start", *COUNTS),
    *("requested_median_s", "requested_p90_s", "used_median_s", "used_p90_s", "approvals_by_approver"),
)


def to_csv(report: Report) -> str:
    """One row per resource per bucket, then one `(all)` row per bucket; durations in seconds, empty if none."""
    out = io.StringIO()
    write_csv(out, CSV_COLUMNS, _csv_rows(report), lineterminator="\n")
    return out.getvalue()


def _csv_rows(report: Report) -> Iterator[list[object]]:
    for part in (*report.resources, report.overall):
        for b in part.buckets:
            f = b.figures
            seconds = [f.requested_median, f.requested_p90, f.used_median, f.used_p90]
            who = " ".join(f"{name}={n}" for name, n in f.approvers.items())
            counts = [getattr(f, name) for name in COUNTS]
            yield [part.name, b.label, b.start.date().isoformat(), *counts, *map(_csv_number, seconds), who]


def _csv_number(value: float | None) -> str:
    return "" if value is None else str(int(value)) if value.is_integer() else f"{value:.1f}"


def render_chart(report: Report, path: str | Path) -> None:
    """Median requested duration per bucket, a solid line per resource, its used duration dashed: a 1000x500 PNG.

    The CHART_LINES most requested resources are drawn. A bare Figure draws with Agg without touching pyplot's
    global state; imported here so that the web process never pays for matplotlib.
    """
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 5), dpi=100)
    axes = figure.subplots()
    asked = [p for p in report.resources if p.total.requests or p.total.used]
    shown = sorted(asked, key=lambda p: -p.total.requests)[:CHART_LINES]
    handles = _plot_lines(axes, shown)
    if not handles:
        axes.text(0.5, 0.5, "no requests in the period", ha="center", va="center", transform=axes.transAxes)
    title = f"{len(shown)} most requested of {len(asked)}" if len(shown) < len(asked) else None
    axes.legend(handles=handles, title=title, loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")
    x = range(len(report.overall.buckets))
    axes.set_xticks(list(x), [_tick(b.start, report.bucket) for b in report.overall.buckets], rotation=45, ha="right")
    axes.set_xlim(-0.5, len(x) - 0.5)
    axes.set_ylim(bottom=0)
    axes.grid(alpha=0.3)
    noun = _bucket_noun(report)
    axes.set_title(f"Median requested and used duration per {noun}, {report.since:%Y-%m-%d} to {report.until:%Y-%m-%d}")
    axes.set_xlabel("week starting (Monday, UTC)" if noun == "week" else "month (UTC)")
    axes.set_ylabel("hours")
    figure.tight_layout()
    figure.savefig(path, format="png", dpi=100)


def _plot_lines(axes: Any, parts: Sequence[ResourceReport]) -> list[Any]:
    """A solid line and a dashed one per resource, in one colour; returns the legend's handles."""
    from matplotlib.lines import Line2D

    handles: list[Any] = []
    for i, part in enumerate(parts):
        color = f"C{i % 10}"
        handles += axes.plot(*_series(part, lambda f: f.requested_median), color=color, marker="o", label=part.name)
        axes.plot(*_series(part, lambda f: f.used_median), color=color, linestyle="--", marker=".")
    if handles:
        handles.append(Line2D([], [], color="grey", marker="o", label="requested (solid)"))
        handles.append(Line2D([], [], color="grey", marker=".", linestyle="--", label="used (dashed)"))
    return handles


def _series(part: ResourceReport, value: Callable[[Figures], float | None]) -> tuple[list[int], list[float]]:
    """The buckets that have a value, in hours: a quiet week is a gap the line bridges, not a drop to zero."""
    points = [(x, v / 3600) for x, b in enumerate(part.buckets) if (v := value(b.figures)) is not None]
    return [x for x, _ in points], [hours for _, hours in points]


def _tick(start: datetime, bucket: str) -> str:
    return f"{start.day} {start:%b}" if bucket == "week" else f"{start:%b %Y}"
