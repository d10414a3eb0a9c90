"""A pending timeout holds at the moment of decision, even with no reconciler running to enforce it."""

import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from jitbot.core.domain import Status
from jitbot.store import Store
from jitbot.testing.stack import Stack
from tests.integration.helpers import approve, events, message_text, request_access, slack_refs, wait_until

pytestmark = pytest.mark.timeout(120)
PENDING_TIMEOUT = 8  # seconds: long enough to post the approval message and stop the worker first
CATALOG = f"""
approver_channel: C0APPROVALS
resources:
  prod-db:
    provider: aws
    role_arn: arn:aws:iam::123456789012:role/jit-prod-db
    approvers: [U0BOB]
    min_duration: 1s
    pending_timeout: {PENDING_TIMEOUT}s
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    home: Path = tmp_path_factory.mktemp("stack")
    with Stack(home, CATALOG, redis_url=os.environ.get("REDIS_URL")) as running:
        yield running


def test_approve_when_a_second_after_the_timeout_and_the_worker_stopped_then_refused_and_timed_out(
    stack: Stack,
) -> None:
    request_id, posted = request_access(stack, "U0ALICE", "request prod-db 30m INC-19 late approval")
    stack.stop_process("worker")  # its reconciler is what times requests out: nothing does now
    store = Store(stack.redis())
    try:
        request = store.requests.get(request_id)
        assert request.status is Status.PENDING and request.decide_by is not None
        time.sleep(max(0.0, (request.decide_by + timedelta(seconds=1) - datetime.now(UTC)).total_seconds()))
        assert store.requests.get(request_id).status is Status.PENDING  # nothing timed it out meanwhile
        approve(stack, "U0BOB", request_id, posted)
        refused = stack.slack.wait_for(
            lambda c: (
                c.method == "chat.postEphemeral" and c.params.get("user") == "U0BOB" and request_id in c.params["text"]
            )
        )
        assert "timed out at" in refused.params["text"] and "can no longer be approved" in refused.params["text"]
        assert store.requests.get(request_id).status is Status.EXPIRED
        assert events(stack, request_id) == ["requested", "refused", "timed out"]
    finally:
        stack.start_process("worker")
    ts = slack_refs(stack, request_id)["approval_ts"]  # the sync the web process queued runs once a worker is back
    wait_until(lambda: "Expired before anyone decided" in message_text(stack, "C0APPROVALS", ts), 30, "the update")
    stack.slack.wait_for(
        lambda c: c.params.get("channel") == "U0ALICE" and "expired before anyone decided" in c.params.get("text", "")
    )
    assert "approved" not in events(stack, request_id)
