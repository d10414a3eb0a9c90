"""A burst in Slack: 300 `/access request`s in one minute to one approver channel, under Slack's rate limits.

The burst is what an incident looks like: 50 people, each asking 6 times for 3 of 6 resources (twice each), in a
random order over the minute. The web process asks Slack's users.info once per person (kept 10 minutes) and again
at each approval (fresh), never waiting on a 429: 300 distinct requesters (this benchmark's first version) spent
its Tier 4 limit (100 a minute) in the first seconds and most requests were refused at the ack. 50 people and 50
approvals still come near that limit when most people first ask early in the minute: an ack or an approval it
refuses ("try again in a minute") is counted and printed, never lost.

Two stacks run side by side in the same run, each the real processes (web, two workers, sweeper) against a Slack
stand-in that enforces Slack's limits (jitbot.testing.slack_limits.SlackLimits): one as jitbot runs (pacing, and
requests that wait together in the channel folded into digests: jitbot.slack.announcer), one with JITBOT_SLACK_PACING=0
(no pacing, no digests: one message per request, 429s left to the client's retries and RQ's), the baseline. Each is
sent the same burst; every sixth request asked is approved as soon as it is announced (50, throughout the burst), by
a click on its button in whatever message carries it.

Printed for each: acks refused (and why), when each request was announced (seconds after it was asked:
p50/p99/max, a request never announced within SETTLE_S of the burst's end counted as `never`), requests announced
twice or never, the messages that announced them, the 429s Slack answered by method, and credential DM latency
after the approval click (p50/p99), with the clicks refused.
Run: .venv/bin/python bench/burst.py [--people N] [--requests N] [--approvals N] [--seconds S]
"""

from __future__ import annotations

import argparse
import random
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
from tests.integration.helpers import REQUEST_ID, slack_refs

RESOURCES = ("prod-db", "staging-db", "prod-logs", "billing", "analytics", "support-tools")
CATALOG = """
approver_channel: C0APPROVALS
admins: [U0ADMIN]
defaults:
  min_duration: 1s
  max_duration: 1h
resources:
""" + "".join(f"  {name}:\n    provider: fake\n    approvers: [U0BOB]\n" for name in RESOURCES)
CHANNEL = "C0APPROVALS"
SETTLE_S = 180  # how long after the burst a run may take to announce everything and deliver every approval
SEED = 15


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def seconds(value: float, digits: int = 1) -> str:
    """A lag as printed: `never` for a request never announced (counted in its percentiles as infinitely late)."""
    return f"{value:6.{digits}f} s" if value != float("inf") else " never "


def approval_posts(calls: list[Call]) -> list[tuple[Call, list[str]]]:
    """The approval messages Slack accepted (a request's own, or a digest), each with the requests it carries."""
    return [
        (call, REQUEST_ID.findall(str(call.params.get("text", ""))))
        for call in calls
        if call.method == "chat.postMessage" and call.answered == 200 and call.params.get("channel") == CHANNEL
    ]


def announced(calls: list[Call]) -> dict[str, list[Call]]:
    """Request id → the approval messages Slack accepted with it."""
    found: dict[str, list[Call]] = {}
    for call, carried in approval_posts(calls):
        for request_id in carried:
            found.setdefault(request_id, []).append(call)
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


def plan(people: int, count: int) -> list[tuple[str, str]]:
    """(person, resource) for each request, in the order sent: each person asks for 3 resources, in turn."""
    asks = []
    for n in range(count):
        person, turn = n % people, n // people
        asks.append((f"U0USER{person:04d}", RESOURCES[(person + turn % 3) % len(RESOURCES)]))
    random.Random(SEED).shuffle(asks)
    return asks


@dataclass
class Run:
    name: str
    stack: Stack
    approve_every: int
    asked: dict[str, float] = field(default_factory=dict)  # request id → when its command was sent (monotonic)
    to_approve: set[str] = field(default_factory=set)
    clicked: dict[str, float] = field(default_factory=dict)  # request id → when its approval was clicked
    refused: Counter[str] = field(default_factory=Counter)  # why acks gave no request id → how many
    sent: int = 0


def burst(run: Run, asks: list[tuple[str, str]], seconds: float) -> None:
    """The requests of `asks`, spread evenly over `seconds`."""
    start = time.monotonic()
    lock = threading.Lock()

    def one(n: int) -> None:
        time.sleep(max(0.0, start + n * seconds / len(asks) - time.monotonic()))
        user, resource = asks[n]
        sent = time.monotonic()
        reply = run.stack.sender.command(user, f"request {resource} 30m INC-{n} burst")
        found = REQUEST_ID.search(reply.body) if reply.status == 200 else None
        with lock:
            run.sent += 1
            if found:
                run.asked[found.group(0)] = sent
                if n % run.approve_every == 0:
                    run.to_approve.add(found.group(0))
            else:
                run.refused[reply.body[:120] if reply.status == 200 else f"HTTP {reply.status}"] += 1

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(one, range(len(asks))))


def approve(run: Run, until: float, sending: threading.Event) -> None:
    """Click Approve on each request to approve as soon as a message carries it, in that message."""
    while time.monotonic() < until and (sending.is_set() or run.to_approve - run.clicked.keys()):
        seen = announced(run.stack.slack.calls)
        for request_id in sorted(run.to_approve & seen.keys() - run.clicked.keys()):
            ts = slack_refs(run.stack, request_id).get("approval_ts")
            if ts is None:  # posted, not yet recorded
                continue
            run.clicked[request_id] = time.monotonic()
            run.stack.sender.click("U0BOB", ids.APPROVE, request_id, channel_id=CHANNEL, message_ts=ts)
        time.sleep(0.05)


def wait_settled(run: Run, deadline: float) -> None:
    while time.monotonic() < deadline:
        calls = run.stack.slack.calls
        seen = announced(calls)
        dms = all(credential_dm(calls, r) for r in run.clicked)
        if dms and run.to_approve <= run.clicked.keys() and all(r in seen for r in run.asked):
            return
        time.sleep(0.5)


def drive(run: Run, asks: list[tuple[str, str]], seconds: float) -> None:
    sending = threading.Event()
    sending.set()
    approving = threading.Thread(target=approve, args=(run, time.monotonic() + seconds + SETTLE_S, sending))
    approving.start()
    burst(run, asks, seconds)
    sending.clear()
    wait_settled(run, time.monotonic() + SETTLE_S)
    approving.join()


def report(run: Run) -> list[str]:
    calls = run.stack.slack.calls
    seen = announced(calls)
    lag = [seen[r][0].at - at if r in seen else float("inf") for r, at in run.asked.items()]
    dm_lag = [dm.at - at for r, at in run.clicked.items() if (dm := credential_dm(calls, r)) is not None]
    limited = Counter(c.method for c in calls if c.answered == 429)
    twice = sum(1 for r in run.asked if len(seen.get(r, [])) > 1)
    lost = sum(1 for r in run.asked if r not in seen)
    posts = approval_posts(calls)
    digests = sum(1 for _, carried in posts if len(carried) > 1)
    edits = sum(1 for c in calls if c.method == "chat.update" and c.answered == 200 and c.params["channel"] == CHANNEL)
    why = "; ".join(f"{n} x {reason!r}" for reason, n in run.refused.most_common(2))
    # an approval the web could not check (Slack silent on whether the requester may still ask) is refused at once
    unchecked = sum(
        1 for c in calls if c.method == "chat.postEphemeral" and "Nothing was approved" in str(c.params.get("text"))
    )
    return [
        f"{run.name}: {len(run.asked)} of {run.sent} requests acknowledged, {sum(run.refused.values())} refused"
        + (f" ({why})" if why else ""),
        f"  request → announced        p50 {seconds(percentile(lag, 0.5))}  p99 {seconds(percentile(lag, 0.99))}"
        f"  max {seconds(max(lag, default=float('nan')))}",
        f"  announced twice: {twice}   never (within {SETTLE_S} s of the burst's end): {lost}",
        f"  in {len(posts)} messages ({digests} digests), {edits} edits in place",
        f"  429s from Slack: {sum(limited.values())} {dict(limited) or ''}",
        f"  approval click → credentials DM   p50 {seconds(percentile(dm_lag, 0.5), 2)}"
        f"  p99 {seconds(percentile(dm_lag, 0.99), 2)}  ({len(dm_lag)} delivered of {len(run.clicked)} clicks;"
        f" {unchecked} refused: Slack silent on the requester)",
    ]


def with_stack(home: Path, settings: dict[str, str], body: Callable[[Stack], list[str]]) -> list[str]:
    with Stack(home, CATALOG, workers=2, settings=settings, slack_limits=True) as stack:
        return body(stack)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--people", type=int, default=50)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--approvals", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60.0, help="the burst's length")
    args = parser.parse_args()
    asks = plan(args.people, args.requests)

    def measured(name: str) -> Callable[[Stack], list[str]]:
        def body(stack: Stack) -> list[str]:
            run = Run(name, stack, approve_every=max(1, args.requests // args.approvals))
            drive(run, asks, args.seconds)
            return report(run)

        return body

    started = time.monotonic()
    with tempfile.TemporaryDirectory() as home, ThreadPoolExecutor(2) as pool:
        digests = pool.submit(with_stack, Path(home) / "paced", {}, measured("digests (pacing on)"))
        bare = pool.submit(
            with_stack, Path(home) / "unpaced", {"JITBOT_SLACK_PACING": "0"}, measured("baseline: pacing off")
        )
        lines = [*digests.result(), *bare.result()]
    print(
        f"{args.requests} requests in {args.seconds:.0f} s from {args.people} people over {len(RESOURCES)} resources"
        f" to one channel, {args.approvals} approved during it; Slack stand-in limits on (1 post/s per channel,"
        " tiers per method); 2 workers each; both stacks at once"
    )
    print("\n".join(lines))
    print(f"wall time {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
