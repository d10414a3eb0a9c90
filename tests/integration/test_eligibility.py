"""Who may ask, through the real processes: `requesters`, `breakglass_requesters`, guests and other organisations,
identity domains, and a Slack that cannot say who someone is.

Signed requests go to the real web process; the Slack stand-in answers users.info with the flags Slack gives
(guest, another team) and usergroups.users.list with each group's members; the real worker issues and keeps
Slack current. Each refusal is checked three ways: what the person is told, the audit record with its reason,
and that nothing was requested, announced or granted. Every test uses people of its own: jitbot keeps what
Slack said of a person for a few minutes.
"""

import json
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest

from jitbot.core.domain import Status
from jitbot.store.codec import decode
from jitbot.testing.slack_sender import command_body
from jitbot.testing.stack import Stack
from tests.integration.helpers import (
    REQUEST_ID,
    approve,
    audit_after,
    audit_events,
    audit_mark,
    credentials_dm,
    events,
    request_access,
    wait_until,
)

pytestmark = pytest.mark.timeout(120)

CATALOG = """
approver_channel: C0APPROVALS
alert_channel: C0SECURITY
admins: [U0ADMIN]
defaults:
  min_duration: 1s
  max_duration: 1h
resources:
  open-logs:
    description: Staging logs, for every full member
    provider: aws
    role_arn: arn:aws:iam::123456789012:role/jit-open-logs
    approvers: [U0BOB]
  data-lake:
    description: The data team's lake
    provider: aws
    role_arn: arn:aws:iam::123456789012:role/jit-data-lake
    approvers: [U0BOB]
    requesters: [U0ALICE, U0GWEN, S0DATA]
  vault:
    description: Secrets, break-glass for the data team's on-call
    provider: aws
    role_arn: arn:aws:iam::123456789012:role/jit-vault
    approvers: [U0CAROL]
    breakglass: true
    requesters: [S0DATA]
    breakglass_requesters: [S0ONCALL]
  analytics:
    description: BigQuery
    provider: gcp
    resource: projects/acme-analytics
    role: roles/bigquery.dataViewer
    approvers: [U0DAVE]
    identity_domains: [example.com]
"""
ALL = ["open-logs", "data-lake", "vault", "analytics"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with Stack(tmp_path_factory.mktemp("eligibility"), CATALOG, redis_url=os.environ.get("REDIS_URL")) as running:
        running.slack.usergroups = {"S0DATA": ["U0DANA", "U0OLIVER", "U0PAT", "U0RITA"], "S0ONCALL": ["U0OLIVER"]}
        yield running


def command(stack: Stack, user: str, text: str, team_id: str = "T0TEAM") -> str:
    """`/access <text>` as `user`: the ephemeral answer's text."""
    reply = stack.sender.post(command_body(user, text, team_id=team_id))
    assert reply.status == 200, reply.body
    answer: dict[str, Any] = reply.json()
    assert answer["response_type"] == "ephemeral", answer
    return str(answer["text"])


def refusals_since(stack: Stack, mark: bytes) -> list[dict[str, Any]]:
    found = [e for e in audit_after(stack, mark) if e["event"] == "refused"]
    return [{**e, "detail": json.loads(e["detail"])} for e in found]


def assert_refused(stack: Stack, user: str, text: str, told: str, code: str, team_id: str = "T0TEAM") -> None:
    """`user` is refused with `told`, the refusal audited with `code`, and nothing requested or announced."""
    requests_before = set(stack.redis().keys("jitbot:req:*"))
    posts_before = len(stack.slack.calls_to("chat.postMessage"))
    mark = audit_mark(stack)
    answer = command(stack, user, text, team_id)
    assert told in answer, answer
    assert not REQUEST_ID.search(answer)
    [refused] = refusals_since(stack, mark)
    assert refused["actor"] == user and refused["detail"]["refusal"] == code, refused
    assert set(stack.redis().keys("jitbot:req:*")) == requests_before
    time.sleep(0.5)  # an announcement would be a job: give the worker the time it would have taken
    assert len(stack.slack.calls_to("chat.postMessage")) == posts_before


def shown_in(text: str) -> list[str]:
    return [name for name in ALL if f"`{name}`" in text]


def test_request_when_listed_by_id_then_granted_and_approvers_see_the_session(stack: Stack) -> None:
    request_id, posted = request_access(stack, "U0ALICE", "request data-lake 5m load the new partitions")
    shown = json.dumps(posted.params["blocks"])
    assert f"role session `jit-{request_id}-U0ALICE` of `arn:aws:iam::123456789012:role/jit-data-lake`" in shown
    approve(stack, "U0BOB", request_id, posted)
    _, exports = credentials_dm(stack, "U0ALICE", request_id)
    assert exports["AWS_SESSION_TOKEN"]
    assert "users.info" not in {c.method for c in stack.slack.calls if c.params.get("user") == "U0ALICE"}


def test_request_when_group_member_then_asked_and_when_not_listed_then_refused(stack: Stack) -> None:
    request_access(stack, "U0PAT", "request data-lake 5m weekly numbers")
    assert_refused(stack, "U0EVE", "request data-lake 5m curious", "You may not ask for `data-lake`", "not eligible")


def test_request_when_guest_or_other_organisation_then_refused_without_requesters(stack: Stack) -> None:
    stack.slack.people["U0GUS"] = {"is_restricted": True}
    stack.slack.people["U0ULLA"] = {"is_restricted": True, "is_ultra_restricted": True}
    stack.slack.people["U0XAVI"] = {"team_id": "T0PARTNER"}  # Slack Connect: a user of another organisation
    for guest in ("U0GUS", "U0ULLA"):
        assert_refused(stack, guest, "request open-logs 5m look", "Guests of this workspace", "guest")
    assert_refused(stack, "U0XAVI", "request open-logs 5m look", "another organisation", "external organisation")
    # a payload from another organisation's team, whatever users.info says of the id
    assert_refused(
        stack, "U0YUKI", "request open-logs 5m look", "another organisation", "external organisation", "T0PARTNER"
    )
    stack.slack.people["U0BOTTY"] = {"is_bot": True}
    assert_refused(stack, "U0BOTTY", "request open-logs 5m look", "Bots and apps", "bot or app")


def test_request_when_guest_named_by_id_then_may_ask_but_a_group_does_not_let_a_guest_in(stack: Stack) -> None:
    stack.slack.people["U0GWEN"] = {"is_restricted": True}
    request_id, _ = request_access(stack, "U0GWEN", "request data-lake 5m contractor on the lake migration")
    assert events(stack, request_id) == ["requested"]
    stack.slack.people["U0GIL"] = {"is_restricted": True}
    stack.slack.usergroups["S0DATA"] = [*stack.slack.usergroups["S0DATA"], "U0GIL"]
    assert_refused(stack, "U0GIL", "request data-lake 5m me too", "Guests of this workspace", "guest")


def test_breakglass_when_not_in_breakglass_requesters_then_refused_nothing_granted_or_alerted(stack: Stack) -> None:
    alerts_before = [c for c in stack.slack.calls_to("chat.postMessage") if c.params.get("channel") == "C0SECURITY"]
    assert_refused(
        stack, "U0DANA", "breakglass vault 5m INC-9 prod is down", "You may not break glass on `vault`", "not eligible"
    )
    time.sleep(0.5)
    alerts = [c for c in stack.slack.calls_to("chat.postMessage") if c.params.get("channel") == "C0SECURITY"]
    assert alerts == alerts_before

    answer = command(stack, "U0OLIVER", "breakglass vault 5m INC-9 prod is down")  # in both lists
    found = REQUEST_ID.search(answer)
    assert found and "Break-glass" in answer, answer
    credentials_dm(stack, "U0OLIVER", found.group(0))


def test_approve_when_requester_left_the_group_meanwhile_then_denied_and_approver_told(stack: Stack) -> None:
    request_id, posted = request_access(stack, "U0RITA", "request data-lake 5m quarterly close")
    stack.slack.usergroups["S0DATA"] = [u for u in stack.slack.usergroups["S0DATA"] if u != "U0RITA"]
    since = time.monotonic()
    approve(stack, "U0BOB", request_id, posted)

    told = stack.slack.wait_for(
        lambda c: c.method == "chat.postEphemeral" and c.params.get("user") == "U0BOB" and c.at >= since
    )
    assert "Not approved" in told.params["text"] and "may no longer ask for `data-lake`" in told.params["text"]
    stack.slack.wait_for(
        lambda c: (
            c.method == "chat.postMessage" and c.params.get("channel") == "U0RITA" and "denied" in c.params["text"]
        )
    )
    request = decode(stack.redis().get(f"jitbot:req:{request_id}"))
    assert request.status is Status.DENIED and request.decided_by == "jitbot" and not request.grant
    assert events(stack, request_id) == ["requested", "denied", "refused"]  # the click, refused with its reason
    refused = json.loads(audit_events(stack, request_id)[-1]["detail"])
    assert refused["attempted"] == "approve" and refused["refusal"] == "not eligible"
    group_lookups = [c for c in stack.slack.calls_to("usergroups.users.list") if c.at >= since]
    assert group_lookups  # asked afresh at approval, not read from the cache


def test_request_when_email_outside_identity_domains_then_refused_before_any_approver(stack: Stack) -> None:
    stack.slack.emails["U0MAL"] = "mal@gmail.com"
    assert_refused(
        stack,
        "U0MAL",
        "request analytics 5m a dashboard",
        "`analytics` grants only to addresses at example.com; yours is at gmail.com",
        "identity outside allowed domains",
    )
    stack.slack.emails["U0FAY"] = "fay@example.com"
    request_id, posted = request_access(stack, "U0FAY", "request analytics 5m a dashboard")
    assert "`user:fay@example.com`" in json.dumps(posted.params["blocks"])
    assert request_id


def test_form_and_resources_when_asked_then_only_what_the_person_may_ask_for(stack: Stack) -> None:
    assert shown_in(command(stack, "U0EVE", "resources")) == ["open-logs", "analytics"]
    assert shown_in(command(stack, "U0DANA", "resources")) == ALL
    assert shown_in(command(stack, "U0EVE", "help")) == ["open-logs", "analytics"]

    reply = stack.sender.post(body := command_body("U0EVE", "request"))
    assert reply.status == 200 and reply.body == ""
    trigger = dict(p.split("=", 1) for p in body.decode().split("&"))["trigger_id"]
    opened = stack.slack.wait_for(lambda c: c.method == "views.open" and c.params.get("trigger_id") == trigger)
    view = opened.params["view"]
    view = json.loads(view) if isinstance(view, str) else view
    assert [o["value"] for o in view["blocks"][0]["element"]["options"]] == ["open-logs", "analytics"]

    stack.slack.people["U0GARY"] = {"is_restricted": True}
    opens_before = len(stack.slack.calls_to("views.open"))
    for text in ("resources", "request"):
        assert "You may not ask for any resource" in command(stack, "U0GARY", text)
    assert len(stack.slack.calls_to("views.open")) == opens_before


def test_list_all_when_approver_of_one_resource_then_only_that_resource(stack: Stack) -> None:
    stack.slack.emails["U0FRED"] = "fred@example.com"
    logs_id, _ = request_access(stack, "U0FRED", "request open-logs 5m look at the errors")
    analytics_id, _ = request_access(stack, "U0FRED", "request analytics 5m a dashboard")
    shown = command(stack, "U0DAVE", "list all") + json.dumps(
        stack.sender.command("U0DAVE", "list all").json().get("blocks")
    )
    assert analytics_id in shown and logs_id not in shown
    everything = json.dumps(stack.sender.command("U0ADMIN", "list all").json().get("blocks"))
    assert analytics_id in everything and logs_id in everything


def test_request_when_slack_cannot_say_who_asks_then_refused_not_allowed(stack: Stack) -> None:
    stack.slack.fail("users.info", status=429, retry_after=30)
    started = time.monotonic()
    assert_refused(stack, "U0NINA", "request open-logs 5m look", "try again in a minute", "slack unavailable")
    assert time.monotonic() - started < 5  # refused now: Retry-After is not slept out while Slack waits
    request_id, _ = request_access(stack, "U0NINA", "request open-logs 5m look")  # Slack answers again
    wait_until(lambda: events(stack, request_id) == ["requested"], what="the request")
