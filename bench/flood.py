"""A flood of unsigned POSTs at /slack/events: what it leaves in Redis, and what it does to a real user's ack.

A fresh jitbot (the Procfile's processes, embedded Redis) is sent `--flood` unsigned POSTs (default 20,000) from
`--attackers` concurrent clients while one client sends signed `/access request`s, one after the other. It prints
the audit records the flood added (refusals are counted exactly, audited once a minute per reason), the exact
count on the metric, Redis memory before and after, and the `/access request` ack p50/p99 during the flood beside
the same ack measured in the same run with no flood (the baseline). The clients run in a process of their own.
Run: .venv/bin/python bench/flood.py [--flood 20000] [--attackers 8] [--requests 200]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jitbot.store import keys
from jitbot.testing.slack_sender import SlackSender, command_body
from jitbot.testing.stack import Stack
from tests.integration.conftest import CATALOG


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def acks(url: str, secret: str, count: int) -> list[float]:
    """In the clients' process: `count` signed `/access request`s, one at a time; seconds each."""
    sender = SlackSender(url, secret)
    elapsed = []
    for n in range(count):
        reply = sender.post(command_body("U0ALICE", f"request prod-db 1h flood bench {n}"))
        assert reply.status == 200, reply.body
        elapsed.append(reply.elapsed)
    return elapsed


def flood(url: str, count: int, attackers: int) -> list[int]:
    """In the clients' process: `count` unsigned POSTs from `attackers` clients; the statuses answered."""
    sender, body = SlackSender(url, "not-the-secret"), command_body("U0MALLORY", "request prod-db 12h steal")
    with ThreadPoolExecutor(attackers) as pool:
        return list(pool.map(lambda _: sender.post(body, {}).status, range(count)))


def unverified_records(stack: Stack) -> int:
    entries = stack.redis().xrange(keys.AUDIT)
    return sum(1 for _, fields in entries if fields[b"actor"] == b"unverified")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--flood", type=int, default=20_000)
    parser.add_argument("--attackers", type=int, default=8)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home, Stack(Path(home), CATALOG) as stack, ProcessPoolExecutor(2) as pool:
        url = f"http://127.0.0.1:{stack.port}/slack/events"
        baseline = pool.submit(acks, url, stack.secret, args.requests).result()
        time.sleep(2)  # the approval messages the baseline asked for go out
        records, memory = unverified_records(stack), int(stack.redis().info("memory")["used_memory"])
        started = time.monotonic()
        flooding = pool.submit(flood, url, args.flood, args.attackers)
        during = pool.submit(acks, url, stack.secret, args.requests).result()
        statuses = flooding.result()
        took = time.monotonic() - started
        added = unverified_records(stack) - records
        counted = int(stack.redis().hget(keys.COUNTERS, "unverified:unsigned") or 0)
        grown = int(stack.redis().info("memory")["used_memory"]) - memory
    refused = statuses.count(401)
    print(f"{args.flood} unsigned POSTs from {args.attackers} clients in {took:.1f} s: {refused} answered 401")
    print(f"audit records the flood added: {added}; counted on jitbot_unverified_requests_total: {counted}")
    print(f"Redis memory grown meanwhile (with {args.requests} real requests): {grown / 1024:.0f} KiB")
    print(
        f"/access request ack during the flood: p50 {percentile(during, 0.5) * 1000:.1f} ms,"
        f" p99 {percentile(during, 0.99) * 1000:.1f} ms;"
        f" without (baseline): p50 {percentile(baseline, 0.5) * 1000:.1f} ms,"
        f" p99 {percentile(baseline, 0.99) * 1000:.1f} ms"
    )


if __name__ == "__main__":
    main()
