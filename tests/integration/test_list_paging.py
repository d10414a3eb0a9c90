"""`/access list` and `list all` at the size of a busy incident, through the real processes: 60 pending requests
and 60 live grants, loaded through the store's write path, shown a page at a time within Block Kit's limits, and
paged through with the More button (whose click is allowed exactly as the list itself)."""

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from jitbot.slack import ids
from jitbot.store import Store
from jitbot.testing.grants import load_grants, load_pending
from jitbot.testing.stack import Stack
from tests.integration.helpers import audit_after, audit_mark

pytestmark = pytest.mark.timeout(120)
ALICE, BOB, EVE, GENERAL = "U0ALICE", "U0BOB", "U0EVE", "C0GENERAL"
CATALOG = """
approver_channel: C0APPROVALS
resources:
  logs:
    provider: aws
    role_arn: arn:aws:iam::123456789012:role/jit-logs
    approvers: [U0BOB]
  prod-db:
    provider: aws
    role_arn: arn:aws:iam::123456789012:role/jit-prod-db
    approvers: [U0BOB]
"""
# Block Kit's limits (docs.slack.dev/reference/block-kit/blocks and the section, actions and button references):
# 50 blocks in a message; a section's text at most 3,000 characters; an actions block at most 25 elements; a
# button's text at most 75 characters, its action_id 255, its value 2,000; block_id at most 255, unique.
MESSAGE_BLOCKS = 50


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with Stack(tmp_path_factory.mktemp("list-paging"), CATALOG, redis_url=os.environ.get("REDIS_URL")) as running:
        yield running


@pytest.fixture(scope="module")
def loaded(stack: Stack) -> list[str]:
    """Alice's 60 pending requests and 60 live grants."""
    store, ends = Store(stack.redis()), [datetime.now(UTC) + timedelta(days=1)] * 60
    return load_pending(store, 60, ["prod-db", "logs"], ALICE) + load_grants(store, ends, ["logs"], requester=ALICE)


def block_kit_problems(blocks: list[dict[str, Any]]) -> list[str]:
    """What Slack would refuse in a message's blocks (the limits above); empty when it is valid."""
    block_ids = [b["block_id"] for b in blocks if "block_id" in b]
    problems = [f"{len(blocks)} blocks"] if len(blocks) > MESSAGE_BLOCKS else []
    problems += [f"block_id {i} repeated or too long" for i in block_ids if block_ids.count(i) > 1 or len(i) > 255]
    for block in blocks:
        if block["type"] == "section" and len(block["text"]["text"]) > 3000:
            problems.append(f"section of {len(block['text']['text'])} characters")
        elements = block.get("elements", []) if block["type"] == "actions" else []
        if len(elements) > 25:
            problems.append(f"{len(elements)} elements in {block.get('block_id')}")
        problems += [f"button {e}" for e in elements if len(e["text"]["text"]) > 75 or len(e["value"]) > 2000]
    return problems


def listed(blocks: list[dict[str, Any]]) -> list[str]:
    """The request ids a page shows, in order."""
    return [b["text"]["text"].split("`")[1] for b in blocks[1:] if b["type"] == "section"]


def more_value(blocks: list[dict[str, Any]]) -> str:
    """The value of the page's More button; empty on the last page."""
    buttons = [e for b in blocks if b["type"] == "actions" for e in b["elements"] if e["action_id"] == ids.MORE]
    assert len(buttons) <= 1, buttons
    return str(buttons[0]["value"]) if buttons else ""


def click_more(stack: Stack, user: str, value: str) -> dict[str, Any]:
    """Click More in the list shown in #general; the ephemeral page that answers it (chat.postEphemeral)."""
    before = len(stack.slack.calls_to("chat.postEphemeral"))
    reply = stack.sender.click(user, ids.MORE, value, channel_id=GENERAL, message_ts="1.000001")
    assert reply.status == 200, reply.body
    stack.slack.wait_for(lambda c: len(stack.slack.calls_to("chat.postEphemeral")) > before, 15)
    call = stack.slack.calls_to("chat.postEphemeral")[before]
    assert call.params["user"] == user and call.params["channel"] == GENERAL and call.answered == 200
    return call.params


def page_through(stack: Stack, user: str, text: str) -> list[dict[str, Any]]:
    """Type `/access <text>` and follow the More buttons to the end: every page, as Slack received it."""
    reply = stack.sender.command(user, text)
    assert reply.status == 200, reply.body
    pages = [reply.json()]
    while value := more_value(pages[-1]["blocks"]):
        pages.append(click_more(stack, user, value))
    return pages


@pytest.mark.parametrize(("user", "text", "whose"), [(ALICE, "list", "Your"), (BOB, "list all", "Everyone's")])
def test_list_when_60_pending_and_60_active_then_valid_pages_through_more_with_totals(
    stack: Stack, loaded: list[str], user: str, text: str, whose: str
) -> None:
    pages = page_through(stack, user, text)
    assert [block_kit_problems(page["blocks"]) for page in pages] == [[]] * 6
    assert (
        pages[0]["text"]
        == f"{whose} pending requests and active grants: showing 1\u201320 of 120: 60 pending, 60 active"
    )
    assert "showing 101\u2013120 of 120: 60 pending, 60 active" in pages[-1]["text"]
    shown = [request_id for page in pages for request_id in listed(page["blocks"])]
    assert sorted(shown) == sorted(loaded)  # each once (loaded in the same instant, they tie in the order)
    values = [more_value(page["blocks"]) for page in pages]
    assert values == [f"{'all' if user == BOB else 'mine'}:{n}" for n in (20, 40, 60, 80, 100)] + [""]


def test_more_when_clicked_by_someone_who_may_not_list_all_then_refused_and_audited(
    stack: Stack, loaded: list[str]
) -> None:
    mark = audit_mark(stack)
    refused = click_more(stack, EVE, "all:20")
    assert refused["text"] == "`/access list all` is for approvers and admins; `/access list` shows your own."
    assert "blocks" not in refused
    forged = click_more(stack, ALICE, "all:20:r-000000")
    assert forged["text"] == "`all:20:r-000000` is not a page of the list; `/access list` shows it from the start."
    refusals = [(e["actor"], e["event"]) for e in audit_after(stack, mark)]
    assert refusals == [(EVE, "refused"), (ALICE, "refused")]
    own = click_more(stack, EVE, "mine:20")  # Eve's own list is hers to see: empty, not Alice's
    assert own["text"] == "Your pending requests and active grants: none."
