"""A revocation that keeps failing is retried forever with capped backoff, alerted once, and never dropped.

Twenty minutes of cloud outage are simulated with a clock the test controls: the two mechanisms are played by
hand — the sweeper claiming what is due (retries included), and the worker's reconciler — every 10 s.
"""

import itertools
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from jitbot.core.catalog import parse_catalog
from jitbot.core.domain import Status
from jitbot.core.errors import ProviderError
from jitbot.core.policy import alerts_after, audits_failure, revocation_retry_delay
from jitbot.sweeper import LEASE
from tests.unit.test_lifecycle import NOW, Bot, active, make_bot, status
from tests.unit.test_policies_and_timers import run_job, worker_context

CATALOG = parse_catalog(
    """
approver_channel: C0APPROVALS
alert_channel: C0SECURITY
revocation: {retry_base: 10s, retry_cap: 5m, alert_after: 3}
resources:
  sandbox: {provider: fake, approvers: [U0BOB]}
"""
)
SWEEP = timedelta(seconds=10)
OUTAGE = timedelta(minutes=20)


@pytest.fixture
def bot() -> Iterator[Bot]:
    with make_bot(CATALOG) as made:
        yield made


def run_jobs(bot: Bot) -> None:
    """What a worker would do with what is queued now (what those jobs queue waits for the next pass)."""
    worker = worker_context(bot)
    for job in [*bot.tasks.urgent.get_jobs(), *bot.tasks.queue.get_jobs()]:  # as a worker takes them
        run_job(worker, job)


def failures(bot: Bot, request_id: str) -> list[dict[str, str]]:
    entries = bot.redis.xrange("jitbot:audit")
    decoded = [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in entries]
    return [e for e in decoded if e["request_id"] == request_id and e["event"] == "revocation failed"]


def alerts(bot: Bot) -> list[str]:
    return [c.params["text"] for c in bot.slack.calls_to("chat.postMessage") if c.params["channel"] == "C0SECURITY"]


def test_revocation_when_cloud_fails_for_twenty_minutes_then_retried_alerted_once_and_revoked_on_recovery(
    bot: Bot,
) -> None:
    request_id = active(bot)
    expires = bot.store.requests.get(request_id).expires_at
    assert expires is not None
    outage = ProviderError("AWS PutRolePolicy failed: ServiceUnavailable: try later", retryable=True)
    bot.fake.fail_next = [outage] * 10_000
    bot.clock.now = expires
    bot.lifecycle.end_access(request_id)  # the sweeper, at expiry
    alerted_at = None
    while status(bot, request_id) is Status.ACTIVE:
        if bot.clock.now >= expires + OUTAGE:
            bot.fake.fail_next.clear()
        bot.clock.advance(SWEEP)
        for due in bot.store.requests.claim_due(bot.clock.now, 10, LEASE):  # what the sweeper does on each pass
            bot.lifecycle.end_access(due)
        bot.lifecycle.reconcile()
        run_jobs(bot)
        alerted_at = alerted_at or (bot.clock.now if alerts(bot) else None)
        assert bot.clock.now < expires + OUTAGE + timedelta(minutes=10), "never revoked"
    revoked_at = bot.clock.now
    run_jobs(bot)  # the Slack updates that follow the revocation

    attempts = failures(bot, request_id)
    third = next(a for a in attempts if a["detail"].startswith('{"attempt":3'))
    assert alerted_at is not None and alerted_at - datetime_of(third) <= timedelta(seconds=60)
    assert len(alerts(bot)) == 1 and "Revoking" in alerts(bot)[0] and "ServiceUnavailable" in alerts(bot)[0]
    gaps = [datetime_of(b) - datetime_of(a) for a, b in itertools.pairwise(attempts)]
    assert max(gaps) <= timedelta(minutes=5) + SWEEP  # capped: it kept trying all along
    assert len(attempts) >= 6
    assert revoked_at - (expires + OUTAGE) <= timedelta(minutes=5) + SWEEP  # at most one capped wait
    resolved = [c for c in bot.slack.calls_to("chat.update") if c.params["channel"] == "C0SECURITY"]
    assert len(resolved) == 1 and "Resolved" in resolved[0].params["text"]
    assert bot.fake.live == set()


def test_revocation_when_failing_then_grant_stays_live_not_dropped(bot: Bot) -> None:
    request_id = active(bot)
    bot.fake.fail_next = [ProviderError("boom", retryable=False)] * 3
    bot.clock.now = bot.store.requests.get(request_id).expires_at or NOW
    bot.lifecycle.end_access(request_id)
    assert status(bot, request_id) is Status.ACTIVE  # still live: listed, alerted, retried
    due = bot.store.redis.zscore("jitbot:expiry", request_id)
    assert due is not None and due > bot.clock.now.timestamp()  # the reconciler comes back later


def test_revocation_when_the_provider_raises_a_bug_then_counted_audited_and_alerted_as_a_refusing_cloud(
    bot: Bot,
) -> None:
    request_id = active(bot)
    bot.fake.fail_next = [KeyError("role_arn")] * 3  # not a ProviderError: a provider's bug, not the cloud's answer
    bot.clock.now = bot.store.requests.get(request_id).expires_at or NOW
    for _ in range(3):  # the sweeper, then its retries as they fall due
        bot.lifecycle.end_many([request_id])
        bot.clock.now = datetime.fromtimestamp(bot.store.redis.zscore("jitbot:expiry", request_id) or 0, UTC)
    run_jobs(bot)
    assert status(bot, request_id) is Status.ACTIVE  # still live, and still in the index for the next try
    assert [json.loads(e["detail"])["attempt"] for e in failures(bot, request_id)] == [1, 2, 3]
    assert (
        "KeyError" in failures(bot, request_id)[0]["detail"]
        and "role_arn" not in failures(bot, request_id)[0]["detail"]
    )
    assert len(alerts(bot)) == 1 and "Revoking" in alerts(bot)[0]
    bot.lifecycle.end_many([request_id])  # the provider works again
    assert status(bot, request_id) is Status.EXPIRED


def test_revocation_when_cloud_says_not_before_then_deferred_to_then_not_counted_and_requester_told(bot: Bot) -> None:
    request_id = active(bot)
    bot.clock.now = bot.store.requests.get(request_id).expires_at or NOW
    allowed = bot.clock.now + timedelta(minutes=4)
    message = "Azure PIM does not allow removing an assignment in its first 5 minutes"
    bot.fake.fail_next = [ProviderError(message, retryable=True, not_before=allowed)] * 5
    for _ in range(5):  # the reconciler's re-drives before the time: none of them is a failure
        bot.lifecycle.end_access(request_id)
    waits = [c for c in bot.slack.calls_to("chat.postMessage") if "has to wait" in c.params["text"]]
    assert waits == []  # not from the sweeper's thread, which never waits on Slack
    run_jobs(bot)  # a worker tells them
    assert status(bot, request_id) is Status.ACTIVE and failures(bot, request_id) == [] and alerts(bot) == []
    assert bot.store.redis.zscore("jitbot:expiry", request_id) == allowed.timestamp()
    told = [c for c in bot.slack.calls_to("chat.postMessage") if c.params["channel"] == "U0ALICE"]
    assert message in told[-1].params["text"] and "has to wait" in told[-1].params["text"]
    bot.clock.now = allowed
    bot.lifecycle.end_access(request_id)
    assert status(bot, request_id) is Status.EXPIRED


def test_revocation_when_throttled_with_retry_after_then_not_a_deferral_retried_then_and_alerted_only_as_late(
    bot: Bot,
) -> None:
    request_id = active(bot)
    bot.clock.now = bot.store.requests.get(request_id).expires_at or NOW
    started, throttled = bot.clock.now, []
    while status(bot, request_id) is Status.ACTIVE and not alerts(bot) and len(throttled) < 20:
        later = bot.clock.now + timedelta(seconds=2)  # ARM's 429 with Retry-After: 2
        bot.fake.fail_next = [ProviderError("429 TooManyRequests", retryable=True, not_before=later, throttled=True)]
        tried = bot.clock.now
        bot.lifecycle.end_access(request_id)
        due = bot.redis.zscore("jitbot:expiry", request_id) or 0
        throttled.append(due - bot.clock.now.timestamp())
        bot.clock.now = datetime.fromtimestamp(due, bot.clock.now.tzinfo)
        run_jobs(bot)
    assert min(throttled) >= 2  # never before the cloud's Retry-After
    assert throttled[0] < 3  # and not the 5-10 s of a failing cloud: a second or two, then the ladder climbs
    assert len(throttled) == alerts_after(CATALOG.revocation, throttled=True) == 7  # 3 + 4 rungs from ~0.6 s
    assert 15 <= (tried - started).total_seconds() <= 60  # alerted as late as a failing cloud would be (15-30 s)
    told = [c.params["text"] for c in bot.slack.calls_to("chat.postMessage") if c.params["channel"] == "U0ALICE"]
    assert not any("has to wait" in text for text in told)  # a throttle is not PIM's deferral: nothing to tell
    assert len(failures(bot, request_id)) == 7  # each attempt audited


@pytest.mark.parametrize(("failures", "low", "high"), [(1, 0.3, 0.7), (2, 0.6, 1.3), (5, 5, 10), (60, 150, 300)])
def test_revocation_retry_delay_when_throttled_then_the_same_ladder_from_about_a_second(
    failures: int, low: float, high: float
) -> None:
    delays = [revocation_retry_delay(CATALOG.revocation, failures, j, throttled=True) for j in (0.0, 0.5, 0.999)]
    assert low <= min(d.total_seconds() for d in delays) and max(d.total_seconds() for d in delays) <= high


@pytest.mark.parametrize(
    ("failures", "low", "high"), [(1, 5, 10), (2, 10, 20), (3, 20, 40), (6, 150, 300), (60, 150, 300)]
)
def test_revocation_retry_delay_when_failures_grow_then_doubles_with_jitter_up_to_the_cap(
    failures: int, low: int, high: int
) -> None:
    delays = [revocation_retry_delay(CATALOG.revocation, failures, j).total_seconds() for j in (0.0, 0.5, 0.999)]
    assert low <= min(delays) and max(delays) <= high


@pytest.mark.parametrize("failures", [1, 2, 6, 60])
def test_revocation_retry_delay_when_the_cloud_did_not_answer_then_the_first_step_every_time(failures: int) -> None:
    delays = [revocation_retry_delay(CATALOG.revocation, failures, j, unanswered=True) for j in (0.0, 0.999)]
    assert [round(d.total_seconds()) for d in delays] == [5, 10]


def test_audits_failure_when_a_cloud_stays_down_then_ten_records_then_one_per_doubling() -> None:
    audited = [n for n in range(1, 1001) if audits_failure(n)]
    assert audited == [*range(1, 11), 16, 32, 64, 128, 256, 512]


def datetime_of(entry: dict[str, str]) -> datetime:
    return datetime.fromisoformat(entry["at"])
