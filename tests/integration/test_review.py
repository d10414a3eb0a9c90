"""`jitbot report` and `jitbot audit export` run against the trail the real processes wrote."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from jitbot.testing.stack import Stack
from tests.integration.helpers import approve, request_access, slack_refs, wait_until

pytestmark = pytest.mark.timeout(120)
JITBOT = str(Path(sys.executable).parent / "jitbot")


def jitbot(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([JITBOT, *args], cwd=stack.home, env=stack.env, capture_output=True, text=True, timeout=90)


def test_report_when_a_grant_has_run_its_course_then_review_counts_it(stack: Stack) -> None:
    request_id, posted = request_access(stack, "U0ALICE", "request prod-db 1s INC-11 review")
    approve(stack, "U0BOB", request_id, posted)
    wait_until(lambda: "scrubbed" in slack_refs(stack, request_id), 40, "expiry")
    done = jitbot(stack, "report", "--period", "1d", "--out", str(stack.home / "review"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert (stack.home / "review" / "duration-trend.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    row = next(line for line in done.stdout.splitlines() if line.startswith("| prod-db |"))
    grants = int(row.split("|")[3])
    assert grants >= 1
    assert "staging-logs" in done.stdout


def test_audit_export_when_run_then_every_event_of_a_request_in_order(stack: Stack) -> None:
    request_id, posted = request_access(stack, "U0ALICE", "request prod-db 1s INC-12 export")
    approve(stack, "U0BOB", request_id, posted)
    wait_until(lambda: "scrubbed" in slack_refs(stack, request_id), 40, "expiry")
    done = jitbot(stack, "audit", "export", "--format", "jsonl")
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["event"] for r in rows if r["request_id"] == request_id] == [
        "requested",
        "approved",
        "granted",
        "expired",
    ]
    assert all(r["provider"] == "aws" for r in rows if r["request_id"] == request_id)
