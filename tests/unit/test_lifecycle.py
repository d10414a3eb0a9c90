"""The Slack surface (the use cases and their Slack adapter) and Lifecycle wired together: fakeredis store and queue,
the Slack stand-in, the fake provider.

Jobs are only enqueued; each test calls the lifecycle method a job would run, under a clock it controls.
"""

import contextlib
import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import fakeredis
import pytest
import redis
from rq.job import Job

from jitbot.app.deciding import Deciding
from jitbot.app.guard import DUPLICATE, Guard
from jitbot.app.lifecycle import ISSUE_LOCK, Lifecycle
from jitbot.app.people import FRESH_S, People
from jitbot.app.requesting import Requesting
from jitbot.core.catalog import Catalog, Resource, parse_catalog
from jitbot.core.commands import RequestAccess
from jitbot.core.domain import AccessRequest, Status, fail
from jitbot.core.errors import InvalidTransition, NotFound, PolicyError, ProviderError
from jitbot.jobs.names import JobName
from jitbot.jobs.tasks import SERIALIZER, Tasks
from jitbot.providers.base import Issued
from jitbot.providers.fake import FakeProvider
from jitbot.slack import ids
from jitbot.slack.commands import Commands
from jitbot.slack.messenger import SlackMessenger, slack_messenger
from jitbot.slack.notify import Notifier, web_client
from jitbot.slack.surface import Surface, build_surface
from jitbot.store import Store
from jitbot.store.keys import AUDIT, EXPIRY, PENDING, TIMERS, request_key
from jitbot.store.schedule import due
from jitbot.testing.redis_dump import dump_redis
from jitbot.testing.slack_standin import Call, SlackStandIn

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
ALICE, BOB, CAROL, EVE, ADMIN = "U0ALICE", "U0BOB", "U0CAROL", "U0EVE", "U0ADMIN"
CATALOG = parse_catalog(
    """
approver_channel: C0APPROVALS
admins: [U0ADMIN]
resources:
  sandbox:
    provider: fake
    approvers: [U0BOB]
    pending_timeout: 1h
  crew:
    provider: fake
    approvers: [S0CREW]
  playground:
    provider: fake
    auto_approve: true
"""
)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> datetime:
        self.now += delta
        return self.now


class RecordingProvider(FakeProvider):
    """The fake provider, keeping what it issued so a test can look for the secret."""

    def __init__(self) -> None:
        super().__init__()
        self.issued: list[Issued] = []

    def grant(self, request: AccessRequest, resource: Resource, now: datetime) -> Issued:
        issued = super().grant(request, resource, now)
        self.issued.append(issued)
        return issued

    def token(self) -> str:
        return self.issued[-1].credentials.fields()["FAKE_TOKEN"]


@dataclass
class Bot:
    redis: fakeredis.FakeRedis
    store: Store
    tasks: Tasks
    slack: SlackStandIn
    fake: RecordingProvider
    clock: Clock
    surface: Surface
    lifecycle: Lifecycle
    messenger: SlackMessenger

    @property
    def requesting(self) -> Requesting:
        return self.surface.requesting

    @property
    def deciding(self) -> Deciding:
        return self.surface.deciding

    @property
    def commands(self) -> Commands:
        return self.surface.commands


@contextmanager
def make_bot(catalog: Catalog, someone_waiting: bool = False) -> Iterator[Bot]:
    """The Slack surface and the lifecycle wired on fakeredis, the Slack stand-in, a fake provider and a clock we move
    (`someone_waiting`: Slack is called as the web process calls it)."""
    client = fakeredis.FakeRedis()
    store, tasks, clock, fake = Store(client), Tasks(client), Clock(NOW), RecordingProvider()
    with SlackStandIn() as slack:
        notifier = Notifier(web_client("xoxb-t", slack.url, someone_waiting=someone_waiting), store)
        people = People(catalog, notifier, store)
        messenger = slack_messenger(catalog, notifier, people, clock, digests=True)
        surface = build_surface(Guard(catalog, store, people, clock), tasks, notifier, messenger)
        lifecycle = Lifecycle(catalog, store, tasks, messenger, people, lambda name: fake, clock=clock)
        yield Bot(client, store, tasks, slack, fake, clock, surface, lifecycle, messenger)


@pytest.fixture
def bot() -> Iterator[Bot]:
    with make_bot(CATALOG) as made:
        yield made


# --- helpers ----------------------------------------------------------------------------------------


def submit(bot: Bot, resource: str = "sandbox", duration: timedelta = timedelta(hours=1)) -> str:
    request, _ = bot.requesting.submit(ALICE, RequestAccess(resource, duration, "INC-1"))
    return request.id


def approved(bot: Bot) -> str:
    request_id = submit(bot)
    bot.lifecycle.sync_slack(request_id)
    bot.deciding.decide(request_id, BOB, approving=True)
    return request_id


def active(bot: Bot) -> str:
    request_id = approved(bot)
    bot.lifecycle.issue_access(request_id)
    return request_id


def status(bot: Bot, request_id: str) -> Status:
    return bot.store.requests.get(request_id).status


def jobs(bot: Bot, name: JobName) -> list[Job]:
    return [job for q in (bot.tasks.urgent, bot.tasks.queue) for job in q.get_jobs() if job.func_name == name.path]


def dms(bot: Bot, user: str = ALICE) -> list[Call]:
    return [call for call in bot.slack.calls_to("chat.postMessage") if call.params.get("channel") == user]


def shown(call: Call) -> str:
    """Everything a Slack call would show: its text and its blocks."""
    return json.dumps([call.params.get("text"), call.params.get("blocks")])


def audit_log(bot: Bot) -> list[dict[str, str]]:
    return [{key.decode(): value.decode() for key, value in fields.items()} for _, fields in bot.redis.xrange(AUDIT)]


def everything_in_redis(client: fakeredis.FakeRedis) -> bytes:
    return b"\n".join(dump_redis(client).values())


# --- submit and decide -----------------------------------------------------------------------------


def test_submit_then_pending_indexed_and_slack_sync_enqueued(bot: Bot) -> None:
    request_id = submit(bot)
    request = bot.store.requests.get(request_id)
    assert (request.status, request.requester, request.created_at) == (Status.PENDING, ALICE, NOW)
    assert due(bot.store.redis, PENDING, NOW + timedelta(hours=1)) == [request_id]
    assert [list(job.args) for job in jobs(bot, JobName.SYNC_SLACK)] == [[request_id]]
    assert jobs(bot, JobName.ISSUE) == []


def lose_redis_after_the_request_is_written(monkeypatch: pytest.MonkeyPatch) -> None:
    """Redis drops every command after the first one (a transaction, a script) that writes a request."""
    real_execute, real_command = redis.client.Pipeline.execute, redis.Redis.execute_command
    lost = False

    def after(writes_request: bool, results: Any) -> Any:
        nonlocal lost
        lost = writes_request
        return results

    def execute(pipe: redis.client.Pipeline, raise_on_error: bool = True) -> Any:
        if lost:
            raise redis.ConnectionError("connection lost")
        writes_request = any(request_key("") in str(args) for args, _ in pipe.command_stack)
        return after(writes_request, real_execute(pipe, raise_on_error))

    def execute_command(client: redis.Redis, *args: Any, **options: Any) -> Any:
        if lost:
            raise redis.ConnectionError("connection lost")
        results = real_command(client, *args, **options)
        return after(args[0] == "EVALSHA" and request_key("") in str(args) and results == [1], results)  # written

    monkeypatch.setattr(redis.client.Pipeline, "execute", execute)
    monkeypatch.setattr(redis.Redis, "execute_command", execute_command)


def test_submit_when_redis_lost_after_the_request_is_written_then_its_announcement_was_written_with_it(
    bot: Bot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request stored without the job that posts it to the approvers would wait unseen until it times out."""
    lose_redis_after_the_request_is_written(monkeypatch)
    with contextlib.suppress(redis.ConnectionError):
        submit(bot)
    monkeypatch.undo()
    [stored] = [key.decode().removeprefix(request_key("")) for key in bot.redis.scan_iter(request_key("*"))]
    assert [list(job.args) for job in jobs(bot, JobName.SYNC_SLACK)] == [[stored]]


def test_command_when_redis_lost_after_the_request_is_written_then_acknowledged_and_a_repeat_gets_that_answer(
    bot: Bot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The request, its announcement and the answer to its delivery are one write, the last the ack needs: once
    it is in, the person is told, and the same delivery again is refused as a repeat and told the same."""
    command, delivery = "request sandbox 1h INC-1 the disk is full", "1.2.trigger"
    lose_redis_after_the_request_is_written(monkeypatch)
    told = bot.commands.handle_command(ALICE, command, delivery)
    monkeypatch.undo()
    assert "is waiting for" in told.text
    assert bot.commands.handle_command(ALICE, command, delivery) == told
    assert len(list(bot.redis.scan_iter(request_key("*")))) == 1
    assert [(e["event"], json.loads(e["detail"])["reason"]) for e in audit_log(bot)[-1:]] == [("refused", DUPLICATE)]


GCP_CATALOG = parse_catalog(
    """
approver_channel: C0APPROVALS
resources:
  analytics:
    provider: gcp
    resource: projects/analytics-prod
    role: roles/bigquery.dataViewer
    approvers: [U0BOB]
"""
)


def test_submit_when_email_only_on_slack_profile_then_asked_once_and_remembered() -> None:
    with make_bot(GCP_CATALOG, someone_waiting=True) as bot:
        bot.slack.emails[ALICE] = "alice@example.com"
        first, second = (submit(bot, "analytics") for _ in range(2))
        assert [bot.store.requests.get(i).identity for i in (first, second)] == [{"email": "alice@example.com"}] * 2
        assert [call.params.get("user") for call in bot.slack.calls_to("users.info")] == [ALICE]


def test_command_then_the_person_read_with_its_claim_and_slack_asked_once_for_who_may_ask_and_the_email() -> None:
    """Who may ask and which email the cloud grants to are two questions about one person: a command's first round
    trip reads what Redis keeps of them, and what Slack answers then stands for the rest of the command."""
    with make_bot(GCP_CATALOG, someone_waiting=True) as bot:
        bot.slack.emails[ALICE] = "alice@example.com"
        reply = bot.commands.handle_command(ALICE, "request analytics 1h INC-7 look at the numbers", "1.2.trigger")
        assert "is waiting for" in reply.text
        assert [call.params.get("user") for call in bot.slack.calls_to("users.info")] == [ALICE]
        assert bot.store.deliveries.cached_person(ALICE) == {"standing": "member", "email": "alice@example.com"} | {
            "at": bot.store.deliveries.cached_person(ALICE)["at"]  # type: ignore[index]
        }


def test_decide_when_slack_answered_of_the_requester_within_fresh_s_then_not_asked_again_else_asked() -> None:
    """An approval asks who the requester is now; an answer of the last FRESH_S is now enough (users.info's limit
    would otherwise refuse a burst approved as it is announced)."""
    with make_bot(GCP_CATALOG) as bot:
        bot.slack.emails[ALICE] = "alice@example.com"
        first, second = submit(bot, "analytics"), submit(bot, "analytics")
        asked = len(bot.slack.calls_to("users.info"))
        bot.deciding.decide(first, BOB, approving=True)
        assert len(bot.slack.calls_to("users.info")) == asked
        facts = bot.store.deliveries.cached_person(ALICE) or {}
        # asked too long ago
        bot.store.deliveries.cache_person(ALICE, facts | {"at": str(int(facts["at"]) - FRESH_S - 1)})
        bot.deciding.decide(second, BOB, approving=True)
        assert len(bot.slack.calls_to("users.info")) == asked + 1


def test_command_when_slack_rate_limits_the_email_lookup_then_refused_at_once_and_nothing_requested() -> None:
    """The web process asks users.info while the person waits on Slack's 3 s: a 429 asking for 30 s is a clear
    refusal now (audited), not a sleep that makes Slack show the person a timeout."""
    with make_bot(GCP_CATALOG, someone_waiting=True) as bot:
        bot.slack.emails[ALICE] = "alice@example.com"
        bot.slack.fail("users.info", status=429, retry_after=30)
        started = time.monotonic()
        reply = bot.commands.handle_command(ALICE, "request analytics 1h INC-7 look at the numbers")
        assert time.monotonic() - started < 10  # generous: the old client slept the 30 s out
        assert "Slack did not say who you are just now" in reply.text and "Nothing was requested" in reply.text
        assert list(bot.redis.scan_iter(request_key("*"))) == []
        [refused] = [entry for entry in audit_log(bot) if entry["event"] == "refused"]
        assert refused["actor"] == ALICE and "ratelimited" in refused["detail"]


def test_sync_slack_when_pending_then_approval_message_with_approve_and_deny(bot: Bot) -> None:
    request_id = submit(bot)
    bot.lifecycle.sync_slack(request_id)
    (post,) = bot.slack.calls_to("chat.postMessage")
    assert post.params["channel"] == "C0APPROVALS" and request_id in post.params["text"]
    (buttons,) = [block for block in post.params["blocks"] if block["type"] == "actions"]
    assert [(b["action_id"], b["value"]) for b in buttons["elements"]] == [
        (ids.APPROVE, request_id),
        (ids.DENY, request_id),
    ]
    assert bot.store.slack.slack_refs(request_id)["approval_channel"] == "C0APPROVALS"
    bot.lifecycle.sync_slack(request_id)  # a repeat edits the message, never posts a second one
    assert len(bot.slack.calls_to("chat.postMessage")) == 1 and len(bot.slack.calls_to("chat.update")) == 1


@pytest.mark.parametrize(
    ("clicker", "reason"),
    [(ALICE, "can't approve or deny your own request"), (EVE, "Only the approvers of `sandbox`")],
)
@pytest.mark.parametrize("approving", [True, False])
def test_decide_when_requester_or_outsider_then_policy_error_and_refused_audit(
    bot: Bot, clicker: str, reason: str, approving: bool
) -> None:
    request_id = submit(bot)
    before, queued = bot.store.requests.get(request_id), [bot.tasks.urgent.job_ids, bot.tasks.queue.job_ids]
    with pytest.raises(PolicyError, match=re.escape(reason)):
        bot.deciding.decide(request_id, clicker, approving=approving)
    assert (
        bot.store.requests.get(request_id) == before and [bot.tasks.urgent.job_ids, bot.tasks.queue.job_ids] == queued
    )
    refused = audit_log(bot)[-1]
    assert (refused["event"], refused["actor"], refused["status"], refused["request_id"]) == (
        "refused",
        clicker,
        "pending",
        request_id,
    )
    detail = json.loads(refused["detail"])
    assert detail["attempted"] == ("approve" if approving else "deny") and reason in detail["reason"]


def test_decide_when_approver_then_approved_and_issue_job_enqueued(bot: Bot) -> None:
    request_id = submit(bot)
    updated = bot.deciding.decide(request_id, BOB, approving=True)
    assert (updated.status, updated.decided_by, updated.decided_at) == (Status.APPROVED, BOB, NOW)
    assert status(bot, request_id) is Status.APPROVED
    assert f"issue-{request_id}" in bot.tasks.urgent.job_ids
    assert [e["event"] for e in audit_log(bot)] == ["requested", "approved"]
    with pytest.raises(InvalidTransition, match="no longer"):
        bot.deciding.decide(request_id, ADMIN, approving=True)  # a late second click
    assert len([j for j in bot.tasks.urgent.job_ids if j == f"issue-{request_id}"]) == 1


def test_decide_when_approved_then_issue_job_ends_before_its_lock_can_lapse(bot: Bot) -> None:
    """While an issue job may still be asking the cloud, nothing else may end its request: the reconciler would
    fail it, and the access the cloud then grants would be cut only by a single best-effort revoke."""
    request_id = approved(bot)
    [job] = jobs(bot, JobName.ISSUE)
    assert job.args == [request_id] and job.timeout is not None
    assert 0 < job.timeout < ISSUE_LOCK.total_seconds()


def test_decide_when_denied_then_denied_no_issue_and_requester_told(bot: Bot) -> None:
    request_id = submit(bot)
    bot.deciding.decide(request_id, BOB, approving=False)
    assert status(bot, request_id) is Status.DENIED and jobs(bot, JobName.ISSUE) == []
    bot.lifecycle.sync_slack(request_id)
    (told,) = dms(bot)
    assert "was denied by <@U0BOB>" in told.params["text"]


def test_decide_when_clicker_in_approver_group_then_members_asked_at_click_time(bot: Bot) -> None:
    bot.slack.usergroups = {"S0CREW": [CAROL]}
    request_id = submit(bot, "crew")
    assert bot.deciding.decide(request_id, CAROL, approving=True).status is Status.APPROVED
    assert bot.slack.calls_to("usergroups.users.list")[0].params["usergroup"] == "S0CREW"


def test_decide_when_button_names_no_request_then_not_found(bot: Bot) -> None:
    with pytest.raises(NotFound):
        bot.deciding.decide("r-nope23", BOB, approving=True)
    with pytest.raises(NotFound):
        bot.deciding.decide("DROP TABLE", BOB, approving=True)


def test_submit_when_auto_approve_then_approved_by_jitbot_and_issue_enqueued(bot: Bot) -> None:
    request_id = submit(bot, "playground")
    request = bot.store.requests.get(request_id)
    assert (request.status, request.decided_by, request.decided_at) == (Status.APPROVED, "jitbot", NOW)
    approval = audit_log(bot)[-1]
    assert (approval["event"], approval["actor"]) == ("approved", "jitbot")
    assert f"issue-{request_id}" in bot.tasks.urgent.job_ids
    assert due(bot.store.redis, PENDING, NOW + timedelta(days=1)) == []


# --- issue -----------------------------------------------------------------------------------------


def test_issue_access_then_active_credentials_dm_and_indexed_for_the_sweeper_at_expiry(bot: Bot) -> None:
    request_id = approved(bot)
    bot.clock.advance(timedelta(minutes=1))
    bot.lifecycle.issue_access(request_id)
    request = bot.store.requests.get(request_id)
    assert request.status is Status.ACTIVE and request.expires_at == NOW + timedelta(hours=1, minutes=1)
    assert request.grant == {"session": f"fake-{request_id}"} and bot.fake.live == {request_id}
    (dm,) = dms(bot)
    assert bot.fake.token() in shown(dm)
    assert bot.store.slack.slack_refs(request_id)["secret_dm_channel"] == "D0ALICE"
    assert due(bot.store.redis, EXPIRY, request.expires_at) == [request_id]  # the schedule: no job per grant
    assert due(bot.store.redis, EXPIRY, request.expires_at - timedelta(microseconds=1)) == []


def test_issue_access_when_run_twice_then_one_grant_and_one_dm(bot: Bot) -> None:
    request_id = approved(bot)
    bot.lifecycle.issue_access(request_id)
    bot.lifecycle.issue_access(request_id)
    assert bot.fake.calls == [("grant", request_id)]
    assert len(dms(bot)) == 1


def test_issue_access_when_not_approved_then_nothing(bot: Bot) -> None:
    request_id = submit(bot)
    bot.lifecycle.issue_access(request_id)
    assert bot.fake.calls == [] and status(bot, request_id) is Status.PENDING


def test_issue_access_when_cloud_refuses_then_failed_with_its_message_and_requester_told(bot: Bot) -> None:
    request_id = approved(bot)
    message = "AWS AssumeRole failed: AccessDenied: not authorized to perform sts:AssumeRole"
    bot.fake.fail_next.append(ProviderError(message, retryable=False))
    bot.lifecycle.issue_access(request_id)
    request = bot.store.requests.get(request_id)
    assert (request.status, request.note) == (Status.FAILED, message)
    assert due(bot.store.redis, EXPIRY, NOW + timedelta(days=1)) == []
    bot.lifecycle.sync_slack(request_id)
    (told,) = dms(bot)
    assert message in told.params["text"] and "failed" in told.params["text"]
    approval = bot.slack.message("C0APPROVALS", bot.store.slack.slack_refs(request_id)["approval_ts"])
    assert message in json.dumps(approval["blocks"])


def test_issue_access_when_retryable_error_outside_a_job_then_failed_as_last_attempt(bot: Bot) -> None:
    request_id = approved(bot)
    bot.fake.fail_next.append(ProviderError("AWS AssumeRole failed: Throttling: slow down", retryable=True))
    bot.lifecycle.issue_access(request_id)
    assert status(bot, request_id) is Status.FAILED


def test_issue_access_when_credentials_dm_fails_then_access_cut_and_failed_with_note(bot: Bot) -> None:
    request_id = approved(bot)
    bot.slack.fail("chat.postMessage", status=200, error="channel_not_found")
    bot.lifecycle.issue_access(request_id)
    ending = bot.store.requests.get(request_id)
    assert (ending.status, ending.ending_by, ending.expires_at) == (Status.ACTIVE, "jitbot", NOW)
    assert [list(job.args) for job in jobs(bot, JobName.REVOKE)] == [[request_id]]
    assert due(bot.store.redis, EXPIRY, NOW) == [request_id]  # the sweeper would claim it too
    bot.lifecycle.end_access(request_id)  # the revoke job
    request = bot.store.requests.get(request_id)
    assert (
        bot.fake.calls == [("grant", request_id), ("revoke", request_id), ("verify", request_id)]
        and bot.fake.live == set()
    )
    assert request.status is Status.FAILED
    assert "could not be delivered" in request.note and "channel_not_found" in request.note
    assert due(bot.store.redis, EXPIRY, NOW + timedelta(days=1)) == []
    bot.lifecycle.sync_slack(request_id)
    assert "could not be delivered" in dms(bot)[-1].params["text"]


def test_issue_access_when_dm_fails_and_the_cloud_refuses_the_first_cut_then_retried_until_cut(bot: Bot) -> None:
    """Azure PIM refuses to remove an assignment in its first 5 minutes, so cutting an undelivered grant at once
    always failed there; the one inline attempt was all there was, and the access stayed until its end."""
    request_id = approved(bot)
    bot.slack.fail("chat.postMessage", status=200, error="channel_not_found")
    bot.lifecycle.issue_access(request_id)
    bot.fake.fail_next = [ProviderError("the cloud is down", retryable=True)]
    bot.lifecycle.end_access(request_id)
    assert status(bot, request_id) is Status.ACTIVE and bot.fake.live == {request_id}
    [retry_at] = [when for rid, when in bot.redis.zrange(EXPIRY, 0, -1, withscores=True) if rid.decode() == request_id]
    bot.clock.advance(timedelta(seconds=retry_at - NOW.timestamp()))
    assert due(bot.store.redis, EXPIRY, bot.clock()) == [request_id]
    bot.lifecycle.end_access(request_id)
    request = bot.store.requests.get(request_id)
    assert request.status is Status.FAILED and bot.fake.live == set() and "could not be delivered" in request.note
    assert [e["event"] for e in audit_log(bot) if e["request_id"] == request_id][-3:] == [
        "end requested",
        "revocation failed",
        "failed",
    ]


def test_sync_slack_when_extension_asked_then_approvers_mentioned_in_the_thread_once_per_ask(bot: Bot) -> None:
    """Editing the approval message notifies nobody: the approvers hear of each extension in its thread."""
    request_id = active(bot)
    approval = bot.store.slack.slack_refs(request_id)

    def replies() -> list[Call]:
        return [
            c for c in bot.slack.calls_to("chat.postMessage") if c.params.get("thread_ts") == approval["approval_ts"]
        ]

    bot.commands.ask_extension(ALICE, request_id, timedelta(minutes=30), "INC-1 still digging")
    bot.lifecycle.sync_slack(request_id)
    bot.lifecycle.sync_slack(request_id)  # a repeated sync says nothing new
    [told] = replies()
    assert told.params["channel"] == approval["approval_channel"]
    assert told.params["text"] == (
        f"<@U0BOB>: <@{ALICE}> asks for 30m more on `{request_id}` (`sandbox`): _INC-1 still digging_."
        " Approve or Deny on the message above."
    )
    bot.deciding.decide(request_id, BOB, approving=False)
    bot.lifecycle.sync_slack(request_id)
    bot.commands.ask_extension(ALICE, request_id, timedelta(minutes=30), "INC-1 still digging")
    bot.lifecycle.sync_slack(request_id)
    assert len(replies()) == 2  # the same ask again, after a denial, is news again


@pytest.mark.parametrize("cloud_cuts", [True, False])
def test_issue_access_when_request_ended_while_the_cloud_granted_then_cut_or_the_failure_audited(
    bot: Bot, monkeypatch: pytest.MonkeyPatch, cloud_cuts: bool
) -> None:
    """Only a lost issue lock lets this happen; nothing indexes the fresh access, so one revoke is tried at once
    and a refusal must at least be on the record."""
    request_id = approved(bot)
    real_grant = bot.fake.grant

    def grant_while_ended(request: AccessRequest, resource: Resource, now: datetime) -> Issued:
        issued = real_grant(request, resource, now)
        bot.store.requests.transition(request_id, lambda r: fail(r, "not issued in time", now))
        if not cloud_cuts:
            bot.fake.fail_next = [ProviderError("the cloud is down", retryable=True)]
        return issued

    monkeypatch.setattr(bot.fake, "grant", grant_while_ended)
    bot.lifecycle.issue_access(request_id)
    assert status(bot, request_id) is Status.FAILED and ("revoke", request_id) in bot.fake.calls
    recorded = [e for e in audit_log(bot) if e["request_id"] == request_id and e["event"] == "revocation failed"]
    if cloud_cuts:
        assert bot.fake.live == set() and recorded == []
    else:
        assert bot.fake.live == {request_id} and len(recorded) == 1
        assert "the cloud's own expiry ends it" in recorded[0]["detail"]


def test_issue_access_then_no_secret_anywhere_in_redis(bot: Bot) -> None:
    request_id = active(bot)
    bot.lifecycle.sync_slack(request_id)
    token = bot.fake.token().encode()
    assert token in shown(dms(bot)[0]).encode()  # the secret did go out, to the DM
    stored = everything_in_redis(bot.redis)
    assert request_id.encode() in stored and JobName.ISSUE.path.encode() in stored  # the scan sees the data
    assert token not in stored
    bot.clock.advance(timedelta(hours=2))
    bot.lifecycle.end_access(request_id)
    bot.lifecycle.sync_slack(request_id)
    assert token not in everything_in_redis(bot.redis)


# --- end ---------------------------------------------------------------------------------------------


def test_end_access_when_before_expiry_then_put_back_at_its_time_and_nothing_changes(bot: Bot) -> None:
    request_id = active(bot)
    before = bot.store.requests.get(request_id)
    bot.clock.advance(timedelta(minutes=30))
    assert bot.store.requests.claim_due(bot.clock.now + timedelta(hours=1), 10, timedelta(seconds=10)) == [request_id]
    bot.lifecycle.end_access(request_id)  # claimed, then found extended (here: not due yet)
    assert bot.store.requests.get(request_id) == before
    assert bot.fake.calls == [("grant", request_id)] and bot.fake.live == {request_id}
    assert bot.store.redis.zscore(EXPIRY, request_id) == before.expires_at.timestamp()  # type: ignore[union-attr]


def test_end_access_when_exactly_due_then_ends(bot: Bot) -> None:
    request_id = active(bot)
    bot.clock.advance(timedelta(hours=1))
    bot.lifecycle.end_access(request_id)
    assert status(bot, request_id) is Status.EXPIRED


def test_end_access_when_expired_then_revoked_and_slack_scrubbed_once(bot: Bot) -> None:
    request_id = active(bot)
    bot.lifecycle.sync_slack(request_id)
    token = bot.fake.token()
    refs = bot.store.slack.slack_refs(request_id)
    bot.clock.advance(timedelta(hours=1))
    bot.lifecycle.end_access(request_id)
    assert (
        bot.fake.calls == [("grant", request_id), ("revoke", request_id), ("verify", request_id)]
        and bot.fake.live == set()
    )
    assert status(bot, request_id) is Status.EXPIRED
    assert due(bot.store.redis, EXPIRY, NOW + timedelta(days=1)) == []
    assert audit_log(bot)[-1]["event"] == "expired" and audit_log(bot)[-1]["actor"] == "jitbot"
    bot.slack.reset()
    bot.lifecycle.sync_slack(request_id)
    bot.lifecycle.sync_slack(request_id)
    scrubs = [c for c in bot.slack.calls_to("chat.update") if c.params["channel"] == refs["secret_dm_channel"]]
    assert len(scrubs) == 1 and scrubs[0].params["ts"] == refs["secret_dm_ts"]
    assert token not in shown(scrubs[0]) and "has ended" in scrubs[0].params["text"]
    assert token not in json.dumps(bot.slack.message(refs["secret_dm_channel"], refs["secret_dm_ts"]))
    approval = [c for c in bot.slack.calls_to("chat.update") if c.params["channel"] == "C0APPROVALS"]
    assert approval and all(c.params["ts"] == refs["approval_ts"] for c in approval)
    assert "access removed" in shown(approval[-1]) and ids.APPROVE not in shown(approval[-1])
    (told,) = dms(bot)
    assert "has expired" in told.params["text"]


def test_end_access_when_run_again_after_expiry_then_no_second_revoke(bot: Bot) -> None:
    request_id = active(bot)
    bot.clock.advance(timedelta(hours=2))
    bot.lifecycle.end_access(request_id)
    bot.lifecycle.end_access(request_id)
    assert bot.fake.calls.count(("revoke", request_id)) == 1


def test_end_access_when_approved_but_never_issued_then_cut_and_failed(bot: Bot) -> None:
    request_id = approved(bot)
    bot.clock.advance(timedelta(hours=2))
    bot.lifecycle.end_access(request_id)
    request = bot.store.requests.get(request_id)
    assert (request.status, request.note) == (Status.FAILED, "not issued in time")
    assert bot.fake.calls == [("revoke", request_id), ("verify", request_id)]


# --- reconcile ---------------------------------------------------------------------------------------


def test_reconcile_when_grant_overdue_then_revoke_job_enqueued_once(bot: Bot) -> None:
    request_id = active(bot)
    assert bot.lifecycle.reconcile() == 0
    bot.clock.advance(timedelta(hours=1, seconds=31))  # past the grace left to the sweeper
    assert bot.lifecycle.reconcile() == 2  # the revocation, and the expiring-soon reminder it overtook
    assert bot.lifecycle.reconcile() == 1
    assert bot.tasks.urgent.job_ids.count(f"revoke-now-{request_id}") == 1
    (job,) = [j for j in jobs(bot, JobName.REVOKE) if j.id == f"revoke-now-{request_id}"]
    assert list(Job.fetch(job.id, connection=bot.redis, serializer=SERIALIZER).args) == [request_id]
    bot.lifecycle.end_access(request_id)  # what the job does
    assert status(bot, request_id) is Status.EXPIRED and bot.lifecycle.reconcile() == 0


def test_reconcile_when_within_grace_then_leaves_it_to_the_sweeper(bot: Bot) -> None:
    request_id = active(bot)
    bot.clock.advance(timedelta(hours=1, seconds=2))
    assert bot.lifecycle.reconcile() == 1  # only the expiring-soon reminder's timer
    assert f"revoke-now-{request_id}" not in bot.tasks.urgent.job_ids


def test_reconcile_when_pending_past_timeout_then_expired_and_requester_told(bot: Bot) -> None:
    request_id = submit(bot)
    bot.lifecycle.sync_slack(request_id)
    bot.clock.advance(timedelta(minutes=59))
    assert bot.lifecycle.reconcile() == 0
    timeout = bot.clock.advance(timedelta(minutes=1))
    assert bot.lifecycle.reconcile() == 1
    request = bot.store.requests.get(request_id)
    assert (request.status, request.decided_at) == (Status.EXPIRED, timeout)
    assert due(bot.store.redis, PENDING, timeout + timedelta(days=1)) == []
    assert audit_log(bot)[-1]["event"] == "timed out"
    bot.lifecycle.sync_slack(request_id)
    (told,) = dms(bot)
    assert "expired before anyone decided" in told.params["text"]
    approval = bot.slack.calls_to("chat.update")[-1]
    assert "Expired before anyone decided" in shown(approval) and ids.APPROVE not in shown(approval)
    assert bot.lifecycle.reconcile() == 0


def test_help_when_slack_cannot_say_who_asks_then_usage_all_the_same() -> None:
    with make_bot(GCP_CATALOG, someone_waiting=True) as bot:
        bot.slack.fail("users.info", status=429, retry_after=30)
        reply = bot.commands.handle_command(ALICE, "help")
        assert reply.text.startswith("*Usage*") and reply.text.endswith("try again in a minute.")
        assert "You may ask for: `analytics`." in bot.commands.handle_command(ALICE, "help").text


def test_reconcile_when_an_approved_requests_issue_job_was_lost_then_queued_again_until_granted(bot: Bot) -> None:
    request_id = approved(bot)
    bot.tasks.urgent.empty()  # the job died with its worker, or with the Redis that held it (a failover)
    bot.clock.advance(timedelta(seconds=20))
    bot.lifecycle.reconcile()
    assert not jobs(bot, JobName.ISSUE)  # not yet: a job may still be on its way
    bot.clock.advance(timedelta(seconds=15))
    bot.lifecycle.reconcile()
    assert [job.id for job in jobs(bot, JobName.ISSUE)] == [f"issue-{request_id}"]
    bot.clock.advance(timedelta(seconds=31))
    bot.lifecycle.reconcile()  # still queued: not queued twice
    assert len(jobs(bot, JobName.ISSUE)) == 1
    bot.lifecycle.issue_access(request_id)
    assert status(bot, request_id) is Status.ACTIVE and bot.redis.zscore(TIMERS, f"issue:{request_id}") is None
