"""The use cases by intent, with no Slack behind them: a Lifecycle on fakeredis, the fake cloud and a clock the test
moves, saying things through the RecordingMessenger (jitbot.testing.messenger), which keeps what was meant.

Jobs are queued on fakeredis and run through the job table, as a worker runs them.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import fakeredis
import pytest

from jitbot.app.lifecycle import Lifecycle
from jitbot.app.people import People
from jitbot.app.ports import Outcome
from jitbot.core.catalog import parse_catalog
from jitbot.core.domain import Status, approve_by_policy, ask_extension, new_request_id, open_request
from jitbot.core.errors import ProviderError
from jitbot.jobs.names import JobName
from jitbot.jobs.registry import run
from jitbot.jobs.tasks import Tasks
from jitbot.providers.fake import FakeProvider
from jitbot.store import Store
from jitbot.testing.messenger import RecordingMessenger, Said, StaticDirectory
from jitbot.testing.redis_dump import dump_redis

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
ALICE = "U0ALICE"
CATALOG = parse_catalog(
    """
approver_channel: C0APPROVALS
revocation: {retry_base: 10s, retry_cap: 5m, alert_after: 3}
resources:
  sandbox: {provider: fake, approvers: [U0BOB]}
"""
)
QUEUED_AS = {name.path: name for name in JobName}


@dataclass
class Clock:
    now: datetime = NOW

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@dataclass
class World:
    redis: fakeredis.FakeRedis
    store: Store
    tasks: Tasks
    fake: FakeProvider
    clock: Clock
    messenger: RecordingMessenger
    lifecycle: Lifecycle


@pytest.fixture
def world() -> World:
    client = fakeredis.FakeRedis()
    store, tasks, fake, clock, messenger = Store(client), Tasks(client), FakeProvider(), Clock(), RecordingMessenger()
    lifecycle = Lifecycle(
        CATALOG, store, tasks, messenger, People(CATALOG, StaticDirectory(), store), lambda kind: fake, clock=clock
    )
    return World(client, store, tasks, fake, clock, messenger, lifecycle)


def approved(world: World, duration: timedelta = timedelta(hours=1)) -> str:
    """A request of Alice's for the sandbox, approved: what the issue job finds."""
    now = world.clock()
    request, event = open_request(new_request_id(), ALICE, "sandbox", duration, "INC-1", now, "fake")
    assert world.store.requests.create(request, event, pending_until=now + timedelta(hours=1))
    world.store.requests.transition(request.id, lambda r: approve_by_policy(r, now))
    return request.id


def active(world: World, duration: timedelta = timedelta(hours=1)) -> str:
    request_id = approved(world, duration)
    world.lifecycle.issue_access(request_id)
    return request_id


def run_jobs(world: World) -> list[JobName]:
    """What a worker does with what is queued now, through the job table; the jobs it ran."""
    context = SimpleNamespace(lifecycle=world.lifecycle)
    ran = []
    for job in [*world.tasks.urgent.get_jobs(), *world.tasks.queue.get_jobs()]:
        job.delete()
        ran.append(QUEUED_AS[job.func_name])
        run(context, ran[-1], *job.args)
    return ran


def test_issue_access_when_approved_then_access_delivered_and_no_secret_stored(world: World) -> None:
    request_id = approved(world)
    world.lifecycle.issue_access(request_id)
    assert world.messenger.of("deliver_access") == [Said("deliver_access", request_id, detail="FAKE_TOKEN")]
    token, stored = world.messenger.delivered[request_id].fields()["FAKE_TOKEN"].encode(), dump_redis(world.redis)
    assert any(request_id.encode() in value for value in stored.values())  # the scan sees the data
    assert not [key for key, value in stored.items() if token in value]
    assert run_jobs(world) == [JobName.SYNC_SLACK]
    assert world.messenger.of("show") == [Said("show", request_id, detail=Status.ACTIVE)]


def test_issue_access_when_access_cannot_be_delivered_then_the_grant_is_ended_not_left_live(world: World) -> None:
    world.messenger.refusing.add("deliver_access")
    request_id = approved(world)
    world.lifecycle.issue_access(request_id)
    assert world.fake.live == {request_id}  # granted, but nobody has it: the revocation path takes it away
    run_jobs(world)
    assert world.store.requests.get(request_id).status is Status.FAILED and world.fake.live == set()


def test_reconcile_when_an_extension_is_undecided_past_its_time_then_requester_told_it_timed_out(
    world: World,
) -> None:
    request_id = active(world, timedelta(hours=2))
    now = world.clock()
    asked = lambda r: ask_extension(r, timedelta(hours=1), "more", now, timedelta(minutes=30))  # noqa: E731
    world.store.requests.transition(request_id, asked)
    world.lifecycle.reconcile()
    assert world.messenger.of("tell_requester") == []  # still time to decide
    world.clock.advance(timedelta(minutes=31))
    world.lifecycle.reconcile()
    told = world.messenger.of("tell_requester")
    assert told == [Said("tell_requester", request_id, Outcome.EXTENSION_TIMED_OUT)]
    request = world.store.requests.get(request_id)
    assert request.status is Status.ACTIVE and request.extend_by is None  # the grant runs on


def test_end_access_when_the_cloud_keeps_refusing_past_the_alert_threshold_then_revocation_alerted_once(
    world: World,
) -> None:
    request_id = active(world)
    world.fake.fail_next = [ProviderError("the cloud is down", retryable=True)] * 10
    world.clock.advance(timedelta(hours=1))  # at its expiry
    for _ in range(6):  # what the sweeper and the reconciler's re-drives do, attempt after attempt
        world.lifecycle.end_access(request_id)
        run_jobs(world)
        world.clock.advance(timedelta(minutes=5))
    assert world.messenger.of("alert_revocation") == [Said("alert_revocation", request_id, detail="3")]
    assert world.store.requests.get(request_id).status is Status.ACTIVE  # still live: never dropped
