"""Slack's rate limits switched on in the stand-in: jitbot paces itself, urgent messages first, nothing twice, and a
burst on one channel is folded into digests."""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from jitbot.jobs.tasks import waiting_jobs
from jitbot.slack import ids
from jitbot.store.codec import decode
from jitbot.store.keys import request_key
from jitbot.testing.stack import Stack
from tests.integration.helpers import REQUEST_ID, approve, credentials_dm, slack_refs, wait_until

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
    """Request id → how many approval messages Slack accepted for it (a digest announces several at once)."""
    counts: Counter[str] = Counter()
    for call in stack.slack.calls_to("chat.postMessage"):
        if call.answered == 200 and call.params.get("channel") == CHANNEL and "thread_ts" not in call.params:
            counts.update(REQUEST_ID.findall(str(call.params.get("text", ""))))
    return dict(counts)


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
        with ThreadPoolExecutor(8) as pool:  # their jobs queued at once, and the channel's next post a second away
            asked = [first, *pool.map(lambda n: ask(stack, n), range(1, count))]
        backlog = count - len(approval_posts(stack))
        assert backlog > 15, f"only {backlog} requests left to announce: no backlog to jump"

        clicked = time.monotonic()
        approve(stack, "U0BOB", first, posted)
        dm, _ = credentials_dm(stack, "U0USER0000", first, timeout=30)
        assert dm.at - clicked < 3.0, f"the credential DM took {dm.at - clicked:.1f} s behind {backlog} announcements"

        wait_until(lambda: set(approval_posts(stack)) >= set(asked), 120, "every request announced")
        # a duplicate would come from a job still queued, running or waiting for its retry: let them all finish
        wait_until(lambda: waiting_jobs(stack.redis()) == 0, 60, "every job done")
        assert approval_posts(stack) == dict.fromkeys(asked, 1)
        assert [c.method for c in stack.slack.calls if c.answered == 429] == []


def test_burst_when_30_land_at_once_then_digests_announce_each_once_and_a_click_in_one_edits_it_in_place(
    tmp_path: Path,
) -> None:
    count = 30
    with Stack(tmp_path / "stack", CATALOG, workers=2, slack_limits=True) as stack:
        with ThreadPoolExecutor(8) as pool:
            asked = list(pool.map(lambda n: ask(stack, n), range(count)))
        wait_until(lambda: set(approval_posts(stack)) >= set(asked), 60, "every request announced")
        wait_until(lambda: waiting_jobs(stack.redis()) == 0, 60, "every job done")
        assert approval_posts(stack) == dict.fromkeys(asked, 1)
        posts = [c for c in stack.slack.calls_to("chat.postMessage") if c.params.get("channel") == CHANNEL]
        assert len(posts) < count / 3, f"{len(posts)} messages for {count} requests"

        refs = {request_id: slack_refs(stack, request_id) for request_id in asked}
        chosen = next(request_id for request_id in asked if "digest" in refs[request_id])
        ts = refs[chosen]["approval_ts"]
        carried = [request_id for request_id in asked if refs[request_id]["approval_ts"] == ts]
        assert len(carried) > 1 and sorted(buttons_of(stack, ts)) == sorted(carried)

        reply = stack.sender.click("U0BOB", ids.APPROVE, chosen, channel_id=CHANNEL, message_ts=ts)
        assert reply.status == 200, reply.body
        requester = decode(stack.redis().get(request_key(chosen)) or b"{}").requester
        credentials_dm(stack, requester, chosen, timeout=30)
        others = sorted(request_id for request_id in carried if request_id != chosen)
        wait_until(lambda: sorted(buttons_of(stack, ts)) == others, 30, "the digest edited")
        assert "Approved by <@U0BOB>" in str(stack.slack.message(CHANNEL, ts)["blocks"])
        assert approval_posts(stack) == dict.fromkeys(asked, 1)  # edited in place: nothing posted again
        assert [c.method for c in stack.slack.calls if c.answered == 429] == []


def buttons_of(stack: Stack, ts: str) -> list[str]:
    """The requests the message at `ts` in the approvers' channel still offers Approve for, as Slack shows it now."""
    blocks = stack.slack.message(CHANNEL, ts)["blocks"]
    actions = [b for b in blocks if b["type"] == "actions"]
    return [e["value"] for b in actions for e in b["elements"] if e["action_id"] == ids.APPROVE]
