"""Slack misconfigured: the bot not in the approvers' channel, a refused token. The request waits in a stated
place, its requester and the admins are told once what to fix, and the invitation releases the announcement."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from jitbot.core.catalog import parse_catalog
from jitbot.core.events import EventName
from jitbot.jobs.names import JobName
from jitbot.slack.notify import NotifyError
from jitbot.store.keys import COUNTERS
from tests.unit.test_lifecycle import ADMIN, CATALOG, NOW, Bot, active, audit_log, dms, jobs, make_bot, submit

APPROVALS = "C0APPROVALS"


@pytest.fixture
def bot() -> Iterator[Bot]:
    with make_bot(CATALOG) as made:
        yield made


def approval_posts(bot: Bot, request_id: str) -> list[object]:
    """Every chat.postMessage of the request's approval message, refused or not."""
    return [
        c
        for c in bot.slack.calls_to("chat.postMessage")
        if c.params.get("channel") == APPROVALS and request_id in str(c.params.get("text"))
    ]


def refused_in_channel(bot: Bot, times: int = 1) -> None:
    bot.slack.fail("chat.postMessage", status=200, error="not_in_channel", times=times)


def test_announce_when_bot_not_in_channel_then_requester_and_admins_told_once_and_no_retry(bot: Bot) -> None:
    request_id = submit(bot)
    refused_in_channel(bot)
    bot.lifecycle.sync_slack(request_id)  # returns: a job that raised would be retried for ~50 minutes
    told = [str(c.params["text"]) for c in dms(bot)]
    assert len(told) == 1 and "is waiting" in told[0] and f"invite @jitbot to <#{APPROVALS}>" in told[0]
    [alert] = dms(bot, ADMIN)  # no alert_channel in this catalog: the admins, by DM
    assert "not_in_channel" in str(alert.params["text"]) and "invite @jitbot" in str(alert.params["text"])
    [blocked] = [json.loads(e["detail"]) for e in audit_log(bot) if e["event"] == EventName.ANNOUNCEMENT_BLOCKED]
    assert blocked["error"] == "not_in_channel" and blocked["channel"] == APPROVALS
    assert bot.redis.hget(COUNTERS, "slack_errors:chat.postMessage:not_in_channel") == b"1"

    refused_in_channel(bot)
    bot.lifecycle.sync_slack(request_id)  # another sync (a decision, say) meets the same refusal: nobody re-told
    assert len(dms(bot)) == 1 and len(dms(bot, ADMIN)) == 1
    assert len([e for e in audit_log(bot) if e["event"] == EventName.ANNOUNCEMENT_BLOCKED]) == 1


def test_announce_when_several_wait_on_one_channel_then_one_alert_and_the_invitation_announces_each_once(
    bot: Bot,
) -> None:
    waiting = [submit(bot) for _ in range(3)]
    for request_id in waiting:
        refused_in_channel(bot)
        bot.lifecycle.sync_slack(request_id)
    assert len(dms(bot, ADMIN)) == 1 and len(dms(bot)) == 3
    queued = len(jobs(bot, JobName.SYNC_SLACK))

    bot.surface.channel_joined(APPROVALS)
    assert len(jobs(bot, JobName.SYNC_SLACK)) == queued + 3
    for request_id in waiting:
        bot.lifecycle.sync_slack(request_id)
        bot.lifecycle.sync_slack(request_id)  # a second sync edits, never posts again
    assert all(len(approval_posts(bot, request_id)) == 2 for request_id in waiting)  # the refused one, then one
    assert all("approval_ts" in bot.store.slack.slack_refs(request_id) for request_id in waiting)
    bot.surface.channel_joined(APPROVALS)  # invited again later: nothing is waiting any more
    assert len(jobs(bot, JobName.SYNC_SLACK)) == queued + 3


def test_announce_when_the_token_is_refused_then_retried_and_nobody_can_be_told(bot: Bot) -> None:
    request_id = submit(bot)
    bot.slack.fail("chat.postMessage", status=200, error="invalid_auth", times=3)
    with pytest.raises(NotifyError, match=r"invalid_auth .*SLACK_BOT_TOKEN"):
        bot.lifecycle.sync_slack(request_id)  # RQ retries: a token fixed and jitbot restarted, it goes out
    assert not [e for e in audit_log(bot) if e["event"] == EventName.ANNOUNCEMENT_BLOCKED]


def test_announce_when_scope_missing_then_the_fix_names_the_scope(bot: Bot) -> None:
    request_id = submit(bot)
    bot.slack.fail("chat.postMessage", status=200, error="missing_scope", times=1, needed="chat:write")
    bot.lifecycle.sync_slack(request_id)
    assert "add the scope `chat:write`" in str(dms(bot)[0].params["text"])


def test_alert_when_alert_channel_set_then_posted_there_not_to_admins() -> None:
    catalog = parse_catalog(
        f"approver_channel: {APPROVALS}\nalert_channel: C0SECURITY\nadmins: [{ADMIN}]\n"
        "resources:\n  sandbox: {provider: fake, approvers: [U0BOB]}\n"
    )
    with make_bot(catalog) as bot:
        request_id = submit(bot)
        refused_in_channel(bot)
        bot.lifecycle.sync_slack(request_id)
        alerts = [c for c in bot.slack.calls_to("chat.postMessage") if c.params.get("channel") == "C0SECURITY"]
        assert len(alerts) == 1 and not dms(bot, ADMIN)


def test_revocation_alert_when_the_alert_channel_refuses_then_the_admins_get_it_by_dm() -> None:
    catalog = parse_catalog(
        f"approver_channel: {APPROVALS}\nalert_channel: C0SECURITY\nadmins: [{ADMIN}]\n"
        "revocation: {alert_after: 1}\n"
        "resources:\n  sandbox: {provider: fake, approvers: [U0BOB]}\n"
    )
    with make_bot(catalog) as bot:
        request_id = active(bot)
        bot.store.failures.note_revocation_failure(request_id, "the cloud is down", NOW)
        bot.slack.fail("chat.postMessage", status=200, error="not_in_channel", times=1)
        bot.lifecycle.alert_revocation(request_id)
        [told] = dms(bot, ADMIN)
        assert f"Revoking `{request_id}` keeps failing" in str(told.params["text"])
        assert "invite @jitbot to <#C0SECURITY>" in str(told.params["text"])
