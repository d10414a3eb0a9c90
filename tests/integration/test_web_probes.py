"""The web process as an operator runs it (the Procfile's `jitbot web`, real gunicorn): /livez and /readyz while
Slack refuses the bot token and after it accepts it again; gunicorn's own lines as JSON; LOG_LEVEL."""

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jitbot.observability.health import RECHECK_S
from jitbot.testing.slack_sender import SlackSender
from jitbot.testing.stack import Stack
from tests.integration.conftest import CATALOG
from tests.integration.helpers import probe, wait_until

pytestmark = pytest.mark.timeout(180)
TOKEN = "xoxb-stack-test"  # the bot token a Stack gives its processes


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack whose bot token Slack refuses from the start (/healthz, which the stack waits on, asks Redis only)."""
    refused = Stack(tmp_path_factory.mktemp("probes"), CATALOG, settings={"GUNICORN_CMD_ARGS": "--access-logfile -"})
    refused.slack.refuse_token(TOKEN)
    with refused:
        yield refused


def log_lines(stack: Stack) -> list[dict[str, Any]]:
    """web's log, each line parsed as JSON (a line that is not fails the test here)."""
    return [json.loads(line) for line in stack.logs("web").splitlines() if line.strip()]


def test_readyz_when_slack_refuses_the_token_then_503_naming_it_until_slack_accepts_it(stack: Stack) -> None:
    refused = wait_until(
        lambda: (a := probe(stack.port, "/readyz"))[1]["slack"] != "unchecked" and a, 10, "first check"
    )
    assert refused == (503, {"status": "unavailable", "redis": "ok", "slack": "refused: invalid_auth", "catalog": "ok"})
    assert probe(stack.port, "/livez") == (200, {"status": "ok"})
    assert probe(stack.port, "/healthz") == (200, {"status": "ok", "redis": "ok"})
    said = [line for line in log_lines(stack) if line["event"] == "slack_token_refused"]
    assert said and all(line["error"] == "invalid_auth" and "SLACK_BOT_TOKEN" in line["fix"] for line in said)
    assert TOKEN not in stack.logs("web")

    asked = len(stack.slack.calls_to("auth.test"))
    assert all(probe(stack.port, "/readyz")[0] == 503 for _ in range(50))
    assert len(stack.slack.calls_to("auth.test")) - asked <= 2  # a scheduled re-check per worker at most

    stack.slack.accept_token(TOKEN)
    accepted = time.monotonic()
    ready = (200, {"status": "ok", "redis": "ok", "slack": "ok", "catalog": "ok"})
    wait_until(lambda: all(probe(stack.port, "/readyz") == ready for _ in range(10)), RECHECK_S + 15, "ready")
    assert time.monotonic() - accepted <= RECHECK_S + 15
    assert any(line["event"] == "slack_token_ok" for line in log_lines(stack))


def test_web_log_when_requests_served_then_every_line_json_and_an_access_line_without_query(stack: Stack) -> None:
    assert probe(stack.port, "/livez?session=hunter2")[0] == 200

    def access_line() -> dict[str, Any] | None:
        lines = [line for line in log_lines(stack) if line["logger"] == "gunicorn.access" and line["path"] == "/livez"]
        return lines[-1] if lines else None

    line = wait_until(access_line, 10, "access line")
    assert (line["event"], line["level"], line["method"], line["status"]) == ("request", "info", "GET", 200)
    assert isinstance(line["duration_ms"], float)
    assert "hunter2" not in stack.logs("web")
    started = [line for line in log_lines(stack) if line["logger"] == "gunicorn.error"]
    assert any(line["event"].startswith("Booting worker") for line in started)


def test_web_log_when_log_level_warning_then_no_info_lines(tmp_path: Path) -> None:
    with Stack(tmp_path, CATALOG, settings={"LOG_LEVEL": "WARNING"}) as quiet:
        assert probe(quiet.port, "/readyz")[0] in (200, 503)
        assert quiet.sender.command("U0ALICE", "help").status == 200
        assert SlackSender(quiet.sender.url, "not-the-secret").command("U0ALICE", "help").status == 401
        lines = wait_until(
            lambda: (
                (found := log_lines(quiet)) and any(line["event"] == "refused_unverified" for line in found) and found
            ),
            10,
            "the refusal's warning",
        )
    assert {line["level"] for line in lines} <= {"warning", "error", "critical"}, lines
