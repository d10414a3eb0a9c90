"""A burst on one approver channel: more than FOLD_OVER requests waiting are announced in one digest, each request
exactly once (two workers racing, a post failing), and the digest is edited in place as its requests change.

Jobs run as in test_policies_and_timers.py: by calling what each job wraps, under a clock the test moves.
"""

from __future__ import annotations

import queue
import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from jitbot.core.commands import RequestAccess
from jitbot.core.domain import Status
from jitbot.slack import ids
from jitbot.slack.announcer import FOLD_OVER
from jitbot.slack.approval import DIGEST_SIZE
from jitbot.slack.notify import NotifyError
from jitbot.testing.slack_limits import MESSAGE_BLOCKS
from jitbot.testing.slack_standin import Call
from tests.unit.test_lifecycle import Bot, dms, make_bot
from tests.unit.test_policies_and_timers import ALICE, BOB, CATALOG, OLIVE, at, buttons, message, run_jobs, text_of

APPROVALS = "C0APPROVALS"
REQUEST_ID = re.compile(r"r-[a-z0-9]{6}")


@pytest.fixture
def bot() -> Iterator[Bot]:
    with make_bot(CATALOG) as made:
        made.slack.usergroups = {"S0ONCALL": [OLIVE]}
        yield made


def ask(bot: Bot, count: int, resource: str = "sandbox") -> list[str]:
    """`count` requests made one after the other, none announced yet (their jobs are queued)."""
    made = []
    for n in range(count):
        request, _ = bot.requesting.submit(ALICE, RequestAccess(resource, timedelta(hours=1), f"INC-{n} burst"))
        bot.clock.advance(timedelta(milliseconds=10))
        made.append(request.id)
    return made


def approval_posts(bot: Bot) -> list[Call]:
    """The approval messages (single or digest) Slack accepted in the approvers' channel; not thread replies."""
    return [
        c
        for c in bot.slack.calls_to("chat.postMessage")
        if c.answered == 200 and c.params.get("channel") == APPROVALS and "thread_ts" not in c.params
    ]


def carried(call: Call) -> list[str]:
    return REQUEST_ID.findall(str(call.params.get("text", "")))


def edits(bot: Bot, request_id: str) -> list[Call]:
    """chat.update calls to the message that announced `request_id`."""
    ts = bot.store.slack.slack_refs(request_id)["approval_ts"]
    return [c for c in bot.slack.calls_to("chat.update") if c.params.get("ts") == ts]


def decided_by_buttons(view: dict[str, Any]) -> list[str]:
    """The request ids the message's Approve buttons name."""
    actions = [b for b in view["blocks"] if b["type"] == "actions"]
    return [e["value"] for b in actions for e in b["elements"] if e["action_id"] == ids.APPROVE]


@pytest.mark.parametrize(("count", "messages"), [(FOLD_OVER, FOLD_OVER), (FOLD_OVER + 1, 1), (6, 1)])
def test_burst_when_more_than_fold_over_wait_then_one_digest_else_a_message_each(
    bot: Bot, count: int, messages: int
) -> None:
    asked = ask(bot, count)
    run_jobs(bot)
    posts = approval_posts(bot)
    assert len(posts) == messages
    assert Counter(i for post in posts for i in carried(post)) == dict.fromkeys(asked, 1)
    assert bot.slack.calls_to("chat.update") == []  # the folded requests' own jobs found them shown as they are
    if messages == 1:
        [digest] = posts
        assert decided_by_buttons(digest.params) == asked  # in the order asked, each with its own buttons
        actions = next(b for b in digest.params["blocks"] if b["type"] == "actions")
        assert [(e["action_id"], e["value"]) for e in actions["elements"]] == [
            (ids.APPROVE, asked[0]),
            (ids.DENY, asked[0]),
        ]
        refs = [bot.store.slack.slack_refs(request_id) for request_id in asked]
        assert {(r["approval_channel"], r["approval_ts"], r["digest"]) for r in refs} == {
            (APPROVALS, refs[0]["approval_ts"], "1")
        }
    else:
        assert all("digest" not in bot.store.slack.slack_refs(request_id) for request_id in asked)


def test_burst_when_more_wait_than_a_message_holds_then_the_oldest_fill_one_and_the_rest_go_in_the_next(
    bot: Bot,
) -> None:
    asked = ask(bot, DIGEST_SIZE + 6)
    run_jobs(bot)
    first, second = approval_posts(bot)  # the stand-in refuses a message over 50 blocks, as Slack does
    assert carried(first) == asked[:DIGEST_SIZE] and carried(second) == asked[DIGEST_SIZE:]
    assert len(first.params["blocks"]) == 1 + 2 * DIGEST_SIZE <= MESSAGE_BLOCKS


def test_digest_when_its_requests_change_then_one_edit_in_place_shows_every_change(bot: Bot) -> None:
    asked = ask(bot, 5)
    run_jobs(bot)
    bot.deciding.decide(asked[1], BOB, approving=True)
    bot.commands.cancel(ALICE, asked[2])
    run_jobs(bot)  # the issue job, then three syncs (approved, cancelled, granted): the first edit shows them all

    assert len(approval_posts(bot)) == 1 and len(edits(bot, asked[1])) == 1
    shown = message(bot, asked[1])
    assert message(bot, asked[2]) == shown  # one message for both
    assert decided_by_buttons(shown) == [asked[0], asked[3], asked[4]]
    assert f"Approved by <@{BOB}>; access granted until" in text_of(shown)
    assert "Cancelled by the requester" in text_of(shown)
    assert any(f"granted (`{asked[1]}`)" in str(c.params.get("text")) for c in dms(bot))

    bot.lifecycle.sync_slack(asked[1])  # a repeated job: the digest already shows it
    bot.lifecycle.sync_slack(asked[0])  # a request unchanged since the post
    assert len(edits(bot, asked[1])) == 1


def test_digest_when_two_workers_announce_at_once_then_each_request_in_exactly_one_message(
    bot: Bot, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked = ask(bot, 12)
    for job in bot.tasks.queue.get_jobs():
        job.delete()
    client = bot.messenger.notifier.client
    post = client.chat_postMessage

    def slow_post(**params: Any) -> Any:  # Slack takes its time: the other worker runs meanwhile
        time.sleep(0.05)
        return post(**params)

    monkeypatch.setattr(client, "chat_postMessage", slow_post)
    jobs: queue.Queue[str] = queue.Queue()
    for request_id in asked:
        jobs.put(request_id)
    running, overlapped = [0], [False]
    guard = threading.Lock()

    def worker() -> None:  # RQ's: one job at a time; one that fails is retried
        while True:
            try:
                request_id = jobs.get_nowait()
            except queue.Empty:
                return
            with guard:
                running[0] += 1
                overlapped[0] = overlapped[0] or running[0] > 1
            try:
                bot.lifecycle.sync_slack(request_id)
            except NotifyError:
                jobs.put(request_id)
            finally:
                with guard:
                    running[0] -= 1

    workers = [threading.Thread(target=worker) for _ in range(2)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(timeout=30)

    posts = approval_posts(bot)
    assert Counter(i for p in posts for i in carried(p)) == dict.fromkeys(asked, 1)
    assert len(posts) < len(asked) and overlapped[0]  # the workers did run at once
    assert all("approval_ts" in bot.store.slack.slack_refs(request_id) for request_id in asked)


def test_digest_when_its_post_fails_then_its_requests_stay_waiting_and_a_retry_announces_each_once(bot: Bot) -> None:
    asked = ask(bot, 5)
    bot.slack.fail("chat.postMessage", status=200, error="fatal_error")
    with pytest.raises(NotifyError, match="fatal_error"):
        bot.lifecycle.sync_slack(asked[0])
    assert all("approval_ts" not in bot.store.slack.slack_refs(request_id) for request_id in asked)
    bot.slack.reset()  # the refused post was answered `ok: false` with HTTP 200

    for request_id in [*asked[1:], asked[0]]:  # the others' jobs, then the failed one's retry
        bot.lifecycle.sync_slack(request_id)
    [digest] = approval_posts(bot)
    assert carried(digest) == asked


def test_digest_when_an_extension_is_asked_then_told_in_its_thread_and_decided_from_its_buttons(bot: Bot) -> None:
    asked = ask(bot, 4)
    run_jobs(bot)
    bot.deciding.decide(asked[0], BOB, approving=True)
    run_jobs(bot)
    bot.commands.ask_extension(ALICE, asked[0], timedelta(minutes=30), "INC-0 still digging")
    run_jobs(bot)

    ts = bot.store.slack.slack_refs(asked[0])["approval_ts"]
    [told] = [c for c in bot.slack.calls_to("chat.postMessage") if c.params.get("thread_ts") == ts]
    assert asked[0] in told.params["text"] and "<@U0BOB>" in told.params["text"]
    digest = message(bot, asked[0])
    assert "Extension asked:" in text_of(digest) and asked[0] in decided_by_buttons(digest)

    bot.deciding.decide(asked[0], BOB, approving=True)
    run_jobs(bot)
    assert bot.store.requests.get(asked[0]).extend_by is None
    assert decided_by_buttons(message(bot, asked[0])) == asked[1:]
    assert len(approval_posts(bot)) == 1


def test_digest_when_its_requests_escalate_then_each_escalated_once_and_the_digest_says_so(bot: Bot) -> None:
    asked = ask(bot, 4, "escalating")
    run_jobs(bot)
    at(bot, timedelta(minutes=16))  # past every one's escalate_after
    run_jobs(bot)

    escalations = [c for c in bot.slack.calls_to("chat.postMessage") if c.params["channel"] == "C0ONCALL"]
    assert sorted(carried(c)[0] for c in escalations) == sorted(asked)
    assert all(buttons(message(bot, request_id, "escalation")) == [ids.APPROVE, ids.DENY] for request_id in asked)
    assert text_of(message(bot, asked[0])).count(":mega: Escalated to") == len(asked)
    assert len(edits(bot, asked[0])) == 1
    bot.clock.advance(timedelta(minutes=1))
    assert bot.deciding.decide(asked[2], OLIVE, approving=True).status is Status.APPROVED  # an escalation approver


def test_unannounced_when_posted_held_decided_or_of_another_resource_then_not_waiting(bot: Bot) -> None:
    posted, held, cancelled, waiting, later = ask(bot, 5)
    [elsewhere] = ask(bot, 1, "critical")
    bot.store.slack.set_slack_refs(posted, approval_channel=APPROVALS, approval_ts="1.000001")
    bot.store.slack.block_announcement(held, APPROVALS)  # the bot not in the channel: waits for the invitation
    bot.commands.cancel(ALICE, cancelled)
    assert [r.id for r in bot.store.slack.unannounced({"sandbox"}, 100)] == [waiting, later]  # oldest first
    assert [r.id for r in bot.store.slack.unannounced({"sandbox", "critical"}, 2)] == [later, elsewhere]  # the newest 2
