"""jitbot's own pacing under Slack's limits: the Redis token buckets (fakeredis runs the Lua), on a clock we move."""

from __future__ import annotations

from collections.abc import Iterator

import fakeredis
import pytest
from slack_sdk import WebClient

from jitbot.slack.notify import Notifier, NotifyError
from jitbot.slack.pacing import CHANNEL_BUDGET, PATIENCE_S, Budget, Pacer, buckets, tier_budget
from jitbot.store import Store
from jitbot.store.pacing import SlackPace
from jitbot.testing.slack_standin import SlackStandIn

CHANNEL = "C0APPROVALS"


class Clock:
    """Epoch seconds that move only when a test (or a pacer's sleep) moves them."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def server() -> fakeredis.FakeServer:
    return fakeredis.FakeServer()


def pacer(server: fakeredis.FakeServer, clock: Clock) -> Pacer:
    """One worker process: its own connection to the shared Redis."""
    return Pacer(SlackPace(fakeredis.FakeRedis(server=server)), clock=clock, sleep=clock.sleep)


def test_buckets_when_post_then_its_channel_else_the_methods_tier(server: fakeredis.FakeServer, clock: Clock) -> None:
    assert buckets("chat.postMessage", CHANNEL) == [(f"channel:{CHANNEL}", CHANNEL_BUDGET)]
    assert buckets("chat.update", CHANNEL) == [("method:chat.update", tier_budget(3))]
    assert buckets("auth.test", "") == []
    worker = pacer(server, clock)
    worker.wait_turn("chat.postMessage", CHANNEL, urgent=False)
    worker.wait_turn("chat.update", CHANNEL, urgent=False)
    kept = {key.decode() for key in fakeredis.FakeRedis(server=server).scan_iter()}
    assert kept == {f"jitbot:slack:pace:channel:{CHANNEL}", "jitbot:slack:pace:method:chat.update"}


def test_budgets_when_compared_with_slacks_limits_then_below_each_rate() -> None:
    assert CHANNEL_BUDGET.per_second < 1.0  # "one message per second per channel"
    assert tier_budget(2).per_second * 60 < 20 and tier_budget(4).per_second * 60 < 100
    assert all(1 + b.reserve <= b.burst for b in (CHANNEL_BUDGET, tier_budget(2), tier_budget(3), tier_budget(4)))


def test_take_when_burst_spent_then_wait_until_refilled_at_the_budgets_rate(
    server: fakeredis.FakeServer, clock: Clock
) -> None:
    budget = [("b", Budget(per_second=0.5, burst=2, reserve=0))]
    one = pacer(server, clock)
    assert [one.take(budget, urgent=False) for _ in range(3)] == [0.0, 0.0, 2.0]
    clock.now += 1.5
    assert one.take(budget, urgent=False) == 0.5
    clock.now += 0.5
    assert one.take(budget, urgent=False) == 0.0


def test_take_when_two_workers_then_they_share_one_bucket(server: fakeredis.FakeServer, clock: Clock) -> None:
    budget = [("b", Budget(per_second=1.0, burst=1, reserve=0))]
    assert pacer(server, clock).take(budget, urgent=False) == 0.0
    assert pacer(server, clock).take(budget, urgent=False) == 1.0


def test_take_when_only_the_reserve_left_then_urgent_takes_it_and_others_wait(
    server: fakeredis.FakeServer, clock: Clock
) -> None:
    budget = [("b", Budget(per_second=1.0, burst=2, reserve=1))]
    worker = pacer(server, clock)
    assert worker.take(budget, urgent=False) == 0.0
    assert worker.take(budget, urgent=False) == 1.0  # the last token is kept for an urgent call
    assert worker.take(budget, urgent=True) == 0.0
    assert worker.take(budget, urgent=True) == 1.0


def test_take_when_one_of_two_buckets_empty_then_nothing_taken_from_either(
    server: fakeredis.FakeServer, clock: Clock
) -> None:
    full, empty = ("full", Budget(1.0, burst=1, reserve=0)), ("empty", Budget(0.25, burst=1, reserve=0))
    worker = pacer(server, clock)
    assert worker.take([empty], urgent=False) == 0.0
    assert worker.take([full, empty], urgent=False) == 4.0
    assert worker.take([full], urgent=False) == 0.0  # still there: the refused call spent nothing


def test_wait_turn_when_channel_busy_then_sleeps_its_turn_and_posts(server: fakeredis.FakeServer, clock: Clock) -> None:
    worker = pacer(server, clock)
    turns = [worker.wait_turn("chat.postMessage", CHANNEL, urgent=False) for _ in range(3)]
    assert turns == [0.0, 0.0, 0.0]
    interval = pytest.approx(1 / CHANNEL_BUDGET.per_second, abs=0.01)
    assert clock.slept == [interval, interval]  # the first found a token; the others waited for theirs


def contended(server: fakeredis.FakeServer, clock: Clock, channel: str) -> Pacer:
    """A worker whose every wait another worker's urgent posts to `channel` cut short, taking each token first."""
    rival = pacer(server, clock)
    needed = buckets("chat.postMessage", channel)

    def sleep_while_rival_posts(seconds: float) -> None:
        clock.sleep(seconds)
        rival.take(needed, urgent=True)

    assert [rival.take(needed, urgent=True) for _ in range(2)] == [0.0, 0.0]  # the burst is spent
    return Pacer(SlackPace(fakeredis.FakeRedis(server=server)), clock=clock, sleep=sleep_while_rival_posts)


def test_wait_turn_when_turn_beyond_patience_then_answers_the_wait_and_spends_nothing(
    server: fakeredis.FakeServer, clock: Clock
) -> None:
    worker = contended(server, clock, CHANNEL)
    later = worker.wait_turn("chat.postMessage", CHANNEL, urgent=False)
    assert later > 0 and sum(clock.slept) <= PATIENCE_S < sum(clock.slept) + later
    channel = buckets("chat.postMessage", CHANNEL)
    assert worker.take(channel, urgent=True) == 0.0  # the token the rival left is still there: nothing was spent
    assert worker.take(channel, urgent=True) > 0.0


@pytest.fixture
def standin() -> Iterator[SlackStandIn]:
    with SlackStandIn() as server:
        yield server


def test_notifier_when_paced_out_then_notify_error_without_calling_slack_but_urgent_dm_goes(
    server: fakeredis.FakeServer, clock: Clock, standin: SlackStandIn
) -> None:
    store = Store(fakeredis.FakeRedis(server=server))
    notifier = Notifier(WebClient(base_url=standin.url, token="xoxb-test"), store, contended(server, clock, "U0ALICE"))
    with pytest.raises(NotifyError, match=r"chat\.postMessage paced"):
        notifier.tell("U0ALICE", "this can wait")
    assert standin.calls_to("chat.postMessage") == []
    waited = len(clock.slept)
    notifier.call("chat_postMessage", channel="U0ALICE", text="your access", urgent=True)  # as send_access does
    assert [c.params["text"] for c in standin.calls_to("chat.postMessage")] == ["your access"]
    assert len(clock.slept) == waited  # the token kept from the others was there at once
