"""What crosses the edges: forged and replayed requests, secrets, the store's settings, the Procfile."""

import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from jitbot.slack import ids
from jitbot.testing.redis_dump import dump_redis
from jitbot.testing.slack_sender import click_body, command_body, sign
from jitbot.testing.stack import Stack
from jitbot.testing.stack_processes import PROCESSES
from tests.integration.helpers import (
    REQUEST_ID,
    approve,
    audit_events,
    credentials_dm,
    request_access,
    slack_refs,
    wait_until,
)

pytestmark = pytest.mark.timeout(120)
ROOT = Path(__file__).resolve().parents[2]


def refusals(stack: Stack) -> int:
    entries = stack.redis().xrange("jitbot:audit")
    return sum(1 for _, f in entries if f[b"event"] == b"refused" and f[b"actor"] == b"unverified")


def unverified(stack: Stack, reason: str) -> int:
    return int(stack.redis().hget("jitbot:metrics:counters", f"unverified:{reason}") or 0)


FORGERIES = {  # how a request is forged → the reason it is refused for
    "wrong secret": "forged",
    "no headers": "unsigned",
    "stale 301 s": "stale",
    "one byte changed": "forged",
    "bad timestamp": "stale",
}


@pytest.mark.parametrize("forgery", list(FORGERIES))
def test_events_when_not_signed_by_slack_then_401_counted_and_nothing_done(stack: Stack, forgery: str) -> None:
    body = command_body("U0ALICE", "request prod-db 30s INC-1")
    now = int(time.time())
    headers = {
        "wrong secret": sign("not-the-secret", body, now),
        "no headers": {"Content-Type": "application/x-www-form-urlencoded"},
        "stale 301 s": sign(stack.secret, body, now - 301),
        "one byte changed": sign(stack.secret, body, now),
        "bad timestamp": {**sign(stack.secret, body, now), "X-Slack-Request-Timestamp": "soon"},
    }[forgery]
    sent = body.replace(b"30s", b"40s") if forgery == "one byte changed" else body
    requests_before, counted_before = stack.redis().keys("jitbot:req:*"), unverified(stack, FORGERIES[forgery])
    reply = stack.sender.post(sent, headers)
    assert reply.status == 401
    assert stack.redis().keys("jitbot:req:*") == requests_before
    assert unverified(stack, FORGERIES[forgery]) == counted_before + 1


def test_events_when_flooded_with_unsigned_posts_then_each_counted_and_the_audit_barely_grows(stack: Stack) -> None:
    body = command_body("U0MALLORY", "request prod-db 30s INC-1")
    counted_before, records_before = unverified(stack, "unsigned"), refusals(stack)
    with ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(lambda _: stack.sender.post(body, {}).status, range(2000)))
    assert replies == [401] * 2000
    assert unverified(stack, "unsigned") == counted_before + 2000
    assert refusals(stack) - records_before <= 2  # one a minute per reason: the flood may straddle a minute's turn
    (last,) = [e for e in audit_events(stack, "-") if e["actor"] == "unverified"][-1:]
    assert json.loads(last["detail"])["count"] >= 1


def test_healthz_when_redis_answers_then_200_with_status(stack: Stack) -> None:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{stack.port}/healthz", timeout=5) as answer:
        assert answer.status == 200 and json.loads(answer.read()) == {"status": "ok", "redis": "ok"}


def test_grant_when_issued_then_secret_in_no_log_no_redis_key_no_job(stack: Stack) -> None:
    request_id, posted = request_access(stack, "U0ALICE", "request prod-db 2s INC-5 secret hygiene")
    approve(stack, "U0BOB", request_id, posted)
    _, exported = credentials_dm(stack, "U0ALICE", request_id)
    wait_until(lambda: "scrubbed" in slack_refs(stack, request_id), 40, "expiry and scrub")
    secrets = [exported["AWS_SECRET_ACCESS_KEY"], exported["AWS_SESSION_TOKEN"]]
    haystacks = {"logs": stack.logs().encode(), **dump_redis(stack.redis())}
    assert len(haystacks) > 10  # requests, indexes, audit, RQ jobs and results were all read
    for where, text in haystacks.items():
        for secret in secrets:
            assert secret.encode() not in text, f"a secret leaked into {where}"


def test_embedded_store_when_no_redis_url_then_aof_and_noeviction(stack: Stack) -> None:
    if stack.redis_url:
        pytest.skip("REDIS_URL is set: this run uses that Redis, not the embedded one")
    settings = stack.redis().config_get("*")
    assert settings["appendonly"] == "yes" and settings["maxmemory-policy"] == "noeviction"
    assert (stack.home / ".jitbot" / "redis.sock").exists()


def test_procfile_when_read_then_the_processes_the_stack_runs() -> None:
    lines = [line.split(":", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line.strip()]
    assert {name.strip(): command.strip() for name, command in lines} == PROCESSES


def test_audit_verify_when_web_and_worker_wrote_concurrently_then_chain_intact(stack: Stack) -> None:
    request_id, posted = request_access(stack, "U0ALICE", "request prod-db 1s INC-6 chain")
    approve(stack, "U0BOB", request_id, posted)
    wait_until(lambda: "scrubbed" in slack_refs(stack, request_id), 40, "expiry")
    jitbot = str(Path(sys.executable).parent / "jitbot")
    done = subprocess.run(
        [jitbot, "audit", "verify"], cwd=stack.home, env=stack.env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "hash chain is intact" in done.stdout


def test_command_when_the_same_delivery_arrives_ten_times_then_one_request_and_the_same_answer(stack: Stack) -> None:
    body = command_body("U0ALICE", "request prod-db 30s INC-13 replayed")
    answers = [stack.sender.post(body) for _ in range(5)]
    with ThreadPoolExecutor(5) as pool:
        answers += list(pool.map(lambda _: stack.sender.post(body), range(5)))
    texts = {a.json()["text"] for a in answers}
    assert len(texts) == 1, texts
    request_ids = set(REQUEST_ID.findall(texts.pop()))
    assert len(request_ids) == 1
    request_id = request_ids.pop()
    assert [e["event"] for e in audit_events(stack, request_id)] == ["requested"]
    duplicates = [
        e for e in audit_events(stack, "-") if "duplicate delivery" in e["detail"] and e["actor"] == "U0ALICE"
    ]
    assert len(duplicates) >= 9


def test_click_when_the_same_delivery_arrives_ten_times_then_one_decision(stack: Stack) -> None:
    request_id, _ = request_access(stack, "U0ALICE", "request prod-db 30s INC-14 replayed click")
    body = click_body("U0BOB", ids.APPROVE, request_id, channel_id="C0APPROVALS", message_ts="1")
    with ThreadPoolExecutor(10) as pool:
        statuses = list(pool.map(lambda _: stack.sender.post(body).status, range(10)))
    assert statuses == [200] * 10
    wait_until(lambda: len(audit_events(stack, request_id)) >= 11, 20, "every delivery audited")
    events = [e["event"] for e in audit_events(stack, request_id)]
    assert events.count("approved") == 1 and events.count("refused") == 9


def test_command_when_its_text_says_payload_then_handled_like_any_other(stack: Stack) -> None:
    """bolt-python reads a form body containing "payload" as an interactive payload; jitbot must not lose it."""
    request_id, posted = request_access(stack, "U0ALICE", "request prod-db 30s fix the payload parser INC-16")
    assert "fix the payload parser INC-16" in json.dumps(posted.params["blocks"])
    assert [e["event"] for e in audit_events(stack, request_id)] == ["requested"]
