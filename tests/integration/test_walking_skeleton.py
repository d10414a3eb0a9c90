"""The first whole path, through the real processes: request → approval → STS credentials by DM → expiry."""

import json
import threading

import pytest

from jitbot.slack import ids
from jitbot.testing.stack import Stack
from tests.integration.helpers import (
    approve,
    audit_events,
    click,
    credentials_dm,
    denied,
    message_text,
    request_access,
    slack_refs,
    wait_until,
)

pytestmark = pytest.mark.timeout(120)


def test_request_approve_grant_expire_when_happy_path_then_access_issued_and_cut(stack: Stack) -> None:
    request_id, posted = request_access(stack, "U0ALICE", "request prod-db 4s rotating keys for INC-123")
    blocks = posted.params["blocks"]
    buttons = blocks[-1]["elements"]
    assert posted.params["channel"] == "C0APPROVALS"
    assert [b["text"]["text"] for b in buttons] == ["Approve", "Deny"] and {b["value"] for b in buttons} == {request_id}
    assert "rotating keys for INC-123" in json.dumps(blocks)

    click(stack, "U0ALICE", ids.APPROVE, request_id, posted)  # her own request
    click(stack, "U0EVE", ids.APPROVE, request_id, posted)  # not an approver
    own = stack.slack.wait_for_call("chat.postEphemeral", user="U0ALICE")
    outsider = stack.slack.wait_for_call("chat.postEphemeral", user="U0EVE")
    assert "your own request" in own.params["text"] and "Only the approvers of `prod-db`" in outsider.params["text"]

    approve(stack, "U0DBA", request_id, posted)  # a member of the approver user group S0DBAS
    _, exported = credentials_dm(stack, "U0ALICE", request_id)
    assert set(exported) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION"}
    sts = stack.aws(
        "sts",
        aws_access_key_id=exported["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=exported["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=exported["AWS_SESSION_TOKEN"],
    )
    assert sts.get_caller_identity()["Arn"].endswith(f"assumed-role/jit-prod-db/jit-{request_id}-U0ALICE")

    refs = wait_until(
        lambda: "scrubbed" in slack_refs(stack, request_id) and slack_refs(stack, request_id), 40, "scrub"
    )
    scrubbed = message_text(stack, refs["secret_dm_channel"], refs["secret_dm_ts"])
    assert exported["AWS_SECRET_ACCESS_KEY"] not in scrubbed and "credentials were removed" in scrubbed

    assert denied(stack, request_id)
    document = stack.aws("iam").get_role_policy(RoleName="jit-prod-db", PolicyName="jitbot-deny")["PolicyDocument"]
    statement = (document if isinstance(document, dict) else json.loads(document))["Statement"][0]
    assert statement["Effect"] == "Deny"
    assert statement["Condition"] == {"StringLike": {"aws:userid": [f"*:jit-{request_id}-*"]}}

    approval = wait_until(
        lambda: (
            "expired, access removed" in message_text(stack, "C0APPROVALS", refs["approval_ts"])
            and message_text(stack, "C0APPROVALS", refs["approval_ts"])
        ),
        20,
        "approval message update",
    )
    assert '"actions"' not in approval and "Approved by <@U0DBA>; expired" in approval
    stack.slack.wait_for(lambda c: c.params.get("channel") == "U0ALICE" and "has expired" in c.params.get("text", ""))
    events = [e["event"] for e in audit_events(stack, request_id)]
    assert events == ["requested", "refused", "refused", "approved", "granted", "expired"]


def test_approve_when_clicked_ten_times_by_two_approvers_at_once_then_one_grant(stack: Stack) -> None:
    request_id, posted = request_access(stack, "U0ALICE", "request prod-db 30s INC-7 race")
    threads = [
        threading.Thread(target=approve, args=(stack, user, request_id, posted)) for user in ["U0BOB", "U0ADMIN"] * 5
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    credentials_dm(stack, "U0ALICE", request_id)
    wait_until(
        lambda: [e for e in audit_events(stack, request_id) if e["event"] == "refused"].__len__() == 9, 20, "refusals"
    )
    events = [e["event"] for e in audit_events(stack, request_id)]
    assert events.count("approved") == 1 and events.count("granted") == 1 and events.count("refused") == 9
    grants = [
        c
        for c in stack.slack.calls_to("chat.postMessage")
        if request_id in c.params.get("text", "") and "granted" in c.params["text"]
    ]
    assert len(grants) == 1


def test_approvals_when_two_required_then_count_shown_and_second_approver_grants(stack: Stack) -> None:
    request_id, posted = request_access(stack, "U0ALICE", "request two-keys 30s INC-9")
    approve(stack, "U0BOB", request_id, posted)
    wait_until(lambda: "endorsed" in [e["event"] for e in audit_events(stack, request_id)], 10, "first approval")
    refs = wait_until(
        lambda: slack_refs(stack, request_id).get("approval_ts") and slack_refs(stack, request_id), 10, "ts"
    )
    wait_until(lambda: "1 of 2" in message_text(stack, "C0APPROVALS", refs["approval_ts"]), 10, "count shown")
    approve(stack, "U0BOB", request_id, posted)  # the same approver again does not count twice
    stack.slack.wait_for(lambda c: c.method == "chat.postEphemeral" and "already approved" in c.params.get("text", ""))
    approve(stack, "U0CAROL", request_id, posted)
    credentials_dm(stack, "U0ALICE", request_id)


def test_auto_approve_when_resource_allows_then_granted_without_a_click_and_announced(stack: Stack) -> None:
    request_id, _ = request_access(stack, "U0ALICE", "request staging-logs 15m checking a deploy")
    credentials_dm(stack, "U0ALICE", request_id)
    refs = wait_until(
        lambda: slack_refs(stack, request_id).get("approval_ts") and slack_refs(stack, request_id), 10, "ts"
    )
    wait_until(lambda: "auto-approve" in message_text(stack, "C0APPROVALS", refs["approval_ts"]), 10, "announced")
    assert [e["actor"] for e in audit_events(stack, request_id) if e["event"] == "approved"] == ["jitbot"]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("", "*Usage*"),
        ("help", "*Usage*"),
        ("frobnicate", "I don't know `frobnicate`"),
        ("request prod-db 2h", "Missing a reason"),
        ("request prod-db 5h INC-1", "longer than the maximum for `prod-db`, 1h"),
        ("request nope 1h INC-1", "There is no resource `nope`"),
        ("request prod-db soon INC-1", "not a duration"),
    ],
)
def test_command_when_malformed_then_ephemeral_explanation_and_nothing_created(
    stack: Stack, text: str, needle: str
) -> None:
    before = stack.redis().keys("jitbot:req:*")
    reply = stack.sender.command("U0ALICE", text)
    assert reply.status == 200 and reply.json()["response_type"] == "ephemeral"
    assert needle in reply.json()["text"]
    assert stack.redis().keys("jitbot:req:*") == before
