"""The sweeper: claims what is due from the expiry index (with a lease) and revokes it on a thread pool."""

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime, timedelta

import pytest
import redis

from jitbot.core.domain import Status
from jitbot.core.errors import ProviderError
from jitbot.providers.base import Ending, Outcome
from jitbot.store.codec import encode
from jitbot.store.keys import EXPIRY, request_key
from jitbot.store.schedule import due
from jitbot.sweeper import LANE_FULL_RETRY, LEASE, Sweeper, share
from tests.unit.test_lifecycle import NOW, Bot, active, bot, status

__all__ = ["bot"]


def grants(bot: Bot, count: int) -> list[str]:
    """`count` active grants, each granted a minute after the one before (so they fall due in that order)."""
    ids = []
    for _ in range(count):
        ids.append(active(bot))
        bot.clock.advance(timedelta(minutes=1))
    return ids


def test_claim_due_then_only_what_is_due_oldest_first_and_hidden_for_the_lease(bot: Bot) -> None:
    first, second, third = grants(bot, 3)
    due_at = bot.store.requests.get(second).expires_at
    assert due_at is not None
    assert bot.store.requests.claim_due(due_at, 10, LEASE) == [first, second]
    assert bot.store.requests.claim_due(due_at, 10, LEASE) == []  # leased: no other sweeper takes them
    assert bot.store.redis.zscore(EXPIRY, first) == (due_at + LEASE).timestamp()
    again = bot.store.requests.claim_due(due_at + LEASE, 10, LEASE)  # their sweeper died: someone else takes them
    assert sorted(again) == sorted([first, second])
    # by lease end, then due time
    assert bot.store.requests.claim_due(due_at + timedelta(days=1), 10, LEASE)[2:] == [third]


def test_claim_due_when_request_left_the_index_then_not_added_back(bot: Bot) -> None:
    (request_id,) = grants(bot, 1)
    bot.store.redis.zrem(EXPIRY, request_id)  # revoked and recorded meanwhile
    assert bot.store.requests.claim_due(NOW + timedelta(days=1), 10, LEASE) == []
    assert bot.store.redis.zscore(EXPIRY, request_id) is None


def test_sweep_then_every_due_grant_revoked_and_recorded_and_the_rest_left(bot: Bot) -> None:
    ids = grants(bot, 6)
    bot.clock.now = bot.store.requests.get(ids[3]).expires_at or NOW
    sweeper = Sweeper(bot.lifecycle, bot.store, bot.clock, threads=4)
    with ThreadPoolExecutor(4) as pool:
        assert sweeper.sweep(pool) == 4
    assert [status(bot, i) for i in ids] == [Status.EXPIRED] * 4 + [Status.ACTIVE] * 2
    assert sorted(bot.fake.live) == sorted(ids[4:])
    assert due(bot.store.redis, EXPIRY, NOW + timedelta(days=1)) == ids[4:]


def test_sweep_when_more_policies_due_than_threads_then_starts_what_it_can_and_puts_the_rest_back_due(
    bot: Bot,
) -> None:
    ids = grants(bot, 5)  # the fake without a `policy` setting: each grant a policy of its own
    bot.clock.now = NOW + timedelta(days=1)
    sweeper = Sweeper(bot.lifecycle, bot.store, bot.clock, threads=2)
    with ThreadPoolExecutor(2) as pool:
        assert sweeper.sweep(pool) == 5
    assert [status(bot, i) for i in ids] == [Status.EXPIRED] * 2 + [Status.ACTIVE] * 3
    # due now, for the next pass
    assert sorted(bot.store.requests.claim_due(bot.clock.now, 10, LEASE)) == sorted(ids[2:])


def test_sweep_when_cloud_fails_then_put_at_its_retry_time_not_the_lease(bot: Bot) -> None:
    (request_id,) = grants(bot, 1)
    bot.clock.now = bot.store.requests.get(request_id).expires_at or NOW
    bot.fake.fail_next = [ProviderError("throttled", retryable=True)]
    with ThreadPoolExecutor(1) as pool:
        Sweeper(bot.lifecycle, bot.store, bot.clock, threads=1).sweep(pool)
    retry_at = bot.store.redis.zscore(EXPIRY, request_id)
    assert status(bot, request_id) is Status.ACTIVE and retry_at is not None
    assert bot.clock.now.timestamp() < retry_at < (bot.clock.now + timedelta(seconds=10)).timestamp()  # base 10s


def test_run_when_stopped_then_returns_after_the_work_under_way(bot: Bot) -> None:
    (request_id,) = grants(bot, 1)
    bot.clock.now = NOW + timedelta(days=1)
    stop = threading.Event()
    runner = threading.Thread(target=Sweeper(bot.lifecycle, bot.store, bot.clock, threads=2).run, args=(stop,))
    runner.start()
    deadline = threading.Event()
    for _ in range(100):  # generous polling: the pass happens within the first few hundred milliseconds
        if status(bot, request_id) is Status.EXPIRED:
            break
        deadline.wait(0.05)
    stop.set()
    runner.join(timeout=10)
    assert not runner.is_alive() and status(bot, request_id) is Status.EXPIRED


def test_sweep_when_redis_fails_then_no_thread_is_lost_and_the_next_pass_works(bot: Bot) -> None:
    (request_id,) = grants(bot, 1)
    bot.clock.now = NOW + timedelta(days=1)
    sweeper = Sweeper(bot.lifecycle, bot.store, bot.clock, threads=3)
    real = bot.store.requests.claim_due

    def unreachable(*args: object) -> list[str]:
        raise redis.ConnectionError("Connection closed by server.")

    bot.store.requests.claim_due = unreachable  # type: ignore[method-assign]
    with ThreadPoolExecutor(3) as pool:
        for _ in range(5):  # more failed passes than threads: a leaked slot would starve the sweeper
            with pytest.raises(redis.ConnectionError):
                sweeper.sweep(pool)
        bot.store.requests.claim_due = real  # type: ignore[method-assign]
        assert sweeper.sweep(pool) == 1
    assert status(bot, request_id) is Status.EXPIRED


class Gate:
    """Holds the cloud calls of the requests in `held` until `open` is set, as a frozen endpoint would."""

    def __init__(self, bot: Bot, held: set[str]) -> None:
        self.open, self.held, self.calls = threading.Event(), held, []
        real = bot.fake.revoke_many

        def revoke_many(grants: Sequence[Ending], now: datetime) -> dict[str, Outcome]:
            self.calls.extend(request.id for request, _ in grants)
            if any(request.id in self.held for request, _ in grants):
                assert self.open.wait(10), "the test never opened the gate"
            return real(grants, now)

        bot.fake.revoke_many = revoke_many  # type: ignore[method-assign]


def wait_for(predicate: Callable[[], bool]) -> None:
    for _ in range(200):
        if predicate():
            return
        threading.Event().wait(0.01)
    raise AssertionError("timed out waiting")


def test_share_when_one_cloud_then_every_thread_else_half() -> None:
    assert (share(32, {"aws"}), share(32, {"aws", "gcp"}), share(1, {"aws", "gcp"})) == (32, 16, 1)


def test_sweep_when_a_revocation_outlasts_the_lease_then_its_claim_is_renewed_and_nobody_starts_it_again(
    bot: Bot,
) -> None:
    (request_id,) = grants(bot, 1)
    gate = Gate(bot, {request_id})
    bot.clock.now = bot.store.requests.get(request_id).expires_at or NOW
    sweeper = Sweeper(bot.lifecycle, bot.store, bot.clock, threads=2)
    with ThreadPoolExecutor(2) as pool:
        assert sweeper.sweep(pool) == 1
        wait_for(lambda: gate.calls == [request_id])
        for _ in range(4):  # 40 s of a cloud that does not answer, a pass every 10 s
            bot.clock.advance(LEASE)
            assert sweeper.sweep(pool) == 0  # the lease moved on with the clock: not due again
        gate.open.set()
    assert status(bot, request_id) is Status.EXPIRED and gate.calls == [request_id]


def test_sweep_when_one_cloud_is_frozen_then_it_holds_only_its_share_and_the_others_are_ended(bot: Bot) -> None:
    ids = grants(bot, 4)
    frozen, other = ids[:3], ids[3]
    for request_id in frozen:  # three grants of a cloud that does not answer, one of another cloud
        bot.store.redis.set(
            request_key(request_id), encode(replace(bot.store.requests.get(request_id), provider="aws"))
        )
    gate = Gate(bot, set(frozen))
    bot.clock.now = NOW + timedelta(days=1)
    sweeper = Sweeper(bot.lifecycle, bot.store, bot.clock, threads=4, lane_size=2)  # as with two clouds
    with ThreadPoolExecutor(4) as pool:
        assert sweeper.sweep(pool) == 4
        wait_for(lambda: status(bot, other) is Status.EXPIRED)
        started = sorted(gate.calls)
        put_back = bot.store.redis.zscore(EXPIRY, frozen[2])
        gate.open.set()
    assert started == sorted([*frozen[:2], other])  # the third frozen one never took a thread
    assert put_back == (bot.clock.now + LANE_FULL_RETRY).timestamp()
