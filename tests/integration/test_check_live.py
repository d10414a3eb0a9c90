"""`jitbot check --live`, the console command, against the Slack stand-in: what is not ready is named with its fix,
the exit status says so, and the token is printed nowhere."""

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from jitbot.slack.workspace import REINSTALL
from jitbot.testing.slack_standin import SlackStandIn

JITBOT = str(Path(sys.executable).parent / "jitbot")
TOKEN = "xoxb-4242-4242-never-printed"
CATALOG = """
approver_channel: C0APPROVALS
alert_channel: C0SECURITY
admins: [U0ADMIN]
resources:
  lab:
    provider: fake
    approvers: [U0BOB, S0DBAS]
    channel: C0DBA
    requesters: [U0ALICE, S0NOPE]
    breakglass: true
"""
pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def slack() -> Iterator[SlackStandIn]:
    with SlackStandIn() as standin:
        standin.channels = {"C0APPROVALS": {"name": "approvals"}, "C0SECURITY": {"name": "security"}}
        standin.channels["C0DBA"] = {"name": "dba", "is_member": False}
        standin.usergroups = {"S0DBAS": ["U0DBA"]}
        standin.scopes.remove("files:write")
        yield standin


def check_live(folder: Path, slack: SlackStandIn) -> subprocess.CompletedProcess[str]:
    (folder / "jitbot.yml").write_text(CATALOG)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "REDIS_URL", "JITBOT_"))}
    env = base | {"SLACK_API_URL": slack.url, "SLACK_BOT_TOKEN": TOKEN}
    return subprocess.run([JITBOT, "check", "--live"], cwd=folder, env=env, capture_output=True, text=True, timeout=45)


def test_check_live_when_slack_not_ready_then_each_problem_named_and_exit_1(
    tmp_path: Path, slack: SlackStandIn
) -> None:
    done = check_live(tmp_path, slack)
    assert done.returncode == 1, done.stdout + done.stderr
    lines = [" ".join(line.split()) for line in done.stdout.splitlines()]  # the columns' padding aside
    assert f"Slack ({slack.url})" in lines
    assert (
        "channel C0DBA FAILED: @jitbot is not in #dba: invite @jitbot to #dba (named in resources.lab.channel)" in lines
    )
    assert "user group S0NOPE FAILED: unknown to Slack: fix resources.lab.requesters" in lines
    assert (
        "scope files:write FAILED: missing; needed for /access report: the access review's files (admins U0ADMIN):"
        " add it to the app's bot scopes (manifest.yml, or OAuth & Permissions) and reinstall the app"
    ) in lines
    assert "channel C0APPROVALS ok: #approvals (named in approver_channel)" in lines
    assert "request: U0ALICE (known), S0NOPE (UNKNOWN to Slack)" in lines  # who may, named from the same answers
    assert done.stderr.splitlines() == ["Slack is not ready: scope files:write, channel C0DBA, user group S0NOPE"]
    assert TOKEN not in done.stdout + done.stderr and "4242" not in done.stdout + done.stderr
    assert not (tmp_path / ".jitbot").exists()  # check reads no store, so starts none


def test_check_live_when_token_refused_then_exit_1_with_the_fix_and_nothing_else_asked(
    tmp_path: Path, slack: SlackStandIn
) -> None:
    slack.fail("auth.test", status=200, error="token_revoked")
    done = check_live(tmp_path, slack)
    assert done.returncode == 1
    lines = [" ".join(line.split()) for line in done.stdout.splitlines()]
    assert (
        f"token FAILED: Slack refused it (token_revoked): the token was revoked or the app removed: {REINSTALL}"
        in lines
    )
    assert "channels not checked: the token was refused" in lines
    assert [c.method for c in slack.calls] == ["auth.test"]
    assert TOKEN not in done.stdout + done.stderr
