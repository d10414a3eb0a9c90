"""Slack's rate limits switched on in the stand-in: jitbot paces itself, urgent messages first, nothing twice."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from jitbot.tasks import waiting_jobs
from jitbot.testing.stack import Stack
from tests.integration.helpers import REQUEST_ID, approve, credentials_dm, wait_until

pytestmark = pytest.mark.timeout(240)

CATALOG = """
approver_channel: C0APPROVALS
admins: [U0ADMIN]
defaults:
  min_duration: 1s
  max_duration: 1h
resources:
  fake-db:
    provider: fake
    approvers: [U0BOB]
"""
CHANNEL = "C0APPROVALS"


def approval_posts(stack: Stack) -> dict[str, int]:
    """Request id → how many approval messages Slack accepted for it."""
    counts: dict[str, int] = {}
    for call in stack.slack.calls_to("chat.postMessage"):
        found = REQUEST_ID.search(str(call.params.get("text", "")))
        if call.answered == 200 and call.params.get("channel") == CHANNEL and found:
            counts[found.group(0)] = counts.get(found.group(0), 0) + 1
    return counts


def ask(stack: Stack, n: int) -> str:
    """The n-th request, from one of five people: what users.info says of each is kept for minutes (a burst from
    hundreds of people meets users.info's own limit in the web process, which fails fast: bench/burst.py)."""
    reply = stack.sender.command(f"U0USER{n % 5:04d}", f"request fake-db 30m pacing {n}")
    found = REQUEST_ID.search(reply.body)
    assert reply.status == 200 and found, reply.body
    return found.group(0)


def test_burst_when_limits_on_then_credential_dm_jumps_the_backlog_and_every_request_announced_once(
    tmp_path: Path,
) -> None:
    count = 30
    with Stack(tmp_path / "stack", CATALOG, workers=2, slack_limits=True) as stack:
        first = ask(stack, 0)
        posted = stack.slack.wait_for(lambda c: c.answered == 200 and first in str(c.params.get("text", "")), 10)
        with ThreadPoolExecutor(8) as pool:  # ~30 s of approval messages at one a second, queued at once
            asked = [first, *pool.map(lambda n: ask(stack, n), range(1, count))]
        backlog = count - len(approval_posts(stack))
        assert backlog > 15, f"only {backlog} approval messages left to post: no backlog to jump"

        clicked = time.monotonic()
        approve(stack, "U0BOB", first, posted)
        dm, _ = credentials_dm(stack, "U0USER0000", first, timeout=30)
        assert dm.at - clicked < 3.0, f"the credential DM took {dm.at - clicked:.1f} s behind {backlog} announcements"
        assert len(approval_posts(stack)) < count, "the DM waited for the whole backlog"

        wait_until(lambda: set(approval_posts(stack)) >= set(asked), 120, "every request announced")
        # a duplicate would come from a job still queued, running or waiting for its retry: let them all finish
        wait_until(lambda: waiting_jobs(stack.redis()) == 0, 60, "every job done")
        assert approval_posts(stack) == dict.fromkeys(asked, 1)
        assert [c.method for c in stack.slack.calls if c.answered == 429] == []
