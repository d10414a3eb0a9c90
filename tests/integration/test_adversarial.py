"""Adversarial clicks and commands against the real processes: tampered buttons, self-approval in disguise,
decision races, a deny after the grant, overlapping grants, hostile reasons, and secrets after 100 grants.
"""

import fnmatch
import json
import re
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode

import pytest

from jitbot.core.domain import AccessRequest, Status
from jitbot.providers.aws_denies import role_denies
from jitbot.slack import ids
from jitbot.slack.listeners import SORRY
from jitbot.store import Store
from jitbot.testing.redis_dump import dump_redis
from jitbot.testing.slack_sender import click_body
from jitbot.testing.slack_standin import Call
from jitbot.testing.stack import Stack
from tests.integration.helpers import (
    EXPORT,
    REQUEST_ID,
    approve,
    audit_after,
    audit_events,
    audit_mark,
    click,
    credentials_dm,
    denied,
    deny,
    events,
    message_text,
    request_access,
    slack_refs,
    wait_until,
)

pytestmark = pytest.mark.timeout(180)
GROUP = {"S0DBAS": ["U0DBA"]}  # the module's stack fixture starts with this membership


# --- reading what happened --------------------------------------------------------------------------------


def stored(stack: Stack, request_id: str) -> AccessRequest:
    return Store(stack.redis()).requests.get(request_id)


def ephemeral_to(stack: Stack, user: str, since: float, timeout: float = 15) -> str:
    """The text of the first ephemeral message shown to `user` after `since` (time.monotonic())."""
    call = stack.slack.wait_for(
        lambda c: c.method == "chat.postEphemeral" and c.params.get("user") == user and c.at >= since, timeout
    )
    return str(call.params.get("text", ""))


def redis_contents(stack: Stack, attempts: int = 20) -> dict[str, bytes]:
    """dump_redis, read again when a key vanished between its SCAN and its TYPE (the worker is still busy)."""
    for _ in range(attempts):
        try:
            return dump_redis(stack.redis())
        except AssertionError as error:  # redis_dump raises on type `none`: a key deleted mid-read
            if "b'none'" not in str(error):
                raise
    raise AssertionError(f"Redis never held still for {attempts} reads")


def is_credentials_dm(call: Call, request_id: str | None = None) -> bool:
    text = str(call.params.get("text", ""))
    return (
        call.method == "chat.postMessage"
        and str(call.params.get("channel", "")).startswith(("U", "D"))
        and text.startswith(":key:")
        and (request_id is None or f"`{request_id}`" in text)
    )


def credentials_dms(stack: Stack, request_id: str | None = None) -> list[Call]:
    return [c for c in stack.slack.calls_to("chat.postMessage") if is_credentials_dm(c, request_id)]


def at(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp)


def forged_click(user: str, action_id: str, value: Any, edit: Callable[[dict[str, Any]], None] | None = None) -> bytes:
    """A click as Slack would sign it, whose payload says whatever the attacker wants (only `user` is Slack's)."""
    body = click_body(user, action_id, "placeholder", channel_id="C0APPROVALS", message_ts="1")
    payload = json.loads(parse_qs(body.decode())["payload"][0])
    payload["actions"][0]["value"] = value
    if edit:
        edit(payload)
    return urlencode({"payload": json.dumps(payload)}).encode()


def in_parallel(*jobs: Callable[[], None]) -> None:
    """Start every job at the same moment (a barrier), wait for all, re-raise the first failure."""
    barrier, failures = threading.Barrier(len(jobs)), []

    def run(job: Callable[[], None]) -> None:
        barrier.wait()
        try:
            job()
        except BaseException as error:  # noqa: BLE001 - re-raised in the test's thread below
            failures.append(error)

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]


# --- tampered button values -------------------------------------------------------------------------------


def test_click_when_value_names_another_pending_request_then_that_requests_own_policy_decides(stack: Stack) -> None:
    shown_id, shown = request_access(stack, "U0ALICE", "request prod-db 30s INC-20 the message clicked")
    other_id, _ = request_access(stack, "U0ALICE", "request two-keys 30s INC-21 the id in the button")

    since = time.monotonic()
    click(stack, "U0DBA", ids.APPROVE, other_id, shown)  # may approve prod-db (via S0DBAS), not two-keys
    assert "Only the approvers of `two-keys`" in ephemeral_to(stack, "U0DBA", since)
    refusals = [e for e in audit_events(stack, other_id) if e["event"] == "refused" and e["actor"] == "U0DBA"]
    assert len(refusals) == 1 and json.loads(refusals[0]["detail"])["attempted"] == "approve"

    click(stack, "U0BOB", ids.APPROVE, other_id, shown)  # may approve both: one approval of two-keys, no more
    wait_until(lambda: "endorsed" in events(stack, other_id), 15, "the two-keys endorsement")
    assert (stored(stack, other_id).status, stored(stack, other_id).approvals) == (Status.PENDING, ("U0BOB",))
    assert events(stack, shown_id) == ["requested"] and stored(stack, shown_id).status is Status.PENDING


TAMPERED_VALUES = {
    "nonexistent id": "r-000000",  # well-formed, but 0 is not in the id alphabet: never issued
    "malformed short": "r-!!",
    "malformed id-length": "r-!!!!!!",
    "10 KB": "r-" + "x" * 10_240,
    "JSON text": '{"request_id": "%s"}',
    "JSON object": {"request_id": "%s"},
    "empty": "",
    "redis glob": "r-*",
}


def test_click_when_value_names_no_request_then_refused_ephemerally_audited_and_nothing_changes(stack: Stack) -> None:
    request_id, _ = request_access(stack, "U0ALICE", "request prod-db 30s INC-22 the message clicked")
    unaudited = []
    for kind, template in TAMPERED_VALUES.items():
        as_text = (json.dumps(template) if isinstance(template, dict) else template).replace("%s", request_id)
        value = json.loads(as_text) if isinstance(template, dict) else as_text  # an object, or a string
        keys_before, request_before, mark = (
            stack.redis().keys("jitbot:req:*"),
            stored(stack, request_id),
            audit_mark(stack),
        )

        since = time.monotonic()
        assert stack.sender.post(forged_click("U0BOB", ids.APPROVE, value)).status == 200, kind
        told = ephemeral_to(stack, "U0BOB", since)
        assert told.strip() and told != SORRY and len(told) < 300 and "request" in told.lower(), (kind, told)

        assert sorted(stack.redis().keys("jitbot:req:*")) == sorted(keys_before), kind
        assert stored(stack, request_id) == request_before, kind
        refused = [e for e in audit_after(stack, mark) if e["event"] == "refused" and e["actor"] == "U0BOB"]
        if len(refused) != 1:  # the ephemeral came after the refusal was (or should have been) recorded
            unaudited.append(kind)
    assert events(stack, request_id) == ["requested"]
    assert not unaudited, f"refused clicks that left no audit record: {unaudited}"


def test_click_when_value_names_a_request_that_ended_then_refused_audited_and_it_stays_ended(stack: Stack) -> None:
    shown_id, shown = request_access(stack, "U0ALICE", "request prod-db 30s INC-23 the message clicked")
    ended_id, ended = request_access(stack, "U0ALICE", "request prod-db 30s INC-23 denied already")
    deny(stack, "U0BOB", ended_id, ended)
    wait_until(lambda: "denied" in events(stack, ended_id), 15, "the denial")

    since = time.monotonic()
    click(stack, "U0ADMIN", ids.APPROVE, ended_id, shown)
    told = ephemeral_to(stack, "U0ADMIN", since)
    assert ended_id in told and "denied" in told
    assert events(stack, ended_id) == ["requested", "denied", "refused"]
    assert stored(stack, ended_id).status is Status.DENIED and not credentials_dms(stack, ended_id)
    assert events(stack, shown_id) == ["requested"]


def test_click_when_payload_claims_another_resource_and_duration_then_the_stored_request_is_granted(
    stack: Stack,
) -> None:
    request_id, posted = request_access(stack, "U0ALICE", "request prod-db 20s INC-24 narrow")
    widened = json.loads(
        json.dumps(posted.params["blocks"]).replace("for 20s", "for 1h").replace("prod-db", "two-keys")
    )

    def widen(payload: dict[str, Any]) -> None:
        payload["message"] = {
            "ts": "1",
            "text": f"{request_id}: <@U0ALICE> asks for `two-keys` for 1h",
            "blocks": widened,
        }
        payload["actions"][0].update({"block_id": f"decide-{request_id}", "duration": "1h", "resource": "two-keys"})
        payload["state"] = {"values": {"duration": {"value": "12h"}}}

    assert stack.sender.post(forged_click("U0BOB", ids.APPROVE, request_id, widen)).status == 200
    _, exported = credentials_dm(stack, "U0ALICE", request_id)

    granted = next(e for e in audit_events(stack, request_id) if e["event"] == "granted")
    detail = json.loads(granted["detail"])
    assert granted["resource"] == "prod-db"
    assert at(detail["expires_at"]) - at(detail["granted_at"]) == timedelta(seconds=20)
    assert (
        stored(stack, request_id).duration == timedelta(seconds=20) and stored(stack, request_id).resource == "prod-db"
    )
    sts = stack.aws(
        "sts",
        aws_access_key_id=exported["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=exported["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=exported["AWS_SESSION_TOKEN"],
    )
    assert sts.get_caller_identity()["Arn"].endswith(f"assumed-role/jit-prod-db/jit-{request_id}-U0ALICE")


# --- self-approval in disguise ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "requester",
    ["U0BOB", "U0ADMIN", "U0DBA"],
    ids=["listed approver", "admin", "approver group member"],
)
def test_approve_when_requester_is_also_an_approver_then_own_click_refused_and_audited(
    stack: Stack, requester: str
) -> None:
    request_id, posted = request_access(stack, requester, "request prod-db 30s INC-25 my own")
    since = time.monotonic()
    approve(stack, requester, request_id, posted)
    assert "your own request" in ephemeral_to(stack, requester, since)
    assert events(stack, request_id) == ["requested", "refused"]
    assert stored(stack, request_id).status is Status.PENDING and stored(stack, request_id).approvals == ()


def test_approve_when_requester_would_be_the_second_of_two_approvers_then_refused(stack: Stack) -> None:
    request_id, posted = request_access(stack, "U0BOB", "request two-keys 30s INC-26 I approve two-keys myself")
    approve(stack, "U0CAROL", request_id, posted)
    wait_until(lambda: "endorsed" in events(stack, request_id), 15, "the first approval")
    since = time.monotonic()
    approve(stack, "U0BOB", request_id, posted)
    assert "your own request" in ephemeral_to(stack, "U0BOB", since)
    assert events(stack, request_id) == ["requested", "endorsed", "refused"]
    assert (stored(stack, request_id).status, stored(stack, request_id).approvals) == (Status.PENDING, ("U0CAROL",))


def test_approve_when_clicker_left_the_approver_group_after_the_message_then_refused(stack: Stack) -> None:
    request_id, posted = request_access(stack, "U0ALICE", "request prod-db 30s INC-27 group changed")
    try:
        stack.slack.usergroups = {"S0DBAS": ["U0SOMEONE"]}  # U0DBA removed after the message was posted
        since = time.monotonic()
        approve(stack, "U0DBA", request_id, posted)
        assert "Only the approvers of `prod-db`" in ephemeral_to(stack, "U0DBA", since)
        assert events(stack, request_id) == ["requested", "refused"]
    finally:
        stack.slack.usergroups = dict(GROUP)
    approve(stack, "U0DBA", request_id, posted)  # back in the group: membership is read at each click
    credentials_dm(stack, "U0ALICE", request_id)


# --- races ------------------------------------------------------------------------------------------------


def test_approve_when_twenty_distinct_approvers_click_at_once_then_one_approval_one_grant_one_dm(
    stack: Stack,
) -> None:
    members = ["U0DBA"] + [f"U0MEMBER{n:02d}" for n in range(17)]
    approvers = ["U0ADMIN", "U0BOB", *members]
    request_id, posted = request_access(stack, "U0ALICE", "request prod-db 30s INC-28 twenty approvers")
    try:
        stack.slack.usergroups = {"S0DBAS": members}
        in_parallel(*(lambda user=user: approve(stack, user, request_id, posted) for user in approvers))
        credentials_dm(stack, "U0ALICE", request_id)
        wait_until(lambda: events(stack, request_id).count("refused") == 19, 30, "19 refusals")
    finally:
        stack.slack.usergroups = dict(GROUP)
    trail = audit_events(stack, request_id)
    names = [e["event"] for e in trail]
    assert sorted(names) == sorted(["requested", "approved", "granted", *["refused"] * 19]), names
    winner = next(e["actor"] for e in trail if e["event"] == "approved")
    assert {e["actor"] for e in trail if e["event"] == "refused"} == set(approvers) - {winner}
    assert len(credentials_dms(stack, request_id)) == 1
    refs = wait_until(lambda: slack_refs(stack, request_id).get("approval_ts") and slack_refs(stack, request_id), 10)
    wait_until(
        lambda: f"Approved by <@{winner}>" in message_text(stack, "C0APPROVALS", refs["approval_ts"]), 15, "update"
    )


def test_decide_when_approve_and_deny_race_then_exactly_one_decision_and_a_denial_issues_nothing(
    stack: Stack,
) -> None:
    requests = [request_access(stack, "U0ALICE", f"request prod-db 20s INC-29 race {n}") for n in range(10)]
    clicks = []
    for request_id, posted in requests:
        clicks.append(lambda r=request_id, p=posted: click(stack, "U0BOB", ids.APPROVE, r, p))
        clicks.append(  # the Deny form, submitted (its click only opens it)
            lambda r=request_id: stack.sender.submit_view("U0ADMIN", ids.DENY_FORM, {}, private_metadata=r)
        )
    in_parallel(*clicks)

    outcomes = {}
    for request_id, _ in requests:
        wait_until(lambda r=request_id: "refused" in events(stack, r), 30, f"both clicks on {request_id} handled")
        names = events(stack, request_id)
        decisions = [n for n in names if n in ("approved", "denied")]
        assert len(decisions) == 1 and names.count("refused") == 1, names
        outcomes[request_id] = decisions[0]
    for request_id, outcome in outcomes.items():
        if outcome == "approved":
            credentials_dm(stack, "U0ALICE", request_id)
    for request_id, outcome in outcomes.items():
        if outcome == "denied":
            assert "granted" not in events(stack, request_id) and stored(stack, request_id).status is Status.DENIED
            assert not credentials_dms(stack, request_id) and "secret_dm_ts" not in slack_refs(stack, request_id)
            assert not stored(stack, request_id).grant
    print(f"approve/deny race outcomes: {sorted(outcomes.values())}")


# --- after the grant --------------------------------------------------------------------------------------


def test_deny_when_clicked_after_the_grant_then_refused_and_access_runs_to_expiry_then_revoked(stack: Stack) -> None:
    request_id, posted = request_access(stack, "U0ALICE", "request prod-db 8s INC-30 deny too late")
    approve(stack, "U0BOB", request_id, posted)
    _, exported = credentials_dm(stack, "U0ALICE", request_id)
    active = stored(stack, request_id)

    since = time.monotonic()
    click(stack, "U0ADMIN", ids.DENY, request_id, posted)
    told = ephemeral_to(stack, "U0ADMIN", since)
    assert request_id in told and "active" in told and "denied" in told, told
    assert stored(stack, request_id) == active  # still active, same expiry, credentials not cut
    assert "scrubbed" not in slack_refs(stack, request_id)
    refusal = audit_events(stack, request_id)[-1]
    assert refusal["event"] == "refused" and json.loads(refusal["detail"])["attempted"] == "deny"

    wait_until(lambda: "expired" in events(stack, request_id), 40, "the grant's expiry")
    wait_until(lambda: "scrubbed" in slack_refs(stack, request_id), 20, "the scrubbed DM")
    assert events(stack, request_id) == ["requested", "approved", "granted", "refused", "expired"]
    expired = next(e for e in audit_events(stack, request_id) if e["event"] == "expired")
    assert active.expires_at is not None
    assert at(expired["at"]) >= active.expires_at - timedelta(seconds=1)  # ran its course, not cut by Deny
    assert denied(stack, request_id)
    assert exported["AWS_SECRET_ACCESS_KEY"] not in message_text(
        stack, slack_refs(stack, request_id)["secret_dm_channel"], slack_refs(stack, request_id)["secret_dm_ts"]
    )


def test_request_when_a_second_one_overlaps_an_active_grant_then_the_first_is_not_widened(stack: Stack) -> None:
    first_id, first_posted = request_access(stack, "U0ALICE", "request prod-db 6s INC-31 short one")
    approve(stack, "U0BOB", first_id, first_posted)
    _, first_keys = credentials_dm(stack, "U0ALICE", first_id)
    first = stored(stack, first_id)

    second_id, second_posted = request_access(stack, "U0ALICE", "request prod-db 60s INC-32 longer one")
    assert stored(stack, first_id) == first  # a pending second request changes nothing of the first
    approve(stack, "U0BOB", second_id, second_posted)
    _, second_keys = credentials_dm(stack, "U0ALICE", second_id)
    assert second_id != first_id and second_keys["AWS_ACCESS_KEY_ID"] != first_keys["AWS_ACCESS_KEY_ID"]
    assert stored(stack, first_id).expires_at == first.expires_at
    assert stored(stack, first_id).duration == timedelta(seconds=6)

    sessions = {}
    for request_id, keys in ((first_id, first_keys), (second_id, second_keys)):
        sts = stack.aws(
            "sts",
            aws_access_key_id=keys["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=keys["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=keys["AWS_SESSION_TOKEN"],
        )
        sessions[request_id] = sts.get_caller_identity()["Arn"].rsplit("/", 1)[-1]
    assert sessions == {first_id: f"jit-{first_id}-U0ALICE", second_id: f"jit-{second_id}-U0ALICE"}

    wait_until(lambda: "expired" in events(stack, first_id), 40, "the first grant's own expiry")
    expired = next(e for e in audit_events(stack, first_id) if e["event"] == "expired")
    assert first.expires_at is not None
    assert at(expired["at"]) - first.expires_at < timedelta(seconds=20)  # at its own end, not the second's
    patterns = [p for ps in role_denies(stack.aws("iam"), "jit-prod-db").values() for p in ps]
    assert any(fnmatch.fnmatchcase(f"AROA:{sessions[first_id]}", p) for p in patterns)
    assert not any(fnmatch.fnmatchcase(f"AROA:{sessions[second_id]}", p) for p in patterns)
    assert stored(stack, second_id).status is Status.ACTIVE


# --- hostile reasons --------------------------------------------------------------------------------------

HOSTILE_REASONS = {
    "channel": "<!channel> urgent",
    "here": "<!here> please look",
    "everyone": "<!everyone> and <!subteam^S0DBAS>",
    "mention": "ping <@U0BOB> now",
    "link": "see <https://evil.example|click me> for details",
    "control": "bell\x07 esc\x1b[31mred nul\x00 del\x7f",
    "mixed": "a & b <#C0SECURITY> <!date^1^{date}|x>",
}


@pytest.mark.parametrize("kind", list(HOSTILE_REASONS))
def test_approval_message_when_reason_carries_markup_then_shown_escaped_never_live(stack: Stack, kind: str) -> None:
    reason = HOSTILE_REASONS[kind]
    request_id, posted = request_access(stack, "U0ALICE", f"request prod-db 30s INC-33 {reason}")
    blocks = json.dumps(posted.params["blocks"], ensure_ascii=False)
    shown = posted.params["blocks"][1]["text"]["text"]
    assert shown.startswith("*Reason:* INC-33 ")
    assert "<" not in shown and ">" not in shown, shown  # the reason section holds no live markup at all
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", shown), repr(shown)
    for live in ("<!channel>", "<!here>", "<!everyone>", "<https://evil", "<#C0SECURITY>", "<!date^1^"):
        assert live not in blocks and live not in str(posted.params.get("text", ""))
    if kind == "mention":
        assert "&lt;@U0BOB&gt;" in shown
    if kind == "channel":
        assert "&lt;!channel&gt;" in shown
    assert stored(stack, request_id).reason == " ".join(f"INC-33 {reason}".split())  # kept as typed, for audit


def test_command_when_reason_is_ten_kilobytes_then_refused_naming_the_limit_and_nothing_created(stack: Stack) -> None:
    before, mark = stack.redis().keys("jitbot:req:*"), audit_mark(stack)
    reply = stack.sender.command("U0ALICE", "request prod-db 30s " + "<!channel> " * 1024)
    assert reply.status == 200 and reply.json()["response_type"] == "ephemeral"
    text = reply.json()["text"]
    assert "500" in text and "<!channel>" not in text and len(text) < 300, text
    assert stack.redis().keys("jitbot:req:*") == before
    assert [e["event"] for e in audit_after(stack, mark) if e["actor"] == "U0ALICE"] == ["refused"]


# --- secrets ----------------------------------------------------------------------------------------------


def test_grants_when_a_hundred_were_issued_then_no_secret_outside_the_credentials_dms(stack: Stack) -> None:
    started = time.monotonic()
    request_ids = []
    for n in range(100):
        reply = stack.sender.command("U0ALICE", f"request staging-logs 15m INC-{n} bulk")
        assert reply.status == 200, reply.body
        request_ids.append(REQUEST_ID.search(reply.json()["text"]).group(0))  # type: ignore[union-attr]
    sent = time.monotonic() - started
    wait_until(lambda: all(credentials_dms(stack, r) for r in request_ids), 150, "100 credentials DMs")
    granted = time.monotonic() - started
    print(f"100 auto-approved grants: commands sent in {sent:.1f} s, all credentials DMs in {granted:.1f} s")

    secrets: set[str] = set()
    for dm in credentials_dms(stack):  # every grant of this module, the 100 and the ones before
        exported = dict(EXPORT.findall(json.dumps(dm.params["blocks"]).replace("\\n", "\n")))
        secrets |= {exported["AWS_SECRET_ACCESS_KEY"], exported["AWS_SESSION_TOKEN"]}
    assert len(secrets) >= 200
    leak = re.compile(b"|".join(re.escape(s.encode()) for s in sorted(secrets, key=len, reverse=True)))

    haystacks = {"process logs": stack.logs().encode(errors="replace")}
    for key, value in redis_contents(stack).items():
        haystacks[f"redis key {key}"] = key.encode() + b"\n" + value
    assert any(k.startswith("redis key rq:job:") for k in haystacks)  # RQ's jobs were read, not only jitbot's
    for where, text in haystacks.items():
        assert not leak.search(text), f"a secret leaked into {where}"
    carrying = [call for call in stack.slack.calls if leak.search(json.dumps(call.params).encode())]
    for call in carrying:
        assert is_credentials_dm(call), f"a secret left the requester's DM: {call.method} to {call.params}"
    assert len(carrying) == len(credentials_dms(stack))  # the search finds them where they belong
