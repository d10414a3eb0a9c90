"""Figures for the walking skeleton, through the real processes: ack latency, approval-to-DM, expiry lag.

Each figure is printed beside a baseline measured in the same run on the same machine:
- slash-command ack vs. GET /healthz (the HTTP stack with no Bolt work);
- approval click → credentials DM vs. request → approval message (the queue and Slack, without a cloud);
- expiry → revoked (audit) and → DM scrubbed vs. the sweeper's idle poll (how often it looks for what is due).
Run: .venv/bin/python bench/flow.py [--rounds N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import urllib.request
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jitbot.sweeper import IDLE_S
from jitbot.testing.stack import Stack
from tests.integration.conftest import CATALOG
from tests.integration.helpers import approve, audit_events, credentials_dm, request_access, wait_until


def ms(values: list[float]) -> str:
    ordered = sorted(values)
    p99 = ordered[min(int(len(values) * 0.99), len(values) - 1)]
    return f"p50 {statistics.median(values) * 1000:7.1f} ms  p99 {p99 * 1000:7.1f} ms  (n={len(values)})"


def ratio(measured: list[float], baseline: list[float]) -> str:
    return f"{statistics.median(measured) / statistics.median(baseline):.1f}x the baseline"


def healthz(stack: Stack) -> float:
    start = time.perf_counter()
    with urllib.request.urlopen(f"http://127.0.0.1:{stack.port}/healthz", timeout=5):
        return time.perf_counter() - start


def one_grant(stack: Stack, seconds: int) -> tuple[float, float, float, float]:
    """(request → approval message, click → DM, expiry → revoked, expiry → scrubbed), in seconds."""
    start = time.monotonic()
    request_id, posted = request_access(stack, "U0ALICE", f"request prod-db {seconds}s bench")
    announced = posted.at - start
    clicked = time.monotonic()
    approve(stack, "U0BOB", request_id, posted)
    dm, _ = credentials_dm(stack, "U0ALICE", request_id)
    to_dm = dm.at - clicked
    events = wait_until(
        lambda: (
            {e["event"]: e for e in audit_events(stack, request_id) if e["event"] in ("granted", "expired")}
            if "expired" in [e["event"] for e in audit_events(stack, request_id)]
            else None
        ),
        60,
        "expiry",
    )
    granted = datetime.fromisoformat(events["granted"]["at"])
    expired = datetime.fromisoformat(events["expired"]["at"])
    revoked_lag = (expired - granted).total_seconds() - seconds
    scrub = stack.slack.wait_for(
        lambda c: (
            c.method == "chat.update"
            and c.params.get("channel") == "D0ALICE"
            and request_id in c.params.get("text", "")
        ),
        30,
    )
    scrub_lag = revoked_lag + (scrub.at - _monotonic_of(expired))
    return announced, to_dm, revoked_lag, scrub_lag


def _monotonic_of(moment: datetime) -> float:
    return time.monotonic() - (time.time() - moment.timestamp())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=10)
    rounds = parser.parse_args().rounds
    with tempfile.TemporaryDirectory() as home, Stack(Path(home), CATALOG) as stack:
        stack.slack.usergroups = {"S0DBAS": ["U0DBA"]}
        for _ in range(5):  # warm up both gunicorn workers and the worker's imports
            stack.sender.command("U0ALICE", "help")
            healthz(stack)
        health = [healthz(stack) for _ in range(rounds * 5)]
        acks = [stack.sender.command("U0ALICE", f"request prod-db 1h ack bench {i}").elapsed for i in range(rounds * 5)]
        flows = [one_grant(stack, 2) for _ in range(rounds)]
    print(f"machine: {__import__('os').cpu_count()} cores; rounds: {rounds}")
    print(f"GET /healthz (baseline)             {ms(health)}")
    print(f"/access request ack                 {ms(acks)}   ratio {ratio(acks, health)}")
    announce = [f[0] for f in flows]
    to_dm = [f[1] for f in flows]
    print(f"request → approval message (base)   {ms(announce)}")
    print(f"approve click → credentials DM      {ms(to_dm)}   ratio {ratio(to_dm, announce)}")
    print(f"sweeper idle poll (baseline)        {IDLE_S * 1000:.0f} ms")
    print(f"expiry → revoked (audit 'expired')  {ms([f[2] for f in flows])}")
    print(f"expiry → DM scrubbed                {ms([f[3] for f in flows])}")


if __name__ == "__main__":
    main()
