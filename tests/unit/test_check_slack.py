"""`jitbot check --live`, Slack's part, against the Slack stand-in (a real loopback HTTP server): the token, its
scopes, and the channels, people and user groups the catalog names, each problem named with its fix."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from jitbot.core.catalog import parse_catalog
from jitbot.ops.check import who_may
from jitbot.slack.notify import web_client
from jitbot.slack.workspace import SCOPE_FEATURES, State, Workspace, check_workspace, needed_scopes, render
from jitbot.testing.slack_standin import SlackStandIn

TOKEN = "xoxb-1111-2222-do-not-print-me"
CATALOG = parse_catalog("""
approver_channel: C0APPROVALS
alert_channel: C0SECURITY
admins: [U0ADMIN]
resources:
  prod-db:
    provider: aws
    role_arn: arn:aws:iam::123456789012:role/jit-prod-db
    approvers: [U0BOB, S0DBAS]
    channel: C0DBA
    escalate_after: 30m
    escalate_to: [U0CAROL, C0ONCALL]
  analytics:
    provider: gcp
    resource: projects/acme-analytics
    role: roles/bigquery.dataViewer
    approvers: [U0DAVE]
    requesters: [U0ALICE, S0DATA]
""")
CHANNELS = {"C0APPROVALS": "approvals", "C0SECURITY": "security", "C0DBA": "dba", "C0ONCALL": "oncall"}


@pytest.fixture
def slack() -> Iterator[SlackStandIn]:
    """A workspace ready for CATALOG: every channel there with the bot in it, every group known, every scope."""
    with SlackStandIn() as standin:
        standin.channels = {channel: {"name": name} for channel, name in CHANNELS.items()}
        standin.usergroups = {"S0DBAS": ["U0DBA"], "S0DATA": ["U0DANA", "U0PAT"]}
        yield standin


def ask(slack: SlackStandIn) -> Workspace:
    return check_workspace(web_client(TOKEN, slack.url), CATALOG)


def finding(workspace: Workspace, subject: str) -> tuple[State, str]:
    [found] = [(f.state, f.text) for f in workspace.findings if f.subject == subject]
    return found


def test_check_workspace_when_all_ready_then_every_finding_ok(slack: SlackStandIn) -> None:
    workspace = ask(slack)
    assert workspace.failed == [], render(workspace)
    assert finding(workspace, "token") == (State.OK, "bot @jitbot (U0JITBOT) in Test (T0TEAM)")
    assert finding(workspace, "scopes")[1].startswith(f"all {len(SCOPE_FEATURES)} needed")
    assert finding(workspace, "channel C0DBA") == (State.OK, "#dba (named in resources.prod-db.channel)")
    assert finding(workspace, "channel C0ONCALL")[1] == "#oncall (named in resources.prod-db.escalate_to)"
    assert finding(workspace, "users") == (State.OK, "5 of 5 known")  # admins, approvers, requesters, escalate_to
    assert finding(workspace, "user groups") == (State.OK, "2 of 2 known")
    assert "FAILED" not in render(workspace)


def test_check_workspace_when_bot_not_in_channel_then_failed_with_the_invite(slack: SlackStandIn) -> None:
    slack.channels["C0DBA"]["is_member"] = False
    workspace = ask(slack)
    assert workspace.failed == ["channel C0DBA"]
    assert finding(workspace, "channel C0DBA") == (
        State.FAILED,
        "@jitbot is not in #dba: invite @jitbot to #dba (named in resources.prod-db.channel)",
    )


@pytest.mark.parametrize(
    ("described", "scope", "expected"),
    [
        ({"is_archived": True}, None, (State.FAILED, "#dba is archived: unarchive it, or name another channel")),
        ({"is_member": False}, "chat:write.public", (State.OK, "#dba (named in")),  # posts without joining
        ({"is_member": False, "is_private": True}, "chat:write.public", (State.FAILED, "Slack knows no such")),
    ],
    ids=["archived", "public, chat:write.public", "private, bot not in it"],
)
def test_check_workspace_when_channel_is_so_then_said_so(
    slack: SlackStandIn, described: dict[str, Any], scope: str | None, expected: tuple[State, str]
) -> None:
    slack.channels["C0DBA"] |= described
    slack.scopes |= {scope} if scope else set()
    state, text = finding(ask(slack), "channel C0DBA")
    assert (state, text[: len(expected[1])]) == expected, text


def test_check_workspace_when_channel_unknown_then_failed_naming_it_and_where(slack: SlackStandIn) -> None:
    del slack.channels["C0SECURITY"]
    workspace = ask(slack)
    assert workspace.failed == ["channel C0SECURITY"]
    state, text = finding(workspace, "channel C0SECURITY")
    assert state is State.FAILED
    assert text == (
        "Slack knows no such channel (named in alert_channel): fix the id or, if it is private, invite @jitbot to it"
    )


def test_check_workspace_when_user_and_group_unknown_then_each_named_where_the_catalog_names_it(
    slack: SlackStandIn,
) -> None:
    slack.people["U0ALICE"] = None  # users.info: user_not_found
    slack.people["U0CAROL"] = {"deleted": True}
    del slack.usergroups["S0DATA"]
    slack.usergroups["S0GONE"] = []  # another group, unrelated
    workspace = ask(slack)
    assert workspace.failed == ["user U0CAROL", "user U0ALICE", "user group S0DATA"]  # in the catalog's order
    assert finding(workspace, "user U0ALICE")[1] == (
        "unknown to Slack (user_not_found): fix resources.analytics.requesters"
    )
    assert finding(workspace, "user U0CAROL")[1] == "deactivated: remove from resources.prod-db.escalate_to"
    assert finding(workspace, "users") == (State.OK, "3 of 5 known")
    assert finding(workspace, "user group S0DATA")[1] == "unknown to Slack: fix resources.analytics.requesters"


def test_check_workspace_when_group_disabled_then_failed(slack: SlackStandIn) -> None:
    slack.disabled_usergroups.add("S0DBAS")
    assert finding(ask(slack), "user group S0DBAS") == (State.FAILED, "disabled: fix resources.prod-db.approvers")


def test_check_workspace_when_scopes_missing_then_each_named_with_its_feature(slack: SlackStandIn) -> None:
    slack.scopes -= {"files:write", "usergroups:read", "users:read"}
    workspace = ask(slack)
    assert workspace.failed == ["scope usergroups:read", "scope files:write", "scope users:read"]
    state, text = finding(workspace, "scope files:write")
    assert state is State.FAILED
    assert text.startswith("missing; needed for /access report: the access review's files (admins U0ADMIN): add it")
    assert "(S0DATA, S0DBAS)" in finding(workspace, "scope usergroups:read")[1]
    assert finding(workspace, "users") == (State.NOT_CHECKED, "the token lacks users:read")
    slack.channels["C0DBA"]["is_private"] = True
    slack.scopes.remove("groups:read")
    assert finding(ask(slack), "channel C0DBA") == (State.NOT_CHECKED, "the token lacks groups:read")
    assert finding(workspace, "user groups") == (State.NOT_CHECKED, "the token lacks usergroups:read")


def test_needed_scopes_when_catalog_names_no_group_admin_or_email_cloud_then_those_scopes_not_needed() -> None:
    plain = parse_catalog(
        "approver_channel: C0A\nresources:\n  logs:\n    provider: fake\n    approvers: [U0BOB]\n",
    )
    assert set(SCOPE_FEATURES) - set(needed_scopes(plain)) == {
        "usergroups:read",
        "users:read.email",
        "im:write",
        "files:write",
    }
    assert needed_scopes(CATALOG)["users:read.email"].endswith("(resources analytics)")


def test_scope_features_when_compared_with_manifest_then_the_same_bot_scopes() -> None:
    manifest = yaml.safe_load((Path(__file__).resolve().parents[2] / "manifest.yml").read_text())
    assert manifest["oauth_config"]["scopes"]["bot"] == list(SCOPE_FEATURES)


@pytest.mark.parametrize("code", ["invalid_auth", "not_authed", "account_inactive", "token_revoked"])
def test_check_workspace_when_token_refused_then_fails_fast_and_the_rest_not_checked(
    slack: SlackStandIn, code: str
) -> None:
    slack.fail("auth.test", status=200, error=code)
    workspace = ask(slack)
    assert [c.method for c in slack.calls] == ["auth.test"]
    assert workspace.failed == ["token"]
    _, text = finding(workspace, "token")
    assert text.startswith(f"Slack refused it ({code}): ") and "SLACK_BOT_TOKEN" in text
    assert [(f.subject, f.state) for f in workspace.findings[1:]] == [
        (subject, State.NOT_CHECKED) for subject in ("scopes", "channels", "users", "user groups")
    ]
    assert TOKEN not in render(workspace) and "2222" not in render(workspace)


def test_check_workspace_when_slack_unreachable_then_token_failed_naming_no_request() -> None:
    with SlackStandIn() as gone:
        url = gone.url  # a port nothing listens on once the stand-in stops
    workspace = check_workspace(web_client(TOKEN, url), CATALOG)
    assert finding(workspace, "token") == (State.FAILED, "auth.test: no answer from Slack (URLError)")


def test_who_may_when_live_then_groups_expanded_and_unknown_ids_named(slack: SlackStandIn) -> None:
    slack.people["U0ALICE"] = None
    rows = {row.resource: row for row in who_may(CATALOG, ask(slack).name)}
    assert rows["analytics"].request == "U0ALICE (UNKNOWN to Slack: user_not_found), S0DATA (U0DANA, U0PAT)"
    assert rows["prod-db"].approve == "U0BOB (known), S0DBAS (U0DBA), admins"
