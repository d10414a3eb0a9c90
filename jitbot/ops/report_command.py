"""`jitbot report`: read the audit trail for a period, build the access review, write it to a folder."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol, TextIO

from jitbot.core import clock
from jitbot.core.catalog import Catalog
from jitbot.core.durations import format_duration, parse_duration
from jitbot.core.errors import UsageError
from jitbot.ops.report import BUCKETS, CHART, STREAM_SKEW, Report, build_report
from jitbot.ops.report_render import render_chart, to_csv, to_markdown
from jitbot.slack.notify import Notifier
from jitbot.store import Store
from jitbot.store.audit import AuditRecord


class Sources(Protocol):
    """What the command needs of the runtime."""

    @property
    def store(self) -> Store: ...

    @property
    def catalog(self) -> Catalog: ...


class Reporting(Sources, Protocol):
    @property
    def notifier(self) -> Notifier: ...


def run_report(rt: Sources, period: str, bucket: str, out: str, stream: TextIO) -> int:
    """`jitbot report`: write report.md, report.csv and the chart into `out`, print the review; 2 for a bad period."""
    try:
        length = parse_duration(period)
    except UsageError as error:
        print(f"jitbot report: --period: {error}", file=stream)
        return 2
    if bucket not in BUCKETS:
        print(f"jitbot report: --bucket must be one of {', '.join(BUCKETS)}, not `{bucket}`.", file=stream)
        return 2
    report = review(rt, length, bucket)
    try:
        markdown, paths = write_report(report, Path(out))
    except OSError as error:
        print(f"jitbot report: cannot write the report into {out}: {error}", file=stream)
        return 1
    stream.write(markdown)
    print(f"Wrote {paths[0]}, {paths[1]} and {paths[2]}.", file=stream)
    return 0


def review(rt: Sources, period: timedelta, bucket: str) -> Report:
    """The review of the `period` up to now, from the trail."""
    until = clock.utcnow()
    since = until - period
    return build_report(read_records(rt.store, since, until), list(rt.catalog.resources), since, until, bucket, until)


def write_report(report: Report, folder: Path) -> tuple[str, tuple[Path, Path, Path]]:
    """report.md, report.csv and the chart in `folder` (made if need be); returns the Markdown and the paths."""
    paths = (folder / "report.md", folder / "report.csv", folder / CHART)
    markdown = to_markdown(report)
    folder.mkdir(parents=True, exist_ok=True)
    paths[0].write_text(markdown, encoding="utf-8")
    paths[1].write_text(to_csv(report), encoding="utf-8")
    render_chart(report, paths[2])
    return markdown, paths


def read_records(store: Store, since: datetime, until: datetime) -> Iterator[AuditRecord]:
    """The trail around [since, until), found by stream id (`<ms>-<n>`) rather than read from the start."""
    first, last = since - STREAM_SKEW, until + STREAM_SKEW
    for _, fields in store.chain.entries(f"{int(first.timestamp() * 1000)}-0", str(int(last.timestamp() * 1000))):
        yield AuditRecord.from_fields(fields)


def post_report(rt: Reporting, user: str, period: timedelta) -> None:
    """`/access report`: the same review, sent to the admin who asked as files in their DM."""
    report = review(rt, period, "week")
    with tempfile.TemporaryDirectory() as folder:
        _, paths = write_report(report, Path(folder))
        rt.notifier.send_files(user, paths, f"Access review of the last {format_duration(period)}.")
