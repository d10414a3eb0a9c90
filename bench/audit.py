"""How long the hash-chained audit trail takes to write, verify, export and report on, at 100,000 records.

The records are `requested` events a minute apart from 2026-08-25 over seven resources.

Baseline in the same run: reading the same stream with XRANGE and no hashing.
Run: .venv/bin/python bench/audit.py [--records N]
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import redis

from jitbot.core.domain import AuditEvent
from jitbot.ops.audit_trail import export_trail
from jitbot.ops.report_command import review, write_report
from jitbot.store import Store, audit, embedded
from jitbot.store.keys import AUDIT, AUDIT_HEAD

START = datetime(2026, 8, 25, tzinfo=UTC)


def fill(store: Store, count: int) -> float:
    """Append `count` chained records the fast way (one pipeline per 1,000), as a long history would be."""
    started = time.perf_counter()
    head = store.chain.head()
    for first in range(0, count, 1000):
        pipe = store.redis.pipeline(transaction=False)
        for n in range(first, min(first + 1000, count)):
            at = START + timedelta(minutes=n)
            event = AuditEvent(
                "requested",
                f"r-{n:06d}",
                "U0ALICE",
                f"res-{n % 7}",
                at,
                "pending",
                {"duration_s": 3600 + n % 5 * 1800, "reason": "INC-1"},
                "aws",
            )
            fields = audit.chain(event, head)
            pipe.xadd(AUDIT, fields)  # type: ignore[arg-type]
            head = (int(fields["seq"]), fields["hash"])
        pipe.set(AUDIT_HEAD, f"{head[0]}:{head[1]}")
        pipe.execute()
    return time.perf_counter() - started


def timed(label: str, work: object, baseline: float | None = None) -> float:
    started = time.perf_counter()
    work()  # type: ignore[operator]
    took = time.perf_counter() - started
    ratio = f"   {took / baseline:.1f}x the baseline" if baseline else ""
    print(f"{label:<46} {took:7.2f} s{ratio}")
    return took


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=100_000)
    count = parser.parse_args().records
    with tempfile.TemporaryDirectory() as home:
        client = redis.Redis.from_url(embedded.ensure_running(Path(home)))
        try:
            store = Store(client)
            print(f"records: {count:,}")
            print(f"{'write (pipelined chain, 1 process)':<46} {fill(store, count):7.2f} s")
            one_by_one = timed(
                "write 1,000 more one by one (AuditChain.record)",
                lambda: [store.chain.record(AuditEvent("refused", "-", "x", "-", START, "-", {})) for _ in range(1000)],
            )
            print(f"{'  = per chained record, one Lua script':<46} {one_by_one:7.2f} ms")
            base = timed("baseline: XRANGE every record, no hashing", lambda: sum(1 for _ in store.chain.entries()))
            verdict = audit.verify(store.chain.entries(), store.chain.head())
            assert verdict.ok, verdict.problem
            timed(
                "jitbot audit verify (live trail)",
                lambda: audit.verify(store.chain.entries(), store.chain.head()),
                base,
            )
            timed(
                "jitbot audit export --format jsonl",
                lambda: export_trail(store, None, None, "jsonl", io.StringIO()),
                base,
            )
            resources = {f"res-{n}": None for n in range(7)}
            sources = SimpleNamespace(store=store, catalog=SimpleNamespace(resources=resources))
            with tempfile.TemporaryDirectory() as out:
                period = datetime.now(UTC) - START + timedelta(days=1)
                timed(
                    "jitbot report (read, build, md/csv/png)",
                    lambda: write_report(review(sources, period, "week"), Path(out)),
                    base,
                )
        finally:
            embedded.stop(Path(home))


if __name__ == "__main__":
    main()
