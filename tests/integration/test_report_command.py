"""`/access report`: an admin gets the review as files in their DM; anyone else is told why not."""

import json

import pytest

from jitbot.testing.stack import Stack
from tests.integration.helpers import audit_events

pytestmark = pytest.mark.timeout(120)


def test_report_command_when_admin_then_three_files_in_their_dm(stack: Stack) -> None:
    reply = stack.sender.command("U0ADMIN", "report 1d")
    assert reply.status == 200 and "Building the access review of the last 1d" in reply.json()["text"]
    done = stack.slack.wait_for_call("files.completeUploadExternal", timeout=60)
    assert done.params["channel_id"] == "D0ADMIN" and "Access review of the last 1d" in done.params["initial_comment"]
    files = done.params["files"]
    titles = [f["title"] for f in (json.loads(files) if isinstance(files, str) else files)]
    assert titles == ["report.md", "report.csv", "duration-trend.png"]
    uploaded = list(stack.slack.uploads.values())[-3:]
    assert uploaded[0].startswith(b"# Access review") and uploaded[2][:8] == b"\x89PNG\r\n\x1a\n"


def test_report_command_when_not_admin_then_refused_and_audited(stack: Stack) -> None:
    reply = stack.sender.command("U0ALICE", "report 1d")
    assert reply.json()["text"] == "Only jitbot's admins can ask for the access review."
    refused = [e for e in audit_events(stack, "-") if e["actor"] == "U0ALICE" and e["event"] == "refused"]
    assert any("admins" in e["detail"] for e in refused)
