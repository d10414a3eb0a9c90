"""Revocation punctuality at scale, and Redis memory per grant.

For each number of further grants that stay active (default 1,000 and 100,000), a fresh jitbot (embedded Redis,
the Procfile's worker, the fake provider taking `--delay` per cloud call) is loaded through the real store with
`--due` grants (default 10,000) expiring evenly over `--window` (default 60 s). It prints how late each was
revoked (the `expired` audit record against the grant's end: p50, p99, max) and how many were missed (not revoked
within 60 s of their end). The baseline in the same run is the smaller load: the lag should grow with the
grants that are due, not with all grants. Memory per grant is `INFO memory` before and after loading the
largest set, divided by the grants loaded (the requests, their indexes and their three audit records each).

The AWS cell then does the same through the real AWS provider, against moto with IAM's quotas enforced: the
`--due` grants spread over `--roles` roles (default 5), `--early` of them (default 20%) ended early by End now at
their end time, the rest reaching their end with credentials that end with them. Beside the lag it prints the
IAM writes per revocation (PutRolePolicy and DeleteRolePolicy as moto received them): an early end needs its
session denied, a natural end needs nothing.

Run: .venv/bin/python bench/revocation.py [--due 10000] [--window 60] [--active 1000,100000] [--delay 0.05]
         [--roles 5] [--early 0.2]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import structlog

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jitbot.store import Store
from jitbot.store.keys import EXPIRY, failures_key
from jitbot.testing import aws_limits
from jitbot.testing.grants import load_grants
from jitbot.testing.stack import Stack

MISSED_AFTER_S = 60.0
CATALOG = """
approver_channel: C0APPROVALS
defaults: {{min_duration: 1s, max_duration: 7d}}
resources:
  sandbox:
    provider: fake
    delay: {delay}
    auto_approve: true
"""


AWS_CATALOG_HEAD = """
approver_channel: C0APPROVALS
defaults: {min_duration: 1s, max_duration: 12h}
resources:
"""
AWS_ROLE = """  role-{n}:
    provider: aws
    role_arn: arn:aws:iam::123456789012:role/jit-role-{n}
    auto_approve: true
"""


def lags(store: Store, ends: dict[str, datetime], deadline: float) -> list[float]:
    """Seconds from each grant's end to its `expired` record; waits until all are in or the deadline passes."""
    found: dict[str, float] = {}
    cursor = "-"
    while time.time() < deadline and len(found) < len(ends):
        for entry_id, fields in store.chain.entries(cursor):
            cursor = "(" + entry_id
            if fields.get("event") in ("expired", "revoked") and fields["request_id"] in ends:
                at = datetime.fromisoformat(fields["at"])
                found[fields["request_id"]] = (at - ends[fields["request_id"]]).total_seconds()
        time.sleep(0.5)
    return list(found.values())


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def run(due: int, window: float, active: int, delay: float) -> tuple[str, float]:
    with tempfile.TemporaryDirectory() as home, Stack(Path(home), CATALOG.format(delay=delay)) as stack:
        store = Store(stack.redis())
        before = int(stack.redis().info("memory")["used_memory"])
        started = time.monotonic()
        load_grants(store, [datetime.now(UTC) + timedelta(days=1)] * active, ["sandbox"])
        rate = active / max(time.monotonic() - started, 1e-9)
        lead = due / max(rate, 1) + 10  # the due ones are loaded before the first falls due
        first = datetime.now(UTC) + timedelta(seconds=lead)
        ends = [first + timedelta(seconds=window * n / due) for n in range(due)]
        ids = load_grants(store, ends, ["sandbox"])
        spare = (first - datetime.now(UTC)).total_seconds()
        memory = (int(stack.redis().info("memory")["used_memory"]) - before) / (active + due)
        by_id = dict(zip(ids, ends, strict=True))
        measured = lags(store, by_id, ends[-1].timestamp() + MISSED_AFTER_S)
        missed = due - len([lag for lag in measured if lag <= MISSED_AFTER_S])
        left = stack.redis().zcard(EXPIRY) - active
    line = (
        f"{due:>6} due over {window:.0f}s, {active:>6} more active:  lag p50 {statistics.median(measured):6.2f}s"
        f"  p99 {percentile(measured, 0.99):6.2f}s  max {max(measured):6.2f}s  missed {missed}"
        f"  (still indexed {left}; loaded at {rate:,.0f}/s, {spare:.0f}s to spare)"
    )
    return line, memory


def run_aws(due: int, window: float, roles: int, early: float) -> str:
    """`due` AWS grants over `roles` roles ending within `window`, `early` of them by End now: lag and IAM writes."""
    catalog = AWS_CATALOG_HEAD + "".join(AWS_ROLE.format(n=n) for n in range(roles))
    with tempfile.TemporaryDirectory() as home, Stack(Path(home), catalog) as stack:
        store = Store(stack.redis())
        first = datetime.now(UTC) + timedelta(seconds=due / 250 + 10)  # loaded (~400/s) before the first is due
        ends = [first + timedelta(seconds=window * n / due) for n in range(due)]
        aws_limits.iam_writes.clear()
        every = round(1 / early) if early else 0  # the n-th grant is ended early every `every` rounds of roles
        ids = load_grants(
            store, ends, [f"role-{n}" for n in range(roles)], lambda n: bool(every) and (n // roles) % every == 0
        )
        spare = (first - datetime.now(UTC)).total_seconds()
        measured = lags(store, dict(zip(ids, ends, strict=True)), ends[-1].timestamp() + MISSED_AFTER_S)
        missed = due - len([lag for lag in measured if lag <= MISSED_AFTER_S])
        writes = sum(aws_limits.iam_writes.values())
        failures = len(stack.redis().keys(failures_key("*")))
    return (
        f"{due:>6} AWS grants over {roles} roles, {early:.0%} ended early:  lag p50 {statistics.median(measured):6.2f}s"
        f"  p99 {percentile(measured, 0.99):6.2f}s  max {max(measured):6.2f}s  missed {missed}"
        f"  IAM writes {writes} ({writes / due:.2f} per revocation; {failures} revocations retried;"
        f" {spare:.0f}s to spare)"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--due", type=int, default=10_000)
    parser.add_argument("--window", type=float, default=60.0)
    parser.add_argument("--active", default="1000,100000")
    parser.add_argument("--delay", type=float, default=0.05, help="seconds per fake cloud call")
    parser.add_argument("--roles", type=int, default=5)
    parser.add_argument("--early", type=float, default=0.2, help="share of grants ended early (End now)")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))  # not 300k audit lines
    print(f"fake cloud call: {args.delay * 1000:.0f} ms; missed = not revoked within {MISSED_AFTER_S:.0f}s of its end")
    memory = 0.0
    for active in (int(a) for a in args.active.split(",")):
        line, memory = run(args.due, args.window, active, args.delay)
        print(line, flush=True)
    print(f"Redis memory per grant at the largest load: {memory:,.0f} bytes")
    print(run_aws(args.due, args.window, args.roles, args.early), flush=True)


if __name__ == "__main__":
    main()
