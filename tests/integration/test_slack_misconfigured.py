"""Slack misconfigured under the real processes: jitbot not invited to the approvers' channel. The requester is
told at once what an admin must do, the alert channel gets one alert, nothing retries in the background, and
inviting the bot (Slack's member_joined_channel) announces every waiting request once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from rq.registry import ScheduledJobRegistry

from jitbot.jobs.tasks import QUEUE, SERIALIZER
from jitbot.testing.slack_sender import BOT_USER_ID
from jitbot.testing.slack_standin import Call
from jitbot.testing.stack import Stack
from tests.integration.helpers import REQUEST_ID, wait_until

pytestmark = pytest.mark.timeout(120)

APPROVALS, SECURITY = "C0APPROVALS", "C0SECURITY"
CATALOG = f"""
approver_channel: {APPROVALS}
alert_channel: {SECURITY}
admins: [U0ADMIN]
defaults: {{min_duration: 1s, max_duration: 4h}}
resources:
  sandbox:
    provider: fake
    approvers: [U0BOB]
"""


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with Stack(tmp_path / "stack", CATALOG) as running:
        running.slack.channels[APPROVALS] = {"name": "approvals", "is_member": False}
        running.slack.channels[SECURITY] = {"name": "security", "is_member": True}
        yield running


def ask(stack: Stack, user: str) -> str:
    reply = stack.sender.command(user, "request sandbox 1h INC-7 the bot was never invited")
    found = REQUEST_ID.search(reply.json()["text"])
    assert reply.status == 200 and found, reply.body
    return found.group(0)


def posts_to(stack: Stack, channel: str, text: str = "") -> list[Call]:
    return [
        c
        for c in stack.slack.calls_to("chat.postMessage")
        if c.params.get("channel") == channel and text in str(c.params.get("text", ""))
    ]


def test_request_when_bot_not_in_the_approvers_channel_then_told_alerted_once_and_announced_when_invited(
    stack: Stack,
) -> None:
    first, second = ask(stack, "U0ALICE"), ask(stack, "U0CAROL")
    for user, request_id in (("U0ALICE", first), ("U0CAROL", second)):
        told = stack.slack.wait_for(
            lambda c, u=user, r=request_id: (
                c.params.get("channel") == u
                and "is waiting" in str(c.params.get("text"))
                and r in str(c.params.get("text"))
            ),
            timeout=10,
        )
        assert "invite @jitbot to <#C0APPROVALS>" in str(told.params["text"])
    wait_until(lambda: posts_to(stack, SECURITY, "not_in_channel"), 10, "the alert")
    scheduled = ScheduledJobRegistry(QUEUE, connection=stack.redis(), serializer=SERIALIZER)
    assert scheduled.count == 0, "a Slack configuration error was queued for a retry"
    assert len(posts_to(stack, SECURITY, "not_in_channel")) == 1  # one alert for the channel, not one a request

    stack.slack.channels[APPROVALS]["is_member"] = True  # an admin types /invite @jitbot in #approvals
    assert stack.sender.joined(BOT_USER_ID, APPROVALS).status == 200
    for request_id in (first, second):
        wait_until(lambda r=request_id: len(posts_to(stack, APPROVALS, r)) == 2, 15, f"{request_id} announced")
    stack.sender.joined("U0SOMEONE", APPROVALS)  # someone else joining releases nothing, and nothing is left
    stack.sender.joined(BOT_USER_ID, APPROVALS)  # nor does a second invitation
    wait_until(lambda: scheduled.count == 0, 10, "jobs settled")
    assert [len(posts_to(stack, APPROVALS, r)) for r in (first, second)] == [2, 2]  # refused once, posted once
