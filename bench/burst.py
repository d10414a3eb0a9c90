"""A burst in Slack: 300 `/access request`s in one minute to one approver channel, under Slack's rate limits.

Two stacks run side by side in the same run, each the real processes (web, two workers, sweeper) against a Slack
stand-in that enforces Slack's limits (jitbot.testing.slack_standin.SlackLimits): one with jitbot's pacing
(jitbot.slack.pacing), one with it off (JITBOT_SLACK_PACING=0: 429s left to the client's retries and RQ's), the
baseline. Each is sent the same burst, and 50 of its requests are approved during it, as soon as they are announced.

Printed for each: when every request was announced (seconds after it was asked: p50/p99/max), requests announced
twice or never, the 429s Slack answered by method, and credential DM latency after the approval click (p50/p99).
At one message a second per channel, 300 announcements take five minutes however they are paced.
Run: .venv/bin/python bench/burst.py [--requests N] [--approvals N] [--seconds S]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jitbot.slack import ids
from jitbot.testing.slack_standin import Call
from jitbot.testing.stack import Stack
from tests.integration.helpers import REQUEST_ID

CATALOG = """
approver_channel: C0APPROVALS
admins: [U0ADMIN]
defaults:
  min_duration: 1s
  max_duration: 1h
resources:
  fake-db:
    description: A fake cloud that answers at once
    provider: fake
    approvers: [U0BOB]
"""
CHANNEL = "C0APPROVALS"
SETTLE_S = 600  # the longest a run may take to announce everything after the burst


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def announced(calls: list[Call]) -> dict[str, list[Call]]:
    """Request id → the approval messages Slack accepted for it."""
    found: dict[str, list[Call]] = {}
    for call in calls:
        text = str(call.params.get("text", ""))
        if call.method == "chat.postMessage" and call.answered == 200 and call.params.get("channel") == CHANNEL:
            match = REQUEST_ID.search(text)
            if match:
                found.setdefault(match.group(0), []).append(call)
    return found


def credential_dm(calls: list[Call], request_id: str) -> Call | None:
    return next(
        (
            c
            for c in calls
            if c.method == "chat.postMessage"
            and c.answered == 200
            and str(c.params.get("channel", "")).startswith("U")
            and f"granted (`{request_id}`)" in str(c.params.get("text", ""))
        ),
        None,
    )


@dataclass
class Run:
    name: str
    stack: Stack
    asked: dict[str, float] = field(default_factory=dict)  # request id → when its command was sent (monotonic)
    clicked: dict[str, float] = field(default_factory=dict)  # request id → when its approval was clicked
    refused: int = 0  # commands not acknowledged with a request id


def burst(run: Run, count: int, seconds: float) -> None:
    """`count` requests from as many people, spread evenly over `seconds`."""
    start = time.monotonic()

    def one(n: int) -> None:
        time.sleep(max(0.0, start + n * seconds / count - time.monotonic()))
        sent = time.monotonic()
        reply = run.stack.sender.command(f"U0USER{n:04d}", f"request fake-db 30m burst {n}")
        found = REQUEST_ID.search(reply.body) if reply.status == 200 else None
        if found:
            run.asked[found.group(0)] = sent
        else:
            run.refused += 1

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(one, range(count)))


def approve(run: Run, approvals: int, until: float) -> None:
    """Approve requests as soon as their approval message is posted, `approvals` of them, until `until`."""
    while len(run.clicked) < approvals and time.monotonic() < until:
        for request_id, posts in announced(run.stack.slack.calls).items():
            if request_id in run.clicked or len(run.clicked) >= approvals:
                continue
            run.clicked[request_id] = time.monotonic()
            run.stack.sender.click(
                "U0BOB", ids.APPROVE, request_id, channel_id=str(posts[0].params["channel"]), message_ts="1"
            )
        time.sleep(0.05)


def wait_settled(run: Run, deadline: float) -> None:
    while time.monotonic() < deadline:
        calls = run.stack.slack.calls
        seen = announced(calls)
        dms = all(credential_dm(calls, r) for r in run.clicked)
        if dms and all(r in seen for r in run.asked):
            return
        time.sleep(0.5)


def drive(run: Run, count: int, approvals: int, seconds: float) -> None:
    approving = threading.Thread(target=approve, args=(run, approvals, time.monotonic() + seconds + SETTLE_S))
    approving.start()
    burst(run, count, seconds)
    wait_settled(run, time.monotonic() + SETTLE_S)
    approving.join()


def report(run: Run) -> list[str]:
    calls = run.stack.slack.calls
    seen = announced(calls)
    lag = [seen[r][0].at - at for r, at in run.asked.items() if r in seen]
    dm_lag = [dm.at - at for r, at in run.clicked.items() if (dm := credential_dm(calls, r)) is not None]
    limited = Counter(c.method for c in calls if c.answered == 429)
    twice = sum(1 for posts in seen.values() if len(posts) > 1)
    lost = sum(1 for r in run.asked if r not in seen)
    return [
        f"{run.name}: {len(run.asked)} requests acknowledged ({run.refused} refused)",
        f"  request → approval message posted   p50 {percentile(lag, 0.5):6.1f} s  p99 {percentile(lag, 0.99):6.1f} s"
        f"  max {max(lag, default=float('nan')):6.1f} s",
        f"  announced twice: {twice}   never announced: {lost}",
        f"  429s from Slack: {sum(limited.values())} {dict(limited) or ''}",
        f"  approval click → credentials DM     p50 {percentile(dm_lag, 0.5):6.2f} s"
        f"  p99 {percentile(dm_lag, 0.99):6.2f} s  ({len(dm_lag)} of {len(run.clicked)} delivered)",
    ]


def with_stack(home: Path, settings: dict[str, str], body: Callable[[Stack], list[str]]) -> list[str]:
    with Stack(home, CATALOG, workers=2, settings=settings, slack_limits=True) as stack:
        return body(stack)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--approvals", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60.0, help="the burst's length")
    args = parser.parse_args()

    def measured(name: str) -> Callable[[Stack], list[str]]:
        def body(stack: Stack) -> list[str]:
            run = Run(name, stack)
            drive(run, args.requests, args.approvals, args.seconds)
            return report(run)

        return body

    with tempfile.TemporaryDirectory() as home, ThreadPoolExecutor(2) as pool:
        paced = pool.submit(with_stack, Path(home) / "paced", {}, measured("paced (jitbot.slack.pacing)"))
        bare = pool.submit(
            with_stack, Path(home) / "unpaced", {"JITBOT_SLACK_PACING": "0"}, measured("baseline: pacing off")
        )
        lines = [*paced.result(), *bare.result()]
    print(f"{args.requests} requests in {args.seconds:.0f} s to one channel, {args.approvals} approved during it;")
    print("Slack stand-in limits on (1 post/s per channel, tiers per method); 2 workers each; both stacks at once")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
