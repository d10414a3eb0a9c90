"""No accidental embedded store: with REDIS_URL unset only the processes that serve start one; a one-off command
run where jitbot never ran says so instead of reading a new, empty store; a process that cannot start stops the
Redis it started, and leaves one another process started alone."""

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from jitbot.store import embedded
from tests.integration.helpers import wait_until

JITBOT = str(Path(sys.executable).parent / "jitbot")
CATALOG = """approver_channel: C0APPROVALS
resources:
  lab:
    provider: fake
    approvers: [U0BOB]
"""
NO_STORE = "jitbot: no jitbot store here (./.jitbot): set REDIS_URL, or run this where jitbot runs"
pytestmark = pytest.mark.timeout(90)


def jitbot(folder: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "REDIS_URL", "JITBOT_"))}
    return subprocess.run([JITBOT, *args], cwd=folder, env=base | env, capture_output=True, text=True, timeout=60)


def redis_servers_in(folder: Path) -> list[int]:
    """Live redis-server processes of `folder`: its path in their arguments (the process title names the unix
    socket) or their working directory (a server chdirs to its `dir`)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            title = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # gone meanwhile
        try:
            cwd = os.readlink(proc / "cwd")
        except OSError:
            cwd = ""
        if "redis-server" in title and (str(folder) in title or cwd.startswith(str(folder))):
            found.append(int(proc.name))
    return found


@pytest.fixture
def folder(tmp_path: Path) -> Iterator[Path]:
    """A folder with no store and no redis-server of its own; any started here is stopped afterwards."""
    assert redis_servers_in(tmp_path) == []
    yield tmp_path
    embedded.stop(tmp_path / ".jitbot")


@pytest.mark.parametrize("command", [["audit", "verify"], ["audit", "export"], ["report"], ["reconcile"]], ids=" ".join)
def test_one_off_when_folder_holds_no_store_then_one_line_exit_2_and_no_redis_started(
    folder: Path, command: list[str]
) -> None:
    done = jitbot(folder, *command)
    assert (done.returncode, done.stderr.splitlines(), done.stdout) == (2, [NO_STORE], "")
    assert list(folder.iterdir()) == []  # no ./.jitbot made, no report written
    assert redis_servers_in(folder) == []


def test_audit_verify_when_folder_holds_a_stopped_store_then_started_and_read(folder: Path) -> None:
    (folder / "jitbot.yml").write_text(CATALOG)
    home = folder / ".jitbot"
    embedded.ensure_running(home)
    assert embedded.stop(home)
    wait_until(lambda: not redis_servers_in(folder), 15, "the embedded Redis to stop")
    done = jitbot(folder, "audit", "verify")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("OK: ") and "intact" in done.stdout
    assert redis_servers_in(folder) != []  # started to be read, and left up for the processes that serve it


def test_web_when_bot_token_missing_then_exit_2_and_the_redis_it_started_stopped(folder: Path) -> None:
    (folder / "jitbot.yml").write_text(CATALOG)
    done = jitbot(folder, "web", SLACK_SIGNING_SECRET="s")
    assert done.returncode == 2 and "SLACK_BOT_TOKEN is not set" in done.stderr
    assert (folder / ".jitbot" / "appendonly.aof").exists()  # web did start one before it read its settings
    wait_until(lambda: not redis_servers_in(folder), 15, "no redis-server of the folder left")


def test_web_when_bot_token_missing_then_a_redis_started_by_another_process_kept(folder: Path) -> None:
    (folder / "jitbot.yml").write_text(CATALOG)
    home = folder / ".jitbot"
    embedded.ensure_running(home)
    before = redis_servers_in(folder)
    done = jitbot(folder, "web", SLACK_SIGNING_SECRET="s")
    assert done.returncode == 2 and "SLACK_BOT_TOKEN is not set" in done.stderr
    assert redis.Redis(unix_socket_path=str(embedded.socket_path(home))).ping()
    assert redis_servers_in(folder) == before != []
