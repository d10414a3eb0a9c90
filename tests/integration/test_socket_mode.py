"""Socket Mode as an operator runs it (`python app.py` with SLACK_APP_TOKEN set, a real process): no signing secret,
the connection that apps.connections.open hands out, /livez and /readyz on the bind address; a missing setting is
one line and exit 2."""

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qsl

import pytest

from jitbot.testing.host import free_port
from jitbot.testing.slack_sender import command_body
from jitbot.testing.slack_standin import SlackStandIn
from jitbot.testing.socket_mode_standin import SocketModeStandIn
from tests.integration.helpers import probe

pytestmark = pytest.mark.timeout(90)
ROOT = Path(__file__).resolve().parents[2]
JITBOT = str(Path(sys.executable).parent / "jitbot")
CATALOG = "approver_channel: C0APPROVALS\nresources:\n  sandbox: {provider: fake, approvers: [U0BOB]}\n"


def environment(tmp_path: Path, **settings: str) -> dict[str, str]:
    (tmp_path / "jitbot.yml").write_text(CATALOG)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "REDIS_URL", "JITBOT_"))}
    return {**base, "JITBOT_CONFIG": str(tmp_path / "jitbot.yml"), "PYTHONUNBUFFERED": "1", **settings}


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    subprocess.run([JITBOT, "redis-stop"], cwd=tmp_path, capture_output=True, timeout=15)


def test_app_when_app_token_and_no_signing_secret_then_answers_over_socket_mode_and_serves_probes(home: Path) -> None:
    port = free_port()
    with SlackStandIn() as slack, SocketModeStandIn() as socket:
        slack.socket_url = socket.url
        env = environment(
            home, SLACK_APP_TOKEN="xapp-1-test", SLACK_BOT_TOKEN="xoxb-test", SLACK_API_URL=slack.url, PORT=str(port)
        )
        with open(home / "app.log", "wb") as log:
            app = subprocess.Popen([sys.executable, str(ROOT / "app.py")], cwd=home, env=env, stdout=log, stderr=log)
        try:
            payload = dict(parse_qsl(command_body("U0ALICE", "help").decode()))
            ack = socket.wait_for_ack(socket.push("slash_commands", payload, timeout=30), timeout=20)
            assert "/access request" in json.dumps(ack["payload"])  # Bolt ran the listener: the help came back
            assert probe(port, "/livez") == (200, {"status": "ok"})
            deadline = time.monotonic() + 10
            while probe(port, "/readyz")[0] != 200 and time.monotonic() < deadline:
                time.sleep(0.2)  # the token watcher's first check
            assert probe(port, "/readyz") == (200, {"status": "ok", "redis": "ok", "slack": "ok", "catalog": "ok"})
            assert slack.calls_to("apps.connections.open")
        finally:
            app.terminate()
            app.wait(timeout=15)
    lines = (home / "app.log").read_text().splitlines()
    assert lines and all(json.loads(line) for line in lines)  # structlog's JSON, not a traceback


@pytest.mark.parametrize(
    ("command", "settings", "missing"),
    [
        ([JITBOT, "socket"], {"SLACK_BOT_TOKEN": "xoxb-test"}, "SLACK_APP_TOKEN"),
        ([sys.executable, str(ROOT / "app.py")], {"SLACK_APP_TOKEN": "xapp-1-test"}, "SLACK_BOT_TOKEN"),
    ],
)
def test_socket_mode_when_a_setting_missing_then_one_line_naming_it_and_exit_2(
    home: Path, command: list[str], settings: dict[str, str], missing: str
) -> None:
    done = subprocess.run(command, cwd=home, env=environment(home, **settings), capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"jitbot: {missing} is not set: jitbot needs it to talk to Slack (see README, 'Run it')."
    ]
    assert not (home / ".jitbot").exists()  # said before anything started: no embedded Redis
