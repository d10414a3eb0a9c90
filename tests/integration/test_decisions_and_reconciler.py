"""Deny, and revocation that does not depend on the scheduled job alone."""

import pytest

from jitbot.testing.stack import Stack
from tests.integration.helpers import (
    approve,
    audit_events,
    credentials_dm,
    denied,
    deny,
    message_text,
    request_access,
    slack_refs,
    wait_until,
)

pytestmark = pytest.mark.timeout(120)


def test_deny_when_approver_denies_then_message_updated_requester_told_nothing_issued(stack: Stack) -> None:
    request_id, posted = request_access(stack, "U0ALICE", "request prod-db 30s INC-8 deny me")
    deny(stack, "U0BOB", request_id, posted)
    stack.slack.wait_for(
        lambda c: (
            c.params.get("channel") == "U0ALICE"
            and f"`{request_id}`" in c.params.get("text", "")
            and "was denied by <@U0BOB>" in c.params["text"]
        )
    )
    refs = wait_until(
        lambda: slack_refs(stack, request_id).get("approval_ts") and slack_refs(stack, request_id), 10, "ts"
    )
    wait_until(lambda: "Denied by <@U0BOB>" in message_text(stack, "C0APPROVALS", refs["approval_ts"]), 10, "update")
    approve(stack, "U0ADMIN", request_id, posted)  # too late: decided
    late = stack.slack.wait_for(
        lambda c: (
            c.method == "chat.postEphemeral"
            and c.params.get("user") == "U0ADMIN"
            and request_id in c.params.get("text", "")
        )
    )
    assert "denied" in late.params["text"]
    events = [e["event"] for e in audit_events(stack, request_id)]
    assert events == ["requested", "denied", "refused"]
    assert "secret_dm_ts" not in slack_refs(stack, request_id)


def test_revocation_when_no_sweeper_runs_then_the_workers_reconciler_revokes(stack: Stack) -> None:
    stack.stop_process("sweeper")
    try:
        request_id, posted = request_access(stack, "U0ALICE", "request prod-db 2s INC-4 no sweeper")
        approve(stack, "U0BOB", request_id, posted)
        credentials_dm(stack, "U0ALICE", request_id)
        wait_until(lambda: "expired" in [e["event"] for e in audit_events(stack, request_id)], 60, "the reconciler")
    finally:
        stack.start_process("sweeper")
    wait_until(lambda: "scrubbed" in slack_refs(stack, request_id), 20, "the scrubbed DM")
    assert denied(stack, request_id)
