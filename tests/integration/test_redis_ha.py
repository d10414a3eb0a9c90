"""A highly available Redis under the real processes: a master, a replica and three sentinels (jitbot.testing.sentinel),
REDIS_URL=redis+sentinel://…, and the master SIGKILLed while 200 grants are live and people keep asking."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from jitbot.slack.listeners import STORE_AWAY
from jitbot.store import Store, audit
from jitbot.testing.sentinel import SentinelRedis
from jitbot.testing.stack import Stack
from tests.integration.drills import (
    ON_TIME_S,
    RESOURCE,
    Record,
    expiries,
    granting_rate,
    grants_ending_at,
    lateness,
    planned_end,
    requester,
    sleep_until,
    trail,
    wait_for_event,
)
from tests.integration.helpers import REQUEST_ID, wait_until

pytestmark = pytest.mark.timeout(300)

CATALOG = f"""
approver_channel: C0APPROVALS
alert_channel: C0SECURITY
defaults: {{min_duration: 1s, max_duration: 1h}}
resources:
  {RESOURCE}:
    provider: fake
    auto_approve: true
"""


class Asking:
    """People typing `/access request` one after another, in a thread: what jitbot acknowledged, and when."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.acknowledged: list[tuple[str, float]] = []  # (request id, epoch seconds of the answer)
        self.refused: list[str] = []  # what each person was told instead
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._ask, daemon=True)

    def __enter__(self) -> Asking:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def _ask(self) -> None:
        n = 5000
        while not self._stop.is_set():
            reply = self.stack.sender.command(requester(n), f"request {RESOURCE} 10m asked in the failover {n}")
            found = REQUEST_ID.search(reply.json().get("text", "")) if reply.status == 200 else None
            if found:
                self.acknowledged.append((found.group(0), time.time()))
            else:
                self.refused.append(f"{reply.status} {reply.body[:200]!r}")
            n += 1
            time.sleep(0.05)


def test_revocations_when_the_master_is_killed_and_a_replica_promoted_then_on_time_and_nothing_acknowledged_lost(
    tmp_path: Path, report: Record
) -> None:
    count = 200
    with (
        SentinelRedis(tmp_path / "redis") as ha,
        Stack(tmp_path / "stack", CATALOG, redis_url=ha.url, workers=2, supervise=True) as stack,
    ):
        rate = granting_rate(stack)
        end = planned_end(count, rate)
        durations = grants_ending_at(stack, count, end)
        ids = [*durations]
        due = expiries(trail(stack), durations)
        report("grants", f"{count} at {rate:.1f}/s, due over {due[-1] - due[0]:.1f}s")
        sleep_until(due[0] - 1)
        with Asking(stack) as asking:
            wait_until(lambda: len(asking.acknowledged) >= 10, 30, "requests acknowledged before the kill")
            killed = ha.kill_master()
            killed_at = time.time()
            promoted_in = ha.wait_promoted(killed)
            report("promoted_after_s", round(promoted_in, 1))
            promoted_at = time.time()
            after = lambda: len([at for _, at in asking.acknowledged if at > promoted_at]) >= 10  # noqa: E731
            wait_until(after, 30, "requests acknowledged by the new master")
        report("killed", f"{killed} {killed_at - due[0]:+.1f}s from the first grant's end")

        seen = wait_for_event(stack, ids, "expired", due[-1] + ON_TIME_S + 5 - time.time(), "after the failover")
        late = lateness(seen, durations)
        report("worst_lateness_s", late.worst)
        report("worst_recorded_lateness_s", late.worst_recorded)
        assert late.worst < ON_TIME_S and late.worst_recorded < ON_TIME_S

        before = [i for i, at in asking.acknowledged if at < killed_at]
        report("asked_during_failover", f"{len(asking.acknowledged)} acknowledged ({len(before)} before the kill)")
        report("refused_during_failover", f"{len(asking.refused)}, e.g. {asking.refused[:1]}")
        assert before, "nothing was acknowledged before the kill: the drill proved nothing"
        assert all(STORE_AWAY.split(",")[0] in said for said in asking.refused), asking.refused[:3]
        tracebacks = [line[:300] for line in stack.logs().splitlines() if '"exception"' in line]
        assert not tracebacks, tracebacks[:3]  # the failover is one line a try in each process, as any outage
        now = trail(stack)
        lost = [i for i, _ in asking.acknowledged if "requested" not in now.get(i, {})]
        assert not lost, f"acknowledged, then lost in the failover: {lost}"
        store = Store(stack.redis())
        # a grant whose issue job died with the old master (mid-job) is queued again 30 s after its approval
        wait_for_event(stack, [i for i, _ in asking.acknowledged], "granted", 60, "(asked in the failover)")
        verdict = audit.verify(store.chain.entries(), store.chain.head())
        assert verdict.ok, verdict.problem
        report("process_restarts", [(r.name, r.returncode) for r in stack.restarts])
