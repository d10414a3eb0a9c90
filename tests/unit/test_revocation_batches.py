"""Revocation batched by shared policy: the sweeper ends the due grants of one GCP project with one setIamPolicy
and one read-back, each grant still verified, audited and retried on its own (fakeredis + the GCP stand-in)."""

import json
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from google.auth import external_account_authorized_user

from jitbot.core.catalog import parse_catalog
from jitbot.core.domain import Status
from jitbot.providers.base import Ending, Outcome
from jitbot.providers.gcp import GcpProvider
from jitbot.providers.gcp_policy import add_binding, jitbot_request_id
from jitbot.providers.gcp_settings import GcpSettings
from jitbot.providers.limits import Limits, Throttle
from jitbot.store.keys import EXPIRY
from jitbot.store.schedule import due
from jitbot.sweeper import HOLD, LEASE, Sweeper
from jitbot.testing.gcp_standin import GcpStandIn
from jitbot.testing.grants import load_grants
from tests.unit.test_lifecycle import Bot, audit_log, make_bot, status

HOT, COLD, ROLE = "projects/hot-analytics", "projects/cold-storage", "roles/bigquery.dataViewer"
CATALOG = parse_catalog(
    f"""
approver_channel: C0APPROVALS
resources:
  hot: {{provider: gcp, resource: {HOT}, role: {ROLE}, approvers: [U0BOB]}}
  cold: {{provider: gcp, resource: {COLD}, role: {ROLE}, approvers: [U0BOB]}}
"""
)
END = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)


@pytest.fixture
def standin() -> Iterator[GcpStandIn]:
    with GcpStandIn() as server:
        server.policies[HOT], server.policies[COLD] = {}, {}
        yield server


@pytest.fixture
def bot(standin: GcpStandIn, tmp_path: Path) -> Iterator[Bot]:
    credentials = external_account_authorized_user.Credentials.from_file(str(standin.write_adc(tmp_path)))
    gcp = GcpProvider(endpoint=standin.url, credentials=credentials, sleep=lambda _: None)
    with make_bot(CATALOG) as made:
        made.lifecycle.providers = lambda kind: gcp
        made.clock.now = END + timedelta(seconds=1)
        yield made


def bound(standin: GcpStandIn, bot: Bot, counts: dict[str, int]) -> dict[str, list[str]]:
    """Active grants that ended at END, `counts[resource]` of each, with their bindings in the stand-in."""
    ids = {name: load_grants(bot.store, [END] * count, [name]) for name, count in counts.items()}
    for name, request_ids in ids.items():
        target = CATALOG.resources[name].settings_as(GcpSettings).resource
        policy = standin.policies[target]
        for n, request_id in enumerate(request_ids):
            policy = add_binding(policy, ROLE, f"user:u{n}@example.com", request_id, END + timedelta(minutes=5))
        standin.policies[target] = {"bindings": policy["bindings"], "version": 3}
    return ids


def sweep(bot: Bot) -> int:
    with ThreadPoolExecutor(4) as pool:
        return Sweeper(bot.lifecycle, bot.store, bot.clock, threads=4).sweep(pool)


def writes(standin: GcpStandIn, target: str) -> int:
    return len([call for call in standin.requests_to("setIamPolicy") if call.resource == target])


def jitbot_bindings(standin: GcpStandIn, target: str) -> set[str | None]:
    return {jitbot_request_id(binding) for binding in standin.policies[target].get("bindings", [])} - {None}


def expired_records(bot: Bot, request_id: str) -> list[dict[str, str]]:
    return [e for e in audit_log(bot) if e["event"] == "expired" and e["request_id"] == request_id]


def test_sweep_when_50_grants_of_one_project_are_due_then_one_write_one_read_back_and_each_audited(
    standin: GcpStandIn, bot: Bot
) -> None:
    ids = bound(standin, bot, {"hot": 50})["hot"]
    assert sweep(bot) == 50
    assert writes(standin, HOT) == 1  # not 50 read-modify-writes colliding on the etag
    assert len([call for call in standin.requests_to("getIamPolicy") if call.resource == HOT]) == 2  # edit, verify
    assert jitbot_bindings(standin, HOT) == set()
    for request_id in ids:
        (record,) = expired_records(bot, request_id)
        detail = json.loads(record["detail"])
        assert detail["verified"] == f"no jitbot binding for {request_id} in {HOT}'s policy"
        assert detail["verified_at"] == bot.clock.now.isoformat() and status(bot, request_id) is Status.EXPIRED
    assert due(bot.store.redis, EXPIRY, bot.clock.now + timedelta(days=1)) == []


def test_sweep_when_one_project_is_throttled_then_its_grants_retried_alone_and_the_other_project_ended(
    standin: GcpStandIn, bot: Bot
) -> None:
    ids = bound(standin, bot, {"hot": 20, "cold": 5})
    standin.fail("setIamPolicy", status=429, resource=HOT)
    assert sweep(bot) == 25
    assert [status(bot, i) for i in ids["cold"]] == [Status.EXPIRED] * 5 and jitbot_bindings(standin, COLD) == set()
    assert {status(bot, i) for i in ids["hot"]} == {Status.ACTIVE} and len(jitbot_bindings(standin, HOT)) == 20
    for request_id in ids["hot"]:  # each its own failure count and retry time, after the throttled write
        assert bot.store.failures.revocation_failures(request_id)["count"] == "1"
        assert (bot.store.redis.zscore(EXPIRY, request_id) or 0) > bot.clock.now.timestamp()

    bot.clock.advance(timedelta(minutes=5))  # their retry time
    assert sweep(bot) == 20
    assert writes(standin, HOT) == 2 and jitbot_bindings(standin, HOT) == set()
    assert all(len(expired_records(bot, i)) == 1 for i in ids["hot"] + ids["cold"])  # each ended once
    assert sweep(bot) == 0


def test_sweep_when_a_projects_group_is_being_ended_then_its_newly_due_grants_wait_and_go_in_one_more_write(
    standin: GcpStandIn, bot: Bot
) -> None:
    first = bound(standin, bot, {"hot": 10})["hot"]
    gcp, entered, gate = bot.lifecycle.providers("gcp"), threading.Event(), threading.Event()
    revoke_many = gcp.revoke_many

    def slow_cloud(grants: Sequence[Ending], now: datetime) -> dict[str, Outcome]:
        entered.set()
        assert gate.wait(10)
        return revoke_many(grants, now)

    with ThreadPoolExecutor(4) as pool:
        sweeper = Sweeper(bot.lifecycle, bot.store, bot.clock, threads=4)
        gcp.revoke_many = slow_cloud  # type: ignore[method-assign]
        assert sweeper.sweep(pool) == 10 and entered.wait(10)  # the first group's write is under way
        second = bound(standin, bot, {"hot": 10})["hot"]
        assert sweeper.sweep(pool) == 10  # claimed, and held: not a second write racing the first
        assert {bot.store.redis.zscore(EXPIRY, i) for i in second} == {(bot.clock.now + HOLD).timestamp()}
        assert sweeper.sweep(pool) == 0  # nothing due until then: no busy loop
        gate.set()
        deadline = time.monotonic() + 10
        while any(status(bot, i) is Status.ACTIVE for i in first + second) and time.monotonic() < deadline:
            bot.clock.advance(HOLD)  # held again while the first group is still finishing, then ended
            sweeper.sweep(pool)
            time.sleep(0.01)
    assert writes(standin, HOT) == 2 and jitbot_bindings(standin, HOT) == set()
    assert all(len(expired_records(bot, i)) == 1 for i in first + second)


def test_sweep_when_the_provider_merges_ends_itself_then_a_policys_new_grants_are_not_held(
    standin: GcpStandIn, bot: Bot
) -> None:
    """AWS's group commit merges a role's cuts running at once into one write: holding them would only serialise
    its read-backs (bench/revocation.py's AWS lag went from 0.25 s to 3.9 s at the median)."""
    bound(standin, bot, {"hot": 10})
    gcp, gate = bot.lifecycle.providers("gcp"), threading.Event()
    gcp.merges_ends = True  # as AwsProvider says of itself
    revoke_many = gcp.revoke_many
    gcp.revoke_many = lambda grants, now: gate.wait(10) and revoke_many(grants, now)  # type: ignore[method-assign]
    with ThreadPoolExecutor(4) as pool:
        sweeper = Sweeper(bot.lifecycle, bot.store, bot.clock, threads=4)
        assert sweeper.sweep(pool) == 10
        second = bound(standin, bot, {"hot": 10})["hot"]
        assert sweeper.sweep(pool) == 10  # started beside the first: claimed for a lease, not held
        assert {bot.store.redis.zscore(EXPIRY, i) for i in second} == {(bot.clock.now + LEASE).timestamp()}
        gate.set()


def test_throttle_when_a_policy_writes_past_its_rate_then_refused_until_a_token_is_back_and_others_unaffected() -> None:
    now = [0.0]
    throttle = Throttle(Limits(writes_per_s=2, burst=2), clock=lambda: now[0], sleep=lambda _: None)
    assert [throttle.take(HOT) for _ in range(2)] == [None, None]
    assert throttle.take(HOT) == pytest.approx(0.5) and throttle.take(COLD) is None
    now[0] = 0.5
    assert throttle.take(HOT) is None and (throttle.writes, throttle.refused) == (4, 1)


def test_throttle_latency_when_seeded_then_lognormal_around_its_median_and_repeatable() -> None:
    def draws(seed: int) -> list[float]:
        slept: list[float] = []
        throttle = Throttle(Limits(p50_s=0.15, sigma=0.6, seed=seed), sleep=slept.append)
        for _ in range(2000):
            throttle.wait()
        return sorted(slept)

    first = draws(7)
    assert first == draws(7) and first != draws(8)
    assert 0.13 < first[1000] < 0.17 and first[1980] > 3 * first[1000]  # a long tail: p99 several times p50


def test_standin_when_limits_set_then_a_write_past_the_policy_rate_answers_429_resource_exhausted(
    tmp_path: Path,
) -> None:
    with GcpStandIn(limits=Limits(p50_s=0.001, writes_per_s=0.01, burst=1)) as server:
        server.policies[HOT], server.policies[COLD] = {}, {}
        token = server.handle("/token", {**_refresh(server)}, "")[1]["access_token"]
        answers = [
            server.handle(f"/v3/{target}:setIamPolicy", {"policy": {}}, f"Bearer {token}")
            for target in (HOT, HOT, COLD)
        ]
    assert [status for status, _, _ in answers] == [200, 429, 200]
    assert answers[1][1]["error"]["status"] == "RESOURCE_EXHAUSTED" and server.throttle is not None
    assert server.throttle.refused == 1


def _refresh(server: GcpStandIn) -> dict[str, str]:
    return {
        "grant_type": "refresh_token",
        "client_id": server.client_id,
        "client_secret": server.client_secret,
        "refresh_token": server.refresh_token,
    }
