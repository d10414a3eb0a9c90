"""Revocation under real limits: many grants ending at once over a few shared cloud policies, against clouds that
answer slowly and throttle each policy's writes. Batched by policy (the sweeper today) against the baseline, each
grant ended on its own (`--batch 1`, as before batching), in the same run.

`--due` grants (default 10,000) end evenly over `--window` (default 60 s), over 20 resources: half on 2 hot GCP
projects, a quarter on 3 AWS roles (`--early`, default 20%, of those ended early by End now), the rest on 15 Azure
scopes. At this scale on 2 cores, moto and the GCP stand-in would measure themselves: one fake provider stands in
for the three clouds, in process, with the limits of jitbot.providers.limits (lognormal latency, p50 150 ms;
a token bucket of writes per policy). A GCP project and an AWS role are shared policies (revoked together); an
Azure PIM removal is a request of its own, throttled per scope (standing for ARM's principal and subscription).

Each mode gets a fresh embedded Redis and its own sweeper thread (the real Sweeper and Lifecycle; Slack is not
called on this path). Printed per mode: lag from each grant's end to its `expired`/`revoked` record (p50, p99,
max), missed (not revoked within 60 s of its end), cloud writes per revocation, 429s received.

Run: .venv/bin/python bench/limits.py [--due 10000] [--window 60] [--early 0.2] [--writes-per-s 10]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import redis
import structlog

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.revocation import MISSED_AFTER_S, lags, percentile
from jitbot.app.lifecycle import Lifecycle
from jitbot.app.people import People
from jitbot.core.catalog import Resource, parse_catalog
from jitbot.core.domain import AccessRequest
from jitbot.jobs.tasks import Tasks
from jitbot.providers.fake import FakeProvider
from jitbot.providers.limits import Limits
from jitbot.slack.messenger import slack_messenger
from jitbot.slack.notify import Notifier, web_client
from jitbot.store import Store, embedded
from jitbot.sweeper import Sweeper
from jitbot.testing.grants import load_grants

GCP = [f"gcp-hot-{n}" for n in range(2)]
AWS = [f"aws-role-{n}" for n in range(3)]
AZURE = [f"azure-scope-{n}" for n in range(15)]
CATALOG = (
    "approver_channel: C0APPROVALS\ndefaults: {min_duration: 1s, max_duration: 7d}\nresources:\n"
    + "".join(
        f"  {name}: {{provider: fake, policy: projects/hot-{n}, auto_approve: true}}\n" for n, name in enumerate(GCP)
    )
    + "".join(
        f"  {name}: {{provider: fake, policy: 'arn:aws:iam::123456789012:role/jit-role-{n}', auto_approve: true}}\n"
        for n, name in enumerate(AWS)
    )
    + "".join(f"  {name}: {{provider: fake, auto_approve: true}}\n" for name in AZURE)
)


class OneByOne(FakeProvider):
    """The baseline: the sweeper sees no shared policy, so each grant is revoked and read back on its own, as
    before batching (the writes still count against their policy's rate)."""

    def shared_policy(self, request: AccessRequest, resource: Resource) -> str:
        return request.id


def mix(due: int) -> list[str]:
    """The resource of each grant: half GCP (2 projects), a quarter AWS (3 roles), a quarter Azure (15 scopes)."""
    names = []
    for n in range(due):
        quarter = n % 4
        names.append(GCP[n % 2] if quarter < 2 else AWS[(n // 4) % 3] if quarter == 2 else AZURE[(n // 4) % 15])
    return names


def run(due: int, window: float, early: float, limits: Limits, batch: int) -> str:
    catalog = parse_catalog(CATALOG)
    fake = FakeProvider(limits) if batch > 1 else OneByOne(limits)
    with tempfile.TemporaryDirectory() as home:
        client = redis.Redis.from_url(embedded.ensure_running(Path(home)))
        try:
            store = Store(client)
            notifier = Notifier(web_client("xoxb-unused", "http://127.0.0.1:9/"), store)
            people = People(catalog, notifier, store)
            messenger = slack_messenger(catalog, notifier, people)
            lifecycle = Lifecycle(catalog, store, Tasks(client), messenger, people, lambda kind: fake)
            first = datetime.now(UTC) + timedelta(seconds=due / 300 + 10)  # loaded (~400/s) before the first is due
            ends = [first + timedelta(seconds=window * n / due) for n in range(due)]
            names = mix(due)
            every = round(1 / early) if early else 0
            ids = []
            for name in {*names}:  # per resource: load_grants takes one resource list, in turn
                picked = [n for n in range(due) if names[n] == name]
                is_early = (lambda k: bool(every) and k % every == 0) if name in AWS else (lambda k: False)
                ids += zip(load_grants(store, [ends[n] for n in picked], [name], is_early), picked, strict=True)
            stop = threading.Event()
            sweeper = threading.Thread(target=Sweeper(lifecycle, store, batch=batch).run, args=(stop,))
            sweeper.start()
            measured = lags(store, {i: ends[n] for i, n in ids}, ends[-1].timestamp() + MISSED_AFTER_S)
            stop.set()
            sweeper.join()
        finally:
            embedded.stop(Path(home))
    assert fake.throttle is not None
    missed = due - len([lag for lag in measured if lag <= MISSED_AFTER_S])
    label = "batched by policy" if batch > 1 else "baseline, one by one"
    return (
        f"{label:<21} lag p50 {statistics.median(measured):6.2f}s  p99 {percentile(measured, 0.99):6.2f}s"
        f"  max {max(measured):6.2f}s  missed {missed}  cloud writes {fake.throttle.writes}"
        f" ({fake.throttle.writes / max(len(measured), 1):.2f} per revocation done)  429s {fake.throttle.refused}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--due", type=int, default=10_000)
    parser.add_argument("--window", type=float, default=60.0)
    parser.add_argument("--early", type=float, default=0.2, help="share of AWS grants ended early (End now)")
    parser.add_argument("--writes-per-s", type=float, default=10.0, help="writes per policy per second")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    # Resource Manager ("Resource Manager limits"): writing projects, up to 10 writes per second; ARM ("Understand
    # how Azure Resource Manager throttles requests"): subscription writes, a bucket of 200 refilled 10 a second
    # (before 2024: 1,200 writes an hour per principal and subscription); IAM publishes no PutRolePolicy rate.
    limits = Limits(writes_per_s=args.writes_per_s, burst=int(args.writes_per_s), seed=1)
    print(
        f"{args.due} grants ending over {args.window:.0f}s on 20 resources (2 hot GCP projects 50%, 3 AWS roles 25%"
        f" with {args.early:.0%} ended early, 15 Azure scopes 25%). One in-process fake provider stands in for the"
        f" three clouds (moto and the GCP stand-in at this scale would measure themselves on 2 cores): latency"
        f" lognormal p50 {limits.p50_s * 1000:.0f} ms sigma {limits.sigma}, {args.writes_per_s:g} writes/s per policy"
        f" (burst {limits.burst}), a write past it answered 429. missed = not revoked within {MISSED_AFTER_S:.0f}s."
    )
    for batch in (1, 50):
        print(run(args.due, args.window, args.early, limits, batch), flush=True)


if __name__ == "__main__":
    main()
