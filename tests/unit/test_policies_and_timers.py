"""Policies that act on their own time: pending timeout, delayed auto-approval, escalation, expiring-soon
reminders and break-glass re-alerts; and the extensions, End now and Cancel around them.

Time is a Clock the test moves; `lifecycle.reconcile()` plays the worker's sweep, and the jobs it enqueues are run
through the job table a worker runs them by (jitbot.jobs.registry). Nothing sleeps. The pure functions of
`domain` and `policy` these behaviours rest on are tested first, with no fakes.
"""

import contextlib
import json
import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from rq.job import Job

from jitbot.app.drift import DriftScan
from jitbot.core.catalog import Resource, parse_catalog
from jitbot.core.commands import BreakGlass, RequestAccess
from jitbot.core.domain import (
    AccessRequest,
    Status,
    approve,
    ask_extension,
    deny,
    escalate,
    extend,
    grant,
    open_request,
    renew,
    time_out,
)
from jitbot.core.errors import ConfigError, InvalidTransition, JitError, PolicyError, ProviderError, TimedOut
from jitbot.core.policy import check_approver, check_cancel, check_end, check_extension, check_reason
from jitbot.jobs.names import JobName
from jitbot.jobs.registry import run
from jitbot.providers.base import Issued
from jitbot.slack import ids
from jitbot.slack.views import when
from jitbot.store.keys import TIMERS
from jitbot.store.schedule import due
from tests.unit.test_lifecycle import NOW, Bot, audit_log, dms, make_bot, shown, status

ALICE, BOB, CAROL, DAVE, OLIVE, EVE, ADMIN = "U0ALICE", "U0BOB", "U0CAROL", "U0DAVE", "U0OLIVE", "U0EVE", "U0ADMIN"
SECOND, HOUR = timedelta(seconds=1), timedelta(hours=1)
CATALOG_TEXT = """
approver_channel: C0APPROVALS
alert_channel: C0SECURITY
admins: [U0ADMIN]
breakglass_realert: 30m
resources:
  sandbox:
    provider: fake
    approvers: [U0BOB]
    pending_timeout: 1h
  critical:
    provider: fake
    approvers: [U0BOB]
    auto_approve_after: 30m
    pending_timeout: 2h
  escalating:
    provider: fake
    approvers: [U0BOB]
    escalate_after: 15m
    escalate_to: [U0DAVE, S0ONCALL, C0ONCALL]
    pending_timeout: 1h
  bounded:
    provider: fake
    approvers: [U0BOB]
    auto_approve: {max_duration: 30m}
    max_duration: 2h
  pair:
    provider: fake
    approvers: [U0BOB, U0CAROL]
    approvals: 2
  ticketed:
    provider: fake
    approvers: [U0BOB]
    reason: {min_length: 10, pattern: '^(INC|CHG)-[0-9]+', example: INC-123 disk full}
  glass:
    provider: fake
    approvers: [U0BOB]
    breakglass: true
  team-critical:
    provider: fake
    approvers: [U0BOB]
    auto_approve_after: 30m
    pending_timeout: 2h
    requesters: [S0TEAM]
"""
CATALOG = parse_catalog(CATALOG_TEXT)
SANDBOX, ESCALATING, TICKETED = (CATALOG.resources[n] for n in ("sandbox", "escalating", "ticketed"))


@pytest.fixture
def bot() -> Iterator[Bot]:
    with make_bot(CATALOG) as made:
        made.slack.usergroups = {"S0ONCALL": [OLIVE], "S0TEAM": [ALICE]}
        for user in (ALICE, BOB, CAROL, DAVE, OLIVE, ADMIN):  # they have opened jitbot's Home: it is kept current
            made.store.slack.add_home_viewer(user)
        yield made


# --- helpers ------------------------------------------------------------------------------------------------


def worker_context(bot: Bot) -> SimpleNamespace:
    """What a worker's jobs run against (jitbot.jobs.registry.Context: the runtime, in production), made of the
    test's wiring; `tasks` too, for the worker's own maintenance pass."""
    life = bot.lifecycle
    drift = DriftScan(life.catalog, bot.store, bot.messenger, life.provider, bot.clock)
    return SimpleNamespace(
        lifecycle=life,
        drift=drift,
        messenger=bot.messenger,
        store=bot.store,
        catalog=life.catalog,
        notifier=bot.messenger.notifier,
        tasks=bot.tasks,
    )


QUEUED_AS = {name.path: name for name in JobName}  # the dotted path RQ stores → the job


def run_job(worker: SimpleNamespace, job: Job) -> JobName:
    """Take a queued job off its queue and run it, as a worker would, through the job table; its name."""
    name = QUEUED_AS[job.func_name]
    job.delete()
    run(worker, name, *job.args)
    return name


def run_jobs(bot: Bot) -> list[JobName]:
    """What a worker does with everything queued now, and with what those jobs queue in turn; the jobs it ran.

    Jobs scheduled for later (the revocation at expiry) wait in RQ's scheduled registry and are not run here."""
    worker = worker_context(bot)
    ran: list[JobName] = []
    for _ in range(20):
        queued = [*bot.tasks.urgent.get_jobs(), *bot.tasks.queue.get_jobs()]  # as a worker takes them
        if not queued:
            return ran
        ran.extend(run_job(worker, job) for job in queued)
    raise AssertionError(f"jobs keep queueing jobs: {ran[-10:]}")


def at(bot: Bot, moment: timedelta) -> int:
    """Move the clock to NOW + `moment` and sweep, as the worker's reconciler would; how much it found due."""
    bot.clock.now = NOW + moment
    return bot.lifecycle.reconcile()


def submit(bot: Bot, resource: str, duration: timedelta = timedelta(hours=1), user: str = ALICE) -> str:
    request, _ = bot.requesting.submit(user, RequestAccess(resource, duration, "INC-1 migrating the schema"))
    run_jobs(bot)
    return request.id


def active(bot: Bot, resource: str = "sandbox", duration: timedelta = timedelta(hours=1)) -> str:
    """A grant issued at NOW, its approval message posted and the credentials DM sent."""
    request_id = submit(bot, resource, duration)
    if status(bot, request_id) is Status.PENDING:
        bot.deciding.decide(request_id, BOB, approving=True)
        run_jobs(bot)
    assert status(bot, request_id) is Status.ACTIVE
    return request_id


def message(bot: Bot, request_id: str, kind: str = "approval") -> dict[str, Any]:
    """A message jitbot posted about the request, as Slack now shows it (after every chat.update)."""
    refs = bot.store.slack.slack_refs(request_id)
    return bot.slack.message(refs[f"{kind}_channel"], refs[f"{kind}_ts"])


def text_of(view: dict[str, Any] | None) -> str:
    return json.dumps(view)


def buttons(view: dict[str, Any]) -> list[str]:
    return [e["action_id"] for b in view["blocks"] or [] if b["type"] == "actions" for e in b["elements"]]


def events(bot: Bot, request_id: str) -> list[tuple[str, str]]:
    return [(e["event"], e["actor"]) for e in audit_log(bot) if e["request_id"] == request_id]


def reminders(bot: Bot) -> list[str]:
    return [c.params["text"] for c in dms(bot) if "ends in" in (c.params.get("text") or "")]


def security_posts(bot: Bot) -> list[dict[str, Any]]:
    return [c.params for c in bot.slack.calls_to("chat.postMessage") if c.params["channel"] == "C0SECURITY"]


# --- pure core: domain --------------------------------------------------------------------------------------


def pending(duration: timedelta = timedelta(hours=1)) -> AccessRequest:
    return open_request("r-abc234", ALICE, "sandbox", duration, "INC-1", NOW)[0]


def granted(duration: timedelta = timedelta(hours=1), at_: timedelta = timedelta(0)) -> AccessRequest:
    approved, _ = approve(pending(duration), BOB, 1, NOW)
    return grant(approved, {"session": "s"}, NOW + at_)[0]


def test_approve_when_extension_needs_two_then_endorsed_then_extended_by_its_amount() -> None:
    asked, _ = ask_extension(granted(), timedelta(minutes=30), "INC-2", NOW + timedelta(minutes=40), HOUR)
    once, first = approve(asked, BOB, 2, NOW + timedelta(minutes=41))
    assert (once.status, first.event, once.extend_approvals) == (Status.ACTIVE, "extension endorsed", (BOB,))
    assert once.expires_at == NOW + timedelta(hours=1) and once.extend_by == timedelta(minutes=30)
    twice, second = approve(once, CAROL, 2, NOW + timedelta(minutes=42))
    assert (twice.status, second.event, second.actor) == (Status.ACTIVE, "extended", CAROL)
    assert twice.expires_at == NOW + timedelta(hours=1, minutes=30)
    assert (twice.extend_by, twice.extend_reason, twice.extend_approvals) == (None, None, ())
    assert twice.approvals == (BOB,)  # the original approval stays as it was


def test_approve_when_active_without_extension_then_nothing_to_approve() -> None:
    with pytest.raises(InvalidTransition, match="nothing to approve"):
        approve(granted(), BOB, 1, NOW)


def test_deny_when_extension_waits_then_extension_dropped_and_grant_unchanged() -> None:
    asked, _ = ask_extension(granted(), timedelta(minutes=30), "INC-2", NOW, HOUR)
    denied, event = deny(asked, BOB, NOW + timedelta(minutes=1), "not today")
    assert (denied.status, event.event, event.actor, event.detail["note"]) == (
        Status.ACTIVE,
        "extension denied",
        BOB,
        "not today",
    )
    assert denied.expires_at == asked.expires_at and denied.extend_by is None and denied.extend_approvals == ()
    assert (denied.decided_by, denied.decided_at) == (BOB, NOW)  # the original decision is not rewritten


def test_deny_when_active_without_extension_then_refused() -> None:
    with pytest.raises(InvalidTransition, match="no extension to deny"):
        deny(granted(), BOB, NOW, None)


def test_ask_extension_when_one_already_waits_then_refused() -> None:
    asked, event = ask_extension(granted(), timedelta(minutes=30), "INC-2", NOW, HOUR)
    assert (event.event, event.actor, asked.extend_by) == ("extension requested", ALICE, timedelta(minutes=30))
    with pytest.raises(InvalidTransition, match="already has an extension waiting"):
        ask_extension(asked, timedelta(minutes=15), "INC-3", NOW, HOUR)


def test_ask_extension_when_not_active_then_refused() -> None:
    with pytest.raises(InvalidTransition):
        ask_extension(pending(), timedelta(minutes=30), "INC-2", NOW, HOUR)
    with pytest.raises(InvalidTransition, match="no extension waiting"):
        extend(granted(), BOB, NOW)


@pytest.mark.parametrize(
    ("request_", "remind_at"),
    [
        (pending(timedelta(hours=1)), None),
        (granted(timedelta(minutes=30)), NOW + timedelta(minutes=25)),
        (granted(timedelta(minutes=29)), None),
        (granted(timedelta(hours=2), at_=timedelta(minutes=3)), NOW + timedelta(hours=1, minutes=58)),
        (replace(granted(timedelta(hours=1)), ending_by=BOB), None),
        (replace(granted(timedelta(hours=1)), status=Status.EXPIRED), None),
    ],
    ids=["pending", "30m", "29m", "2h-issued-late", "ending", "expired"],
)
def test_remind_at_when_active_and_at_least_30m_then_five_minutes_before_expiry(request_, remind_at) -> None:
    assert request_.remind_at == remind_at


def test_remind_at_when_short_grant_extended_past_30m_then_reminded_for_the_new_expiry() -> None:
    short = granted(timedelta(minutes=20))
    extended, _ = extend(ask_extension(short, timedelta(minutes=15), "INC-2", NOW, HOUR)[0], BOB, NOW)
    assert short.remind_at is None and extended.remind_at == NOW + timedelta(minutes=30)


def test_granted_for_then_requested_duration_until_granted_then_whole_grant_with_extensions() -> None:
    assert pending(timedelta(hours=2)).granted_for == timedelta(hours=2)
    issued_late = granted(timedelta(hours=1), at_=timedelta(minutes=7))
    assert issued_late.granted_for == timedelta(hours=1)
    longer, _ = extend(ask_extension(issued_late, timedelta(minutes=45), "", NOW, HOUR)[0], BOB, NOW)
    assert longer.granted_for == timedelta(hours=1, minutes=45)


def test_apply_when_policy_acts_then_actor_is_jitbot_and_event_named_for_the_trail() -> None:
    escalated, event = escalate(pending(), NOW)
    assert (escalated.status, escalated.escalated, event.event, event.actor) == (
        Status.PENDING,
        True,
        "escalated",
        "jitbot",
    )
    timed_out, event = time_out(pending(), NOW)
    assert (timed_out.status, event.event) == (Status.EXPIRED, "timed out")


# --- pure core: policy --------------------------------------------------------------------------------------


def test_check_extension_when_within_max_in_all_then_allowed_else_names_what_is_left() -> None:
    one_hour = granted(timedelta(hours=1))  # sandbox: at most 4h in all
    check_extension(SANDBOX, one_hour, timedelta(hours=3), NOW)
    with pytest.raises(PolicyError, match=r"`sandbox` grants at most 4h in all; `r-abc234` can have at most 3h more"):
        check_extension(SANDBOX, one_hour, timedelta(hours=3, seconds=1), NOW)
    full, _ = extend(ask_extension(one_hour, timedelta(hours=3), "", NOW, HOUR)[0], BOB, NOW)
    with pytest.raises(PolicyError, match="can have no more time"):
        check_extension(SANDBOX, full, timedelta(minutes=15), NOW)


def test_check_extension_when_not_active_then_refused() -> None:
    with pytest.raises(PolicyError, match="only an active grant can be extended"):
        check_extension(SANDBOX, pending(), timedelta(minutes=15), NOW)


def escalated_request() -> AccessRequest:
    return replace(pending(), resource="escalating", escalated=True)


@pytest.mark.parametrize(
    ("user", "groups", "escalated"),
    [
        (ALICE, {}, False),
        (BOB, {}, False),
        (ADMIN, {}, False),
        (DAVE, {}, True),
        (OLIVE, {"S0ONCALL": frozenset({OLIVE})}, True),
    ],
)
def test_check_end_when_requester_approver_admin_or_escalation_approver_then_allowed(
    user: str, groups: dict[str, frozenset[str]], escalated: bool
) -> None:
    grant_ = replace(granted(), resource="escalating", escalated=escalated)
    check_end(CATALOG, ESCALATING, grant_, user, groups)


@pytest.mark.parametrize(
    ("user", "groups", "escalated"),
    [(EVE, {}, True), (DAVE, {}, False), (OLIVE, {"S0ONCALL": frozenset({OLIVE})}, False)],
)
def test_check_end_when_anyone_else_then_refused_naming_who_can(
    user: str, groups: dict[str, frozenset[str]], escalated: bool
) -> None:
    grant_ = replace(granted(), resource="escalating", escalated=escalated)
    with pytest.raises(PolicyError, match=r"Only <@U0ALICE>, the approvers of `escalating` or an admin can end it"):
        check_end(CATALOG, ESCALATING, grant_, user, groups)


def test_check_end_when_not_active_then_nothing_to_end() -> None:
    with pytest.raises(PolicyError, match="is pending, not active: there is nothing to end"):
        check_end(CATALOG, SANDBOX, pending(), ALICE, {})


def test_check_cancel_when_requester_and_pending_then_allowed_else_refused() -> None:
    check_cancel(pending(), ALICE)
    with pytest.raises(PolicyError, match=r"Only <@U0ALICE>, who asked, can cancel `r-abc234`"):
        check_cancel(pending(), BOB)
    with pytest.raises(PolicyError, match=r"is active, no longer pending; `/access revoke` ends a grant"):
        check_cancel(granted(), ALICE)


@pytest.mark.parametrize(
    ("reason", "needle"),
    [
        ("   ", "A reason is required"),
        ("INC-1", "must be at least 10 characters, e.g. `INC-123 disk full`"),
        ("the disk is full again", r"must include a ticket (`^(INC|CHG)-[0-9]+`), e.g. `INC-123 disk full`"),
        ("see INC-12345 please", "must include a ticket"),  # the pattern is anchored at the start
    ],
)
def test_check_reason_when_rules_broken_then_error_shows_the_example(reason: str, needle: str) -> None:
    with pytest.raises(PolicyError) as caught:
        check_reason(TICKETED, reason)
    assert needle in str(caught.value)


def test_check_reason_when_rules_kept_or_absent_then_passes_and_no_example_is_invented() -> None:
    check_reason(TICKETED, "CHG-42 rotate the keys")
    check_reason(SANDBOX, "x")
    with pytest.raises(PolicyError) as caught:
        check_reason(replace(TICKETED, reason=replace(TICKETED.reason, example=None)), "INC-1")
    assert "e.g." not in str(caught.value)


def test_check_approver_when_escalation_approver_then_only_once_escalated() -> None:
    waiting = replace(pending(), resource="escalating")
    with pytest.raises(PolicyError, match="Only the approvers of `escalating`"):
        check_approver(CATALOG, ESCALATING, waiting, DAVE, {})
    check_approver(CATALOG, ESCALATING, replace(waiting, escalated=True), DAVE, {})
    check_approver(CATALOG, ESCALATING, replace(waiting, escalated=True), OLIVE, {"S0ONCALL": frozenset({OLIVE})})


# --- pending timeout ----------------------------------------------------------------------------------------


def test_pending_timeout_when_nobody_decides_then_expires_at_that_moment_and_message_and_requester_told(
    bot: Bot,
) -> None:
    request_id = submit(bot, "sandbox")
    assert at(bot, timedelta(hours=1) - SECOND) == 0 and status(bot, request_id) is Status.PENDING
    assert at(bot, timedelta(hours=1)) == 1
    request = bot.store.requests.get(request_id)
    assert (request.status, request.decided_at, request.decided_by) == (Status.EXPIRED, NOW + timedelta(hours=1), None)
    assert events(bot, request_id)[-1] == ("timed out", "jitbot")
    run_jobs(bot)
    approval = message(bot, request_id)
    assert "Expired before anyone decided" in text_of(approval) and buttons(approval) == []
    (told,) = dms(bot)
    assert "expired before anyone decided" in told.params["text"] and request_id in told.params["text"]
    with pytest.raises(InvalidTransition, match="can no longer be approved"):
        bot.deciding.decide(request_id, BOB, approving=True)  # a late click on an old copy of the message
    assert at(bot, timedelta(hours=2)) == 0 and bot.fake.calls == []


@pytest.mark.parametrize(
    ("resource", "approving", "refused"),
    [("sandbox", True, "approve"), ("sandbox", False, "deny"), ("pair", True, "approve")],  # pair: an endorsement
)
def test_decide_when_a_second_after_the_timeout_and_no_reconciler_ran_then_refused_and_timed_out_there(
    bot: Bot, resource: str, approving: bool, refused: str
) -> None:
    request_id = submit(bot, resource)
    bot.clock.now = NOW + HOUR + SECOND  # the worker is busy elsewhere: nothing swept the pending index
    with pytest.raises(TimedOut, match=f"Request {request_id} timed out at .* before anyone decided"):
        bot.deciding.decide(request_id, BOB, approving=approving, note="too late")
    request = bot.store.requests.get(request_id)
    assert (request.status, request.approvals, request.decided_at) == (Status.EXPIRED, (), NOW + HOUR + SECOND)
    assert events(bot, request_id)[-2:] == [("refused", BOB), ("timed out", "jitbot")]
    run_jobs(bot)
    approval = message(bot, request_id)
    assert "Expired before anyone decided" in text_of(approval) and buttons(approval) == []
    (told,) = dms(bot)
    assert "expired before anyone decided" in told.params["text"] and bot.fake.calls == []
    assert at(bot, HOUR + 2 * SECOND) == 0  # nothing left for the reconciler


def test_deny_button_when_after_the_timeout_then_no_form_and_timed_out_there(bot: Bot) -> None:
    request_id = submit(bot, "sandbox")
    bot.clock.now = NOW + HOUR + SECOND
    with pytest.raises(TimedOut, match="can no longer be approved or denied"):
        bot.deciding.authorize_decision(request_id, BOB, "deny", delivery="trigger-1")
    assert status(bot, request_id) is Status.EXPIRED and bot.slack.calls_to("views.open") == []
    assert events(bot, request_id)[-2:] == [("refused", BOB), ("timed out", "jitbot")]


def test_extension_when_approved_after_its_deadline_then_refused_dropped_and_holder_told(bot: Bot) -> None:
    request_id = active(bot, "sandbox", timedelta(hours=2))
    bot.clock.now = NOW + timedelta(minutes=10)
    bot.commands.ask_extension(ALICE, request_id, timedelta(minutes=30), "INC-1 still migrating")
    run_jobs(bot)
    bot.clock.now = NOW + timedelta(minutes=70) + SECOND  # the resource's pending_timeout (1h) after the ask
    with pytest.raises(TimedOut, match=f"The extension of {request_id} timed out at"):
        bot.deciding.decide(request_id, BOB, approving=True)
    request = bot.store.requests.get(request_id)
    assert (request.status, request.expires_at, request.extend_by) == (Status.ACTIVE, NOW + 2 * HOUR, None)
    assert events(bot, request_id)[-2:] == [("refused", BOB), ("extension timed out", "jitbot")]
    assert "Nobody decided in time on extending" in dms(bot)[-1].params["text"]
    run_jobs(bot)
    assert buttons(message(bot, request_id)) == [] and "renew" not in run_jobs(bot)


def test_extension_when_nobody_decides_by_its_deadline_then_the_reconciler_drops_it_and_tells_the_holder(
    bot: Bot,
) -> None:
    request_id = active(bot, "sandbox", timedelta(hours=2))
    bot.clock.now = NOW + timedelta(minutes=10)
    bot.commands.ask_extension(ALICE, request_id, timedelta(minutes=30), "INC-1 still migrating")
    run_jobs(bot)
    bot.clock.now = NOW + timedelta(minutes=70)  # its deadline, nobody having clicked
    bot.lifecycle.reconcile()
    request = bot.store.requests.get(request_id)
    assert (request.status, request.expires_at, request.extend_by) == (Status.ACTIVE, NOW + 2 * HOUR, None)
    assert events(bot, request_id)[-1] == ("extension timed out", "jitbot")
    assert "Nobody decided in time on extending" in dms(bot)[-1].params["text"]
    run_jobs(bot)
    assert buttons(message(bot, request_id)) == []  # the approvers' buttons go with it
    bot.lifecycle.reconcile()  # the timer went with the extension: nothing more happens
    assert events(bot, request_id)[-1] == ("extension timed out", "jitbot")


# --- auto_approve bound -------------------------------------------------------------------------------------


def test_submit_when_within_auto_approve_bound_then_approved_by_jitbot_and_issued(bot: Bot) -> None:
    request_id = submit(bot, "bounded", timedelta(minutes=30))
    request = bot.store.requests.get(request_id)
    assert (request.status, request.decided_by, request.decided_at) == (Status.ACTIVE, "jitbot", NOW)
    assert events(bot, request_id)[:3] == [("requested", ALICE), ("approved", "jitbot"), ("granted", "jitbot")]
    assert "policy (auto-approve)" in text_of(message(bot, request_id))
    assert bot.fake.live == {request_id}


def test_submit_when_beyond_auto_approve_bound_then_waits_for_humans_with_no_timer(bot: Bot) -> None:
    request_id = submit(bot, "bounded", timedelta(minutes=31))
    assert status(bot, request_id) is Status.PENDING and bot.fake.calls == []
    assert buttons(message(bot, request_id)) == [ids.APPROVE, ids.DENY]
    assert due(bot.store.redis, TIMERS, NOW + timedelta(days=1)) == []
    assert bot.deciding.decide(request_id, BOB, approving=True).decided_by == BOB


# --- auto_approve_after -------------------------------------------------------------------------------------


def test_auto_approve_after_when_announced_then_requester_and_approvers_are_told_when(bot: Bot) -> None:
    reply = bot.commands.handle_command(ALICE, "request critical 1h INC-1 the pager is on fire")
    assert f"If nobody decides, it approves itself {when(NOW + timedelta(minutes=30))}" in reply.text
    run_jobs(bot)
    (request_id,) = [r.id for r in bot.store.requests.open_requests_of(ALICE)]
    approval = message(bot, request_id)
    assert f"Approves itself {when(NOW + timedelta(minutes=30))} unless denied first" in text_of(approval)
    assert buttons(approval) == [ids.APPROVE, ids.DENY]
    terms = bot.commands.handle_command(EVE, "resources").text
    assert "by policy after 30m without an answer" in terms and "by policy up to 30m" in terms


def test_auto_approve_after_when_nobody_decides_then_approved_by_jitbot_at_that_moment_and_issued(bot: Bot) -> None:
    request_id = submit(bot, "critical")
    assert at(bot, timedelta(minutes=30) - SECOND) == 0 and status(bot, request_id) is Status.PENDING
    assert at(bot, timedelta(minutes=30)) == 1
    request = bot.store.requests.get(request_id)
    assert (request.status, request.decided_by, request.decided_at) == (
        Status.APPROVED,
        "jitbot",
        NOW + timedelta(minutes=30),
    )
    assert events(bot, request_id)[-1] == ("approved", "jitbot")
    assert run_jobs(bot).count("issue") == 1
    assert status(bot, request_id) is Status.ACTIVE and bot.fake.live == {request_id}
    approval = message(bot, request_id)
    assert "Approved by policy (auto-approve)" in text_of(approval) and buttons(approval) == []
    assert "Approves itself" not in text_of(approval)
    (credentials,) = dms(bot)
    assert bot.fake.token() in shown(credentials)
    assert at(bot, timedelta(minutes=45)) == 0  # approved once; the timer is gone


def test_auto_approve_after_when_requester_left_the_group_then_denied_by_policy_not_issued(bot: Bot) -> None:
    request_id = submit(bot, "team-critical")
    bot.slack.usergroups["S0TEAM"] = []
    assert at(bot, timedelta(minutes=30)) == 1
    request = bot.store.requests.get(request_id)
    assert (request.status, request.decided_by) == (Status.DENIED, "jitbot")
    assert request.note == "may no longer ask for `team-critical` (not eligible)"
    run_jobs(bot)
    assert bot.fake.calls == [] and "Denied by policy: may no longer ask" in text_of(message(bot, request_id))
    assert at(bot, timedelta(minutes=45)) == 0


def test_auto_approve_after_when_slack_cannot_say_then_pending_until_a_pass_where_it_can(bot: Bot) -> None:
    request_id = submit(bot, "team-critical")
    bot.slack.fail("usergroups.users.list", status=500, times=3)  # the worker's client retries twice
    assert at(bot, timedelta(minutes=30)) == 1 and status(bot, request_id) is Status.PENDING
    assert at(bot, timedelta(minutes=30, seconds=30)) == 1 and status(bot, request_id) is Status.APPROVED
    assert events(bot, request_id)[-1] == ("approved", "jitbot")


def test_extension_when_requester_left_the_group_then_approval_denies_it_and_grant_runs_on(bot: Bot) -> None:
    request_id = submit(bot, "team-critical")
    bot.deciding.decide(request_id, BOB, approving=True)
    run_jobs(bot)
    bot.slack.usergroups["S0TEAM"] = []  # the group as jitbot last read it (a minute at most) still has her
    bot.commands.ask_extension(ALICE, request_id, timedelta(minutes=30), "INC-1 still migrating")
    with pytest.raises(PolicyError, match="Not approved: <@U0ALICE> may no longer ask for `team-critical`"):
        bot.deciding.decide(request_id, BOB, approving=True)
    request = bot.store.requests.get(request_id)
    assert request.status is Status.ACTIVE and request.extend_by is None
    assert request.expires_at == NOW + timedelta(hours=1)
    assert "jitbot denied extending" in dms(bot)[-1].params["text"]
    assert [e for e in events(bot, request_id)][-2:] == [("extension denied", "jitbot"), ("refused", BOB)]


def test_auto_approve_after_when_approver_denies_first_then_stays_denied(bot: Bot) -> None:
    request_id = submit(bot, "critical")
    bot.clock.now = NOW + timedelta(minutes=29)
    bot.deciding.decide(request_id, BOB, approving=False, note="use the read replica")
    run_jobs(bot)
    assert at(bot, timedelta(minutes=30)) == 0 and at(bot, timedelta(hours=3)) == 0
    request = bot.store.requests.get(request_id)
    assert (request.status, request.decided_by, request.note) == (Status.DENIED, BOB, "use the read replica")
    assert ("approved", "jitbot") not in events(bot, request_id) and bot.fake.calls == []
    (told,) = dms(bot)
    assert "was denied by <@U0BOB>. Reason: use the read replica" in told.params["text"]
    assert "Denied by <@U0BOB>: use the read replica" in text_of(message(bot, request_id))


def test_auto_approve_after_when_approver_approves_first_then_approved_by_them_once(bot: Bot) -> None:
    request_id = submit(bot, "critical")
    bot.clock.now = NOW + timedelta(minutes=10)
    bot.deciding.decide(request_id, BOB, approving=True)
    run_jobs(bot)
    assert at(bot, timedelta(minutes=30)) == 0
    assert [e for e in events(bot, request_id) if e[0] == "approved"] == [("approved", BOB)]
    assert bot.fake.calls == [("grant", request_id)]


def test_auto_approve_after_when_not_before_pending_timeout_then_the_announced_approval_is_kept() -> None:
    """`auto_approve_after: 1h` with the default `pending_timeout: 1h`: the approvers and the requester were told
    "approves itself at 13:00", so at 13:00 it must approve, not expire — or the catalog must refuse the pair."""
    text = CATALOG_TEXT.replace("  sandbox:\n", "  slow:\n    provider: fake\n    approvers: [U0BOB]\n"
                                "    auto_approve_after: 1h\n  sandbox:\n")  # fmt: skip
    try:
        catalog = parse_catalog(text)
    except ConfigError as error:  # refused at start-up, naming the key: a fix too
        assert "auto_approve_after" in str(error)
        return
    with make_bot(catalog) as bot:
        request_id = submit(bot, "slow")
        promised = bot.store.requests.get(request_id).auto_approve_at
        assert promised == NOW + timedelta(hours=1)
        at(bot, timedelta(hours=1))
        # BUG: reconcile() sweeps PENDING (the timeout) before TIMERS (auto-approval): it times out instead.
        assert status(bot, request_id) is Status.APPROVED


def test_auto_approve_after_when_the_reconciler_runs_after_the_timeout_then_timed_out_not_approved(bot: Bot) -> None:
    request_id = submit(bot, "critical")  # approves itself after 30m; times out after 2h
    assert at(bot, 2 * HOUR + SECOND) == 2  # the pass that should have run at 30m comes late: both are due
    request = bot.store.requests.get(request_id)
    assert (request.status, request.decided_by) == (Status.EXPIRED, None)
    assert events(bot, request_id)[-1] == ("timed out", "jitbot") and ("approved", "jitbot") not in events(
        bot, request_id
    )
    assert "issue" not in run_jobs(bot) and bot.fake.calls == []


# --- escalation ---------------------------------------------------------------------------------------------


def test_escalation_when_nobody_decides_then_reannounced_at_that_moment_to_the_second_approvers(bot: Bot) -> None:
    request_id = submit(bot, "escalating")
    assert at(bot, timedelta(minutes=15) - SECOND) == 0 and not bot.store.requests.get(request_id).escalated
    assert at(bot, timedelta(minutes=15)) == 1
    request = bot.store.requests.get(request_id)
    assert (request.status, request.escalated) == (Status.PENDING, True)
    assert events(bot, request_id)[-1] == ("escalated", "jitbot")
    assert sorted(run_jobs(bot)) == ["escalate", "sync_slack"]
    (post,) = [c.params for c in bot.slack.calls_to("chat.postMessage") if c.params["channel"] == "C0ONCALL"]
    assert "<@U0DAVE>" in post["text"] and "<!subteam^S0ONCALL>" in post["text"] and request_id in post["text"]
    assert buttons(message(bot, request_id, "escalation")) == [ids.APPROVE, ids.DENY]
    assert ":mega: Escalated to" in text_of(message(bot, request_id))
    assert request_id in text_of(bot.slack.home(DAVE)) and request_id in text_of(bot.slack.home(OLIVE))
    assert at(bot, timedelta(minutes=20)) == 0  # escalated once
    run_jobs(bot)
    assert len([c for c in bot.slack.calls_to("chat.postMessage") if c.params["channel"] == "C0ONCALL"]) == 1


@pytest.mark.parametrize("approver", [DAVE, OLIVE])
def test_escalation_approver_when_before_escalation_then_refused_and_after_then_approves(
    bot: Bot, approver: str
) -> None:
    request_id = submit(bot, "escalating")
    bot.clock.now = NOW + timedelta(minutes=14)
    with pytest.raises(PolicyError, match="Only the approvers of `escalating`"):
        bot.deciding.decide(request_id, approver, approving=True)
    refused = audit_log(bot)[-1]
    assert (refused["event"], refused["actor"], json.loads(refused["detail"])["attempted"]) == (
        "refused",
        approver,
        "approve",
    )
    assert bot.slack.home(approver) is None  # nothing waits for them yet
    at(bot, timedelta(minutes=15))
    run_jobs(bot)
    assert bot.slack.home(approver) is not None and ids.APPROVE in text_of(bot.slack.home(approver))
    bot.clock.now = NOW + timedelta(minutes=16)
    assert bot.deciding.decide(request_id, approver, approving=True).status is Status.APPROVED
    assert events(bot, request_id)[-1] == ("approved", approver)
    run_jobs(bot)
    assert status(bot, request_id) is Status.ACTIVE
    assert f"Approved by <@{approver}>" in text_of(message(bot, request_id))


def test_escalation_when_decided_before_then_never_escalated(bot: Bot) -> None:
    request_id = submit(bot, "escalating")
    bot.clock.now = NOW + timedelta(minutes=10)
    bot.deciding.decide(request_id, BOB, approving=False)
    run_jobs(bot)
    assert at(bot, timedelta(minutes=15)) == 0 and at(bot, timedelta(hours=1)) == 0
    assert "escalated" not in [e for e, _ in events(bot, request_id)]
    assert [c for c in bot.slack.calls_to("chat.postMessage") if c.params["channel"] == "C0ONCALL"] == []
    assert bot.slack.home(DAVE) is None


def test_escalation_when_then_decided_then_the_escalation_message_shows_it_too(bot: Bot) -> None:
    request_id = submit(bot, "escalating")
    at(bot, timedelta(minutes=15))
    run_jobs(bot)
    bot.deciding.decide(request_id, DAVE, approving=True)
    run_jobs(bot)
    assert buttons(message(bot, request_id)) == []  # the approvers' channel is up to date
    escalation = message(bot, request_id, "escalation")
    # BUG: announcer.sync_approval_message edits the escalation message only on the path that first posts the
    # approval message; once that exists it returns early, so the escalation keeps its Approve / Deny buttons.
    assert buttons(escalation) == [] and "Approved by <@U0DAVE>" in text_of(escalation)


# --- expiring soon ------------------------------------------------------------------------------------------


def test_remind_when_grant_of_an_hour_then_one_dm_five_minutes_before_with_extend_and_end_now(bot: Bot) -> None:
    request_id = active(bot, "sandbox", timedelta(hours=1))
    assert at(bot, timedelta(minutes=55) - SECOND) == 0
    assert reminders(bot) == []
    assert at(bot, timedelta(minutes=55)) == 1
    assert run_jobs(bot) == ["remind"]
    (dm,) = [c for c in dms(bot) if "ends in" in c.params["text"]]
    assert "ends in 5m" in dm.params["text"] and request_id in dm.params["text"]
    assert [(b["text"]["text"], b["action_id"], b["value"]) for b in dm.params["blocks"][-1]["elements"]] == [
        ("Extend", ids.EXTEND, request_id),
        ("End now", ids.END_NOW, request_id),
    ]
    assert at(bot, timedelta(minutes=56)) == 0
    bot.lifecycle.remind(request_id)  # a job run twice
    assert len(reminders(bot)) == 1


@pytest.mark.parametrize(("minutes", "expected"), [(29, 0), (30, 1)])
def test_remind_when_grant_shorter_than_30m_then_none(bot: Bot, minutes: int, expected: int) -> None:
    request_id = active(bot, "sandbox", timedelta(minutes=minutes))
    for minute in range(minutes + 1):
        at(bot, timedelta(minutes=minute))
        run_jobs(bot)
    assert len(reminders(bot)) == expected and status(bot, request_id) is Status.ACTIVE


def test_remind_when_extended_then_one_new_reminder_for_the_new_expiry(bot: Bot) -> None:
    request_id = active(bot, "sandbox", timedelta(hours=1))
    at(bot, timedelta(minutes=55))
    run_jobs(bot)
    bot.clock.now = NOW + timedelta(minutes=56)
    bot.commands.ask_extension(ALICE, request_id, timedelta(hours=1), "INC-1 still running")
    bot.deciding.decide(request_id, BOB, approving=True)
    run_jobs(bot)
    assert bot.store.requests.get(request_id).expires_at == NOW + timedelta(hours=2)
    for minute in range(57, 115):
        at(bot, timedelta(minutes=minute))
        run_jobs(bot)
    assert len(reminders(bot)) == 1  # nothing new before 1h55m
    at(bot, timedelta(hours=1, minutes=55))
    assert run_jobs(bot) == ["remind"]
    assert len(reminders(bot)) == 2 and "ends in 5m" in reminders(bot)[-1]
    at(bot, timedelta(hours=1, minutes=56))
    run_jobs(bot)
    assert len(reminders(bot)) == 2


def test_remind_when_ended_early_then_no_reminder(bot: Bot) -> None:
    request_id = active(bot, "sandbox", timedelta(hours=1))
    bot.clock.now = NOW + timedelta(minutes=20)
    bot.commands.end_now(ALICE, request_id)
    run_jobs(bot)
    at(bot, timedelta(minutes=55))
    run_jobs(bot)
    assert reminders(bot) == [] and status(bot, request_id) is Status.REVOKED


# --- break-glass --------------------------------------------------------------------------------------------


def break_glass(bot: Bot) -> str:
    reply = bot.commands.break_glass(ALICE, BreakGlass("glass", timedelta(hours=2), "INC-9 database down"))
    assert "Security has been alerted" in reply
    (request_id,) = [r.id for r in bot.store.requests.open_requests_of(ALICE)]
    return request_id


def test_breakglass_then_granted_at_once_alerted_and_realerted_until_someone_else_acknowledges(bot: Bot) -> None:
    request_id = break_glass(bot)
    assert events(bot, request_id) == [("requested", ALICE), ("break-glass", ALICE), ("review opened", "jitbot")]
    run_jobs(bot)
    assert status(bot, request_id) is Status.ACTIVE and bot.fake.live == {request_id}
    (first,) = security_posts(bot)
    first_ts = bot.store.slack.slack_refs(request_id)["review_ts"]
    assert "<!here>" in first["text"] and "Break-glass" in first["text"]
    assert [b["action_id"] for b in first["blocks"][-1]["elements"]] == [ids.ACKNOWLEDGE, ids.FLAG]

    assert at(bot, timedelta(minutes=30) - SECOND) == 0
    assert at(bot, timedelta(minutes=30)) == 1
    assert run_jobs(bot) == ["review_alert"]
    assert len(security_posts(bot)) == 2 and bot.store.reviews.review(request_id)["alerts"] == "1"
    assert "Reminder 1." in text_of(security_posts(bot)[-1]["blocks"])
    assert buttons(bot.slack.message("C0SECURITY", first_ts)) == []  # the buttons moved to the new alert
    assert buttons(message(bot, request_id, "review")) == [ids.ACKNOWLEDGE, ids.FLAG]

    bot.clock.now = NOW + timedelta(minutes=40)
    with pytest.raises(PolicyError, match="Someone other than you must review"):
        bot.deciding.review(request_id, ALICE, acknowledge=True)
    refused = audit_log(bot)[-1]
    assert (refused["event"], refused["actor"], json.loads(refused["detail"])["attempted"]) == (
        "refused",
        ALICE,
        "review",
    )
    assert bot.store.reviews.review(request_id)["status"] == "open"
    assert at(bot, timedelta(minutes=60)) == 1  # still unreviewed: alerted again
    run_jobs(bot)
    assert len(security_posts(bot)) == 3 and bot.store.reviews.review(request_id)["alerts"] == "2"

    bot.clock.now = NOW + timedelta(minutes=70)
    bot.deciding.review(request_id, BOB, acknowledge=True)
    assert events(bot, request_id)[-1] == ("review acknowledged", BOB)
    run_jobs(bot)
    latest = message(bot, request_id, "review")
    assert "acknowledged by <@U0BOB>" in text_of(latest) and buttons(latest) == []
    for minute in (90, 100, 120, 150):
        at(bot, timedelta(minutes=minute))
        assert "review_alert" not in run_jobs(bot)
    assert len(security_posts(bot)) == 3 and bot.store.reviews.review(request_id)["alerts"] == "2"
    with pytest.raises(InvalidTransition, match="already closed"):
        bot.deciding.review(request_id, ADMIN, acknowledge=False)


def test_breakglass_when_flagged_then_review_closed_as_flagged_and_realerts_stop(bot: Bot) -> None:
    request_id = break_glass(bot)
    run_jobs(bot)
    bot.clock.now = NOW + timedelta(minutes=5)
    bot.deciding.review(request_id, ADMIN, acknowledge=False)
    run_jobs(bot)
    assert events(bot, request_id)[-1] == ("review flagged", ADMIN)
    assert "flagged by <@U0ADMIN>" in text_of(message(bot, request_id, "review"))
    assert at(bot, timedelta(minutes=30)) == 0 and len(security_posts(bot)) == 1


def test_breakglass_when_outsider_reviews_then_refused_and_audited(bot: Bot) -> None:
    request_id = break_glass(bot)
    with pytest.raises(PolicyError, match="Only the approvers of `glass` or an admin can review"):
        bot.deciding.review(request_id, EVE, acknowledge=True)
    assert events(bot, request_id)[-1] == ("refused", EVE) and bot.store.reviews.review(request_id)["status"] == "open"


def test_breakglass_when_realerted_then_each_realert_is_in_the_audit_trail(bot: Bot) -> None:
    request_id = break_glass(bot)
    run_jobs(bot)
    at(bot, timedelta(minutes=30))
    run_jobs(bot)
    at(bot, timedelta(minutes=60))
    run_jobs(bot)
    assert bot.store.reviews.review(request_id)["alerts"] == "2"
    # BUG: "every step audited" — reconcile() re-alerts (store.reviews.next_review_alert + the review_alert job) without
    # writing an audit record, so the trail cannot show that security was reminded, or how often.
    realerts = [
        e
        for e in audit_log(bot)
        if e["request_id"] == request_id
        and e["actor"] == "jitbot"
        and e["at"] in {(NOW + timedelta(minutes=m)).isoformat() for m in (30, 60)}
    ]
    assert len(realerts) == 2


def test_breakglass_when_resource_does_not_allow_it_then_refused_and_audited(bot: Bot) -> None:
    reply = bot.commands.handle_command(ALICE, "breakglass sandbox 1h INC-9 database down")
    assert "does not allow break-glass access" in reply.text
    assert audit_log(bot)[-1]["event"] == "refused" and bot.store.requests.open_requests_of(ALICE) == []


# --- extensions ---------------------------------------------------------------------------------------------


def test_extend_when_total_within_auto_bound_then_extended_by_jitbot_and_access_renewed(bot: Bot) -> None:
    request_id = active(bot, "bounded", timedelta(minutes=15))
    first_token, first_dm = bot.fake.token(), bot.store.slack.slack_refs(request_id)["secret_dm_ts"]
    bot.clock.now = NOW + timedelta(minutes=5)
    reply = bot.commands.handle_command(ALICE, f"extend {request_id} 10m")
    assert reply.text == f"Extended `{request_id}` by policy: it now runs until {when(NOW + timedelta(minutes=25))}."
    assert bot.store.requests.get(request_id).expires_at == NOW + timedelta(minutes=25)
    assert run_jobs(bot)[0] == "renew"
    assert events(bot, request_id)[-3:] == [
        ("extension requested", ALICE),
        ("extended", "jitbot"),
        ("renewed", "jitbot"),
    ]
    assert bot.fake.calls == [("grant", request_id)] * 2
    old = bot.slack.message("D0ALICE", first_dm)
    assert first_token not in text_of(old) and "has ended" in old["text"]
    latest = dms(bot)[-1]
    assert bot.fake.token() in shown(latest) and when(NOW + timedelta(minutes=25)) in latest.params["text"]


def test_extend_when_end_asked_while_the_cloud_renews_then_renewed_access_cut_not_recorded(bot: Bot) -> None:
    """An End now lands between the cloud issuing the renewed access and jitbot recording it: RENEW is refused,
    what the cloud just issued is cut at once, and no new access is sent."""
    request_id = active(bot, "bounded", timedelta(minutes=15))
    bot.clock.now = NOW + timedelta(minutes=5)
    bot.commands.handle_command(ALICE, f"extend {request_id} 10m")
    renew, dms_before = bot.fake.extend, len(dms(bot))

    def renew_then_end(request: AccessRequest, resource: Resource, now: datetime) -> Issued:
        issued = renew(request, resource, now)
        bot.commands.end_now(BOB, request_id)
        return issued

    bot.fake.extend = renew_then_end  # type: ignore[method-assign]
    run_jobs(bot)
    assert "renewed" not in [event for event, _ in events(bot, request_id)]
    assert bot.fake.calls[-2:] == [("revoke", request_id), ("verify", request_id)] and request_id not in bot.fake.live
    assert not any(bot.fake.token() in shown(dm) for dm in dms(bot)[dms_before:])
    assert status(bot, request_id) is Status.REVOKED


def test_renew_when_an_end_was_asked_then_refused_and_handle_keeps_the_latest_credentials_end() -> None:
    now = NOW + timedelta(minutes=5)
    later, sooner = (NOW + timedelta(minutes=m) for m in (40, 20))
    current = replace(granted(), grant={"credentials_expire_at": later.isoformat()})
    renewed, _ = renew(current, {"credentials_expire_at": sooner.isoformat(), "session_name": "s"}, now)
    assert renewed.grant == {"credentials_expire_at": later.isoformat(), "session_name": "s"}
    with pytest.raises(InvalidTransition, match="is being ended"):
        renew(replace(current, ending_by=BOB), {}, now)


def test_extend_when_total_beyond_auto_bound_then_approver_decides_and_access_renewed(bot: Bot) -> None:
    request_id = active(bot, "bounded", timedelta(minutes=15))
    bot.clock.now = NOW + timedelta(minutes=5)
    reply = bot.commands.handle_command(ALICE, f"extend {request_id} 30m INC-1 still migrating")
    assert "Asked 30m more" in reply.text and "I'll DM you when the approvers decide" in reply.text
    assert (
        bot.store.requests.get(request_id).expires_at == NOW + timedelta(minutes=15)
        and bot.fake.calls.count(("grant", request_id)) == 1
    )
    run_jobs(bot)
    approval = message(bot, request_id)
    assert "Extension asked:* 30m more: INC-1 still migrating (0 of 1 approvals)" in text_of(approval)
    assert buttons(approval) == [ids.APPROVE, ids.DENY]
    assert request_id in text_of(bot.slack.home(BOB)) and "Extension: 30m more" in text_of(bot.slack.home(BOB))
    with pytest.raises(PolicyError, match="your own request"):
        bot.deciding.decide(request_id, ALICE, approving=True)
    bot.deciding.decide(request_id, BOB, approving=True)
    assert bot.store.requests.get(request_id).expires_at == NOW + timedelta(minutes=45)
    assert "renew" in run_jobs(bot)
    assert [e for e in events(bot, request_id) if e[0] in ("extended", "renewed")] == [
        ("extended", BOB),
        ("renewed", "jitbot"),
    ]
    assert when(NOW + timedelta(minutes=45)) in dms(bot)[-1].params["text"]
    assert buttons(message(bot, request_id)) == [] and "Extension asked" not in text_of(message(bot, request_id))


def test_extend_when_two_approvals_needed_then_endorsed_then_extended(bot: Bot) -> None:
    request_id = submit(bot, "pair")
    bot.deciding.decide(request_id, BOB, approving=True)
    bot.deciding.decide(request_id, CAROL, approving=True)
    run_jobs(bot)
    bot.commands.ask_extension(ALICE, request_id, timedelta(hours=1), "")
    assert bot.deciding.decide(request_id, BOB, approving=True).expires_at == NOW + timedelta(hours=1)
    assert events(bot, request_id)[-1] == ("extension endorsed", BOB)
    with pytest.raises(PolicyError, match="already approved"):
        bot.deciding.decide(request_id, BOB, approving=True)
    assert bot.deciding.decide(request_id, CAROL, approving=True).expires_at == NOW + timedelta(hours=2)
    assert events(bot, request_id)[-1] == ("extended", CAROL)


def test_extend_when_beyond_max_in_all_then_refused_naming_what_is_left_and_audited(bot: Bot) -> None:
    request_id = active(bot, "sandbox", timedelta(hours=1))
    reply = bot.commands.handle_command(ALICE, f"extend {request_id} 3h1s")
    assert "`sandbox` grants at most 4h in all" in reply.text and "can have at most 3h more" in reply.text
    (refused,) = [e for e in audit_log(bot) if e["request_id"] == request_id and e["event"] == "refused"]
    assert (refused["actor"], json.loads(refused["detail"])["attempted"]) == (ALICE, "extend")
    assert bot.store.requests.get(request_id).extend_by is None
    assert "Asked 3h more" in bot.commands.handle_command(ALICE, f"extend {request_id} 3h").text
    again = bot.commands.handle_command(ALICE, f"extend {request_id} 15m")
    assert "already has an extension waiting" in again.text and events(bot, request_id)[-1] == ("refused", ALICE)
    assert bot.store.requests.get(request_id).extend_by == timedelta(hours=3)


def test_extend_when_not_the_requester_then_refused(bot: Bot) -> None:
    request_id = active(bot)
    with pytest.raises(PolicyError, match="who holds"):
        bot.commands.ask_extension(BOB, request_id, timedelta(minutes=15), "")
    assert bot.store.requests.get(request_id).extend_by is None and events(bot, request_id)[-1] == ("refused", BOB)


def test_extend_when_reason_rules_then_applied_to_the_extension_too(bot: Bot) -> None:
    request_id = active(bot, "ticketed")
    with pytest.raises(PolicyError, match=re.escape("e.g. `INC-123 disk full`")):
        bot.commands.ask_extension(ALICE, request_id, timedelta(minutes=30), "more time")
    assert bot.store.requests.get(request_id).extend_by is None


def test_extend_when_denied_then_grant_runs_on_and_requester_told_why(bot: Bot) -> None:
    request_id = active(bot, "sandbox", timedelta(hours=1))
    bot.clock.now = NOW + timedelta(minutes=40)
    bot.commands.ask_extension(ALICE, request_id, timedelta(hours=1), "INC-1 still migrating")
    run_jobs(bot)
    bot.deciding.decide(request_id, BOB, approving=False, note="hand over to the night shift")
    assert run_jobs(bot) == ["sync_slack"]
    request = bot.store.requests.get(request_id)
    assert (request.status, request.expires_at, request.extend_by) == (Status.ACTIVE, NOW + timedelta(hours=1), None)
    assert events(bot, request_id)[-1] == ("extension denied", BOB)
    assert buttons(message(bot, request_id)) == [] and "Extension asked" not in text_of(message(bot, request_id))
    # BUG: a denied extension leaves the grant ACTIVE, and notify.tell_requester only speaks for final statuses:
    # the requester, told "I'll DM you when the approvers decide", never hears the denial or its reason.
    assert any("hand over to the night shift" in (c.params.get("text") or "") for c in dms(bot))


# --- End now / revoke ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("user", [ALICE, BOB, ADMIN])
def test_end_now_when_requester_approver_or_admin_then_revoked_with_that_person_recorded(bot: Bot, user: str) -> None:
    request_id = active(bot)
    token = bot.fake.token()
    bot.clock.now = NOW + timedelta(minutes=20)
    reply = bot.commands.handle_command(user, f"revoke {request_id}")
    assert reply.text.startswith(f"Ending `{request_id}`")
    assert "revoke" in run_jobs(bot)
    request = bot.store.requests.get(request_id)
    assert (request.status, request.ending_by, request.expires_at) == (
        Status.REVOKED,
        user,
        NOW + timedelta(minutes=20),
    )
    assert events(bot, request_id)[-2:] == [("end requested", user), ("revoked", user)]
    assert bot.fake.live == set()
    assert f"revoked by <@{user}>" in text_of(message(bot, request_id))
    assert f"was revoked by <@{user}>" in dms(bot)[-1].params["text"]
    assert token not in text_of(message(bot, request_id, "secret_dm"))


def test_end_now_when_someone_else_then_refused_and_audited(bot: Bot) -> None:
    request_id = active(bot)
    reply = bot.commands.handle_command(EVE, f"revoke {request_id}")
    assert "Only <@U0ALICE>, the approvers of `sandbox` or an admin can end it" in reply.text
    assert events(bot, request_id)[-1] == ("refused", EVE) and status(bot, request_id) is Status.ACTIVE


def test_command_when_refused_on_a_request_then_one_refusal_record_per_attempt(bot: Bot) -> None:
    request_id = active(bot)
    before = len(audit_log(bot))
    bot.commands.handle_command(EVE, f"revoke {request_id}")
    refusals = [e for e in audit_log(bot)[before:] if e["event"] == "refused"]
    # BUG: Guard.guarded records the refusal (attempted "end", with the request id) and re-raises; then
    # Commands.handle_command records it again (attempted "command", request "-"): two records, and the
    # jitbot_events_total{event="refused"} count doubled, for one refused command.
    assert len(refusals) == 1, [json.loads(e["detail"])["attempted"] for e in refusals]


@pytest.mark.parametrize("then", ["approver approves the waiting extension", "requester asks an automatic one"])
def test_end_now_when_an_extension_follows_then_the_end_still_stands(bot: Bot, then: str) -> None:
    """End now is final: while the cloud refuses to cut the access (it is retried with backoff), no extension may
    move the end back out."""
    automatic = then.startswith("requester")
    duration = timedelta(minutes=15) if automatic else timedelta(hours=1)
    request_id = active(bot, "bounded" if automatic else "sandbox", duration)
    if not automatic:
        bot.commands.ask_extension(ALICE, request_id, timedelta(hours=1), "INC-1")
    bot.clock.now = NOW + timedelta(minutes=10)
    bot.commands.end_now(ADMIN, request_id)
    bot.fake.fail_next.append(ProviderError("cloud busy", retryable=True))
    run_jobs(bot)
    assert status(bot, request_id) is Status.ACTIVE  # ending, the cloud has not cut it yet
    with contextlib.suppress(JitError):  # refusing is right; so would be ignoring it
        if automatic:
            bot.commands.ask_extension(ALICE, request_id, timedelta(minutes=10), "")
        else:
            bot.deciding.decide(request_id, BOB, approving=True)
    at(bot, timedelta(minutes=15))
    run_jobs(bot)
    # BUG: END_NOW leaves the request ACTIVE with ending_by set, and neither domain.approve (extension) nor
    # Requesting.ask_extension / policy.check_extension look at ending_by: the extension moves expires_at past now,
    # so end_access reschedules itself to the new expiry and the ended grant lives on.
    assert status(bot, request_id) is Status.REVOKED and bot.fake.live == set()


# --- Cancel -------------------------------------------------------------------------------------------------


def test_cancel_when_requester_and_pending_then_cancelled_and_no_auto_approval_follows(bot: Bot) -> None:
    request_id = submit(bot, "critical")
    bot.clock.now = NOW + timedelta(minutes=10)
    assert "Only <@U0ALICE>, who asked" in bot.commands.handle_command(BOB, f"cancel {request_id}").text
    assert events(bot, request_id)[-1] == ("refused", BOB)
    assert bot.commands.handle_command(ALICE, f"cancel {request_id}").text == f"Cancelled `{request_id}` (`critical`)."
    assert events(bot, request_id)[-1] == ("cancelled", ALICE)
    run_jobs(bot)
    approval = message(bot, request_id)
    assert "Cancelled by the requester" in text_of(approval) and buttons(approval) == []
    assert "was cancelled" in dms(bot)[-1].params["text"]
    assert at(bot, timedelta(minutes=30)) == 0 and at(bot, timedelta(hours=3)) == 0
    assert status(bot, request_id) is Status.CANCELLED and bot.fake.calls == []


def test_cancel_when_active_then_refused_pointing_at_revoke(bot: Bot) -> None:
    request_id = active(bot)
    reply = bot.commands.handle_command(ALICE, f"cancel {request_id}")
    assert "no longer pending; `/access revoke` ends a grant" in reply.text
    assert status(bot, request_id) is Status.ACTIVE and events(bot, request_id)[-1] == ("refused", ALICE)


# --- reason rules, end to end -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reason", "needle"),
    [
        ("fixing", "must be at least 10 characters, e.g. `INC-123 disk full`"),
        ("because the disk is full", "must include a ticket"),
    ],
)
def test_request_when_reason_breaks_the_rules_then_refused_with_the_example_and_audited(
    bot: Bot, reason: str, needle: str
) -> None:
    reply = bot.commands.handle_command(ALICE, f"request ticketed 1h {reason}")
    assert needle in reply.text and "INC-123 disk full" in reply.text
    refused = audit_log(bot)[-1]
    assert (refused["event"], refused["actor"], refused["resource"]) == ("refused", ALICE, "ticketed")
    assert bot.store.requests.open_requests_of(ALICE) == []
    assert "is waiting for" in bot.commands.handle_command(ALICE, "request ticketed 1h INC-42 disk is full").text


# --- App Home -----------------------------------------------------------------------------------------------


def test_sync_slack_then_home_republished_for_the_requester_and_everyone_who_may_decide(bot: Bot) -> None:
    request_id = submit(bot, "sandbox")
    published = {c.params["user_id"] for c in bot.slack.calls_to("views.publish")}
    assert published == {ALICE, BOB, ADMIN}
    assert ids.CANCEL in text_of(bot.slack.home(ALICE)) and request_id in text_of(bot.slack.home(ALICE))
    for approver in (BOB, ADMIN):
        home = bot.slack.home(approver)
        assert "Waiting for you" in text_of(home) and request_id in text_of(home) and ids.APPROVE in text_of(home)
    bot.slack.reset()
    bot.deciding.decide(request_id, BOB, approving=True)
    run_jobs(bot)
    assert {c.params["user_id"] for c in bot.slack.calls_to("views.publish")} == {ALICE, BOB, ADMIN}
    assert "Waiting for you" not in text_of(bot.slack.home(BOB))
    assert ids.END_NOW in text_of(bot.slack.home(ALICE)) and ids.CANCEL not in text_of(bot.slack.home(ALICE))


def test_sync_slack_when_someone_never_opened_the_home_then_not_published_for_them_until_they_do(bot: Bot) -> None:
    bot.store.redis.srem("jitbot:home_viewers", BOB)
    request_id = submit(bot, "sandbox")
    assert {c.params["user_id"] for c in bot.slack.calls_to("views.publish")} == {ALICE, ADMIN}
    bot.messenger.open_home(BOB)  # what the app_home_opened job does
    assert request_id in text_of(bot.slack.home(BOB)) and "Waiting for you" in text_of(bot.slack.home(BOB))
    bot.slack.reset()
    bot.deciding.decide(request_id, ADMIN, approving=True)
    run_jobs(bot)
    assert BOB in {c.params["user_id"] for c in bot.slack.calls_to("views.publish")}
