"""Access verified gone before a grant is called ended, and the drift scan for what jitbot made and nobody holds.

The clouds' own read-backs are tested against their stand-ins (test_gcp_provider, test_azure_provider, …) and
end to end in tests/integration/test_drift.py; here the lifecycle and the scan run on fakeredis with a cloud
double whose answers the test sets.
"""

import json
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest

from jitbot.app.drift import SCAN_EVERY, DriftScan
from jitbot.core.catalog import Resource, parse_catalog
from jitbot.core.domain import AccessRequest, Status
from jitbot.core.errors import ProviderError
from jitbot.jobs.names import JobName
from jitbot.observability.metrics_collector import RedisCollector
from jitbot.providers.base import Held, Outcome
from jitbot.store.schedule import due
from tests.unit.test_lifecycle import NOW, Bot, RecordingProvider, active, audit_log, make_bot, status

CATALOG = parse_catalog(
    """
approver_channel: C0APPROVALS
alert_channel: C0SECURITY
revocation: {retry_base: 10s, retry_cap: 1m, alert_after: 2}
resources:
  sandbox: {provider: fake, approvers: [U0BOB]}
  sandbox-too: {provider: fake, approvers: [U0BOB]}
"""
)


class Cloud(RecordingProvider):
    """The fake provider with a cloud the test shapes: access that stays after a revocation (`stuck`), what the
    drift scan finds (`found`), removals it refuses (`refuse_removal`), a cloud that cannot be listed."""

    def __init__(self) -> None:
        super().__init__()
        self.stuck: set[str] = set()
        self.found: list[Held] = []
        self.refuse_removal = False
        self.unlistable = False
        self.removed: list[Held] = []
        self.vanished: list[Held] = []  # gone by the time the scan removes it (its grant ended meanwhile)

    def read_back(self, request: AccessRequest) -> Outcome:
        if request.id in self.stuck:
            return ProviderError(f"the binding of {request.id} is still in the policy", retryable=True)
        return f"no binding of {request.id} in the policy"

    def held(self, resource: Resource, now: datetime) -> list[Held]:
        if self.unlistable:
            raise ProviderError("GCP refused getIamPolicy on projects/p: 403", retryable=False)
        return list(self.found)

    def remove(self, held: Held, resource: Resource, now: datetime) -> bool:
        if self.refuse_removal:
            raise ProviderError("GCP refused setIamPolicy on projects/p: 403", retryable=False)
        if held in self.vanished:
            return False
        self.removed.append(held)
        self.found.remove(held)
        return True


@pytest.fixture
def bot() -> Iterator[Bot]:
    with make_bot(CATALOG) as made:
        made.fake = Cloud()
        made.lifecycle.providers = lambda kind: made.fake
        yield made


def cloud(bot: Bot) -> Cloud:
    assert isinstance(bot.fake, Cloud)
    return bot.fake


def scan(bot: Bot) -> DriftScan:
    return DriftScan(bot.lifecycle.catalog, bot.store, bot.messenger, bot.lifecycle.provider, bot.clock)


def alerts(bot: Bot) -> list[str]:
    return [c.params["text"] for c in bot.slack.calls_to("chat.postMessage") if c.params["channel"] == "C0SECURITY"]


def held(*holders: str, what: str = "roles/x for user:a@example.com on projects/p") -> Held:
    return Held(frozenset(holders), what, {"request_id": holders[0]})


# --- verified, then ended -------------------------------------------------------------------------------------


def test_revocation_when_read_back_shows_access_gone_then_expired_with_what_was_read_in_the_audit(bot: Bot) -> None:
    request_id = active(bot)
    bot.clock.now = NOW + timedelta(hours=2)
    bot.lifecycle.end_access(request_id)
    ended = bot.store.requests.get(request_id)
    assert ended.status is Status.EXPIRED
    assert ended.verified_at == bot.clock.now
    record = [entry for entry in audit_log(bot) if entry["event"] == "expired"][-1]
    detail = json.loads(record["detail"])
    assert detail["verified"] == f"no binding of {request_id} in the policy"
    assert detail["verified_at"] == bot.clock.now.isoformat()


def test_revocation_when_the_cloud_is_slow_then_the_end_is_recorded_when_the_cloud_confirmed_it(
    bot: Bot, monkeypatch: pytest.MonkeyPatch
) -> None:
    request_id = active(bot)
    bot.clock.now = ended_at = NOW + timedelta(hours=1)
    read_back = cloud(bot).read_back

    def slow(request: AccessRequest) -> Outcome:
        bot.clock.advance(timedelta(seconds=40))  # a cloud that takes its time to answer
        return read_back(request)

    monkeypatch.setattr(cloud(bot), "read_back", slow)
    bot.lifecycle.end_access(request_id)
    (record,) = [entry for entry in audit_log(bot) if entry["event"] == "expired"]
    assert record["at"] == (ended_at + timedelta(seconds=40)).isoformat() == json.loads(record["detail"])["verified_at"]


def test_revocation_when_read_back_keeps_showing_access_then_grant_stays_live_retried_and_alerted(bot: Bot) -> None:
    request_id = active(bot)
    cloud(bot).stuck.add(request_id)
    bot.clock.now = NOW + timedelta(hours=2)
    for _ in range(3):
        bot.lifecycle.end_access(request_id)
        assert status(bot, request_id) is Status.ACTIVE  # the cloud said yes to the revoke, but still shows it
        bot.clock.advance(timedelta(minutes=1))
    failed = [entry for entry in audit_log(bot) if entry["event"] == "revocation failed"]
    assert len(failed) == 3 and "still in the policy" in failed[-1]["detail"]
    assert due(bot.store.redis, "jitbot:expiry", bot.clock.now + timedelta(minutes=2)) == [request_id]  # retried
    assert [job.func_name for job in bot.tasks.urgent.get_jobs()].count(JobName.ALERT_REVOCATION.path) == 1

    cloud(bot).stuck.clear()
    bot.lifecycle.end_access(request_id)
    assert status(bot, request_id) is Status.EXPIRED


# --- the drift scan -------------------------------------------------------------------------------------------


def test_drift_scan_when_access_has_a_live_grant_then_left_alone(bot: Bot) -> None:
    request_id = active(bot)
    cloud(bot).found = [held(request_id)]
    result = scan(bot).run()
    assert (result.explained, result.orphans, cloud(bot).removed) == (1, (), [])
    assert not [entry for entry in audit_log(bot) if entry["event"].startswith("orphan")]


def test_drift_scan_when_access_outlives_its_grant_then_removed_and_audited(bot: Bot) -> None:
    ended = active(bot)
    bot.clock.now = NOW + timedelta(hours=2)
    bot.lifecycle.end_access(ended)
    stray = held(ended)  # put back behind jitbot's back after its verified revocation
    unknown = held("r-zzzzzz", what="roles/x for user:b@example.com on projects/p")  # no such request at all
    cloud(bot).found = [stray, unknown]

    result = scan(bot).run()

    assert cloud(bot).removed == [stray, unknown] and result.clean
    records = [entry for entry in audit_log(bot) if entry["event"] == "orphan removed"]
    assert [(entry["request_id"], entry["resource"]) for entry in records] == [
        (ended, "sandbox"),
        ("r-zzzzzz", "sandbox"),
    ]
    assert "user:b@example.com" in records[1]["detail"]
    assert alerts(bot) == []


def test_drift_scan_when_access_is_gone_by_the_time_it_is_removed_then_nothing_recorded(bot: Bot) -> None:
    gone = held("r-zzzzzz")
    cloud(bot).found, cloud(bot).vanished = [gone], [gone]
    result = scan(bot).run()
    assert (result.explained, result.orphans) == (0, ()) and result.clean
    assert not [entry for entry in audit_log(bot) if entry["event"].startswith("orphan")]


def test_drift_scan_when_two_resources_find_the_same_access_then_it_counts_once(bot: Bot) -> None:
    cloud(bot).found = [held("r-zzzzzz")]
    cloud(bot).refuse_removal = True  # so that both resources would find it, if the scan looked twice
    result = scan(bot).run()
    assert len(result.orphans) == 1


def test_drift_scan_when_cloud_refuses_removal_then_audited_counted_and_alerted_once(bot: Bot) -> None:
    cloud(bot).found = [held("r-zzzzzz")]
    cloud(bot).refuse_removal = True

    first = scan(bot).run()
    scan(bot).run()  # the same findings again: no second alert

    assert not first.clean and first.kept[0].error == "GCP refused setIamPolicy on projects/p: 403"
    assert [entry["event"] for entry in audit_log(bot)].count("orphan not removed") == 2
    assert len(alerts(bot)) == 1
    assert "roles/x for user:a@example.com on projects/p" in alerts(bot)[0] and "403" in alerts(bot)[0]
    assert gauge(bot, "jitbot_orphaned_access") == {("fake",): 1.0}

    cloud(bot).refuse_removal = False
    assert scan(bot).run().clean
    assert gauge(bot, "jitbot_orphaned_access") == {("fake",): 0.0}
    assert gauge(bot, "jitbot_drift_scan_timestamp_seconds") == {(): bot.clock.now.timestamp()}


def test_drift_scan_when_a_cloud_cannot_be_listed_then_alerted_and_not_clean(bot: Bot) -> None:
    cloud(bot).unlistable = True
    result = scan(bot).run()
    assert [resource for resource, _ in result.unreadable] == ["sandbox", "sandbox-too"] and not result.clean
    assert "could not be scanned: GCP refused getIamPolicy" in alerts(bot)[0]


def test_drift_scan_claim_when_taken_then_nobody_else_gets_it_until_the_interval_passes(bot: Bot) -> None:
    assert bot.store.locks.claim_drift_scan(SCAN_EVERY)
    assert not bot.store.locks.claim_drift_scan(SCAN_EVERY)
    assert 0 < bot.redis.pttl("jitbot:drift:due") <= SCAN_EVERY.total_seconds() * 1000


def gauge(bot: Bot, name: str) -> dict[tuple[str, ...], float]:
    families = {family.name: family for family in RedisCollector(bot.store, bot.clock).collect()}
    return {tuple(sample.labels.values()): sample.value for sample in families[name].samples}
