"""`python app.py`: Socket Mode when SLACK_APP_TOKEN is set, with the runtime of a process whose listeners
answer while Slack waits (Slack calls fail fast instead of sleeping out a 429), no signing secret, and /livez and
/readyz served beside the connection."""

import json
import runpy
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, ClassVar

import pytest
import slack_bolt.adapter.socket_mode

from jitbot import runtime
from jitbot.testing.host import free_port
from jitbot.testing.slack_standin import SlackStandIn

APP = Path(__file__).resolve().parents[2] / "app.py"


class FakeSocketMode:
    started: ClassVar[list["FakeSocketMode"]] = []
    probes = ""  # the base URL of the probes, asked while the connection "runs"

    def __init__(self, app: Any, app_token: str) -> None:
        self.app, self.app_token = app, app_token
        self.answers: dict[str, tuple[int, dict[str, str]]] = {}

    def start(self) -> None:
        FakeSocketMode.started.append(self)
        for path in ("/livez", "/readyz"):
            try:
                with urllib.request.urlopen(FakeSocketMode.probes + path, timeout=5) as answer:
                    self.answers[path] = answer.status, json.loads(answer.read())
            except urllib.error.HTTPError as refused:
                self.answers[path] = refused.code, json.loads(refused.read())


def test_app_when_app_token_set_then_socket_mode_with_a_fail_fast_slack_client(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "jitbot.yml").write_text(
        "approver_channel: C0APPROVALS\nresources:\n  sandbox: {provider: fake, approvers: [U0BOB]}\n"
    )
    port, standin = free_port(), SlackStandIn().start()
    for name, value in {  # no SLACK_SIGNING_SECRET: Socket Mode never uses it
        "SLACK_APP_TOKEN": "xapp-test",
        "SLACK_BOT_TOKEN": "xoxb-test",
        "SLACK_API_URL": standin.url,
        "JITBOT_CONFIG": str(tmp_path / "jitbot.yml"),
        "REDIS_URL": "redis://127.0.0.1:1/0",  # nothing answers: start-up only warns, and no listener runs
        "JITBOT_BIND": f"127.0.0.1:{port}",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(slack_bolt.adapter.socket_mode, "SocketModeHandler", FakeSocketMode)
    monkeypatch.setattr(FakeSocketMode, "probes", f"http://127.0.0.1:{port}")
    runtime.current.cache_clear()
    try:
        with pytest.raises(SystemExit) as done:
            runpy.run_path(str(APP), run_name="__main__")
        assert done.value.code == 0
        [handler] = FakeSocketMode.started
        assert handler.app_token == "xapp-test"
        assert handler.answers["/livez"] == (200, {"status": "ok"})
        assert handler.answers["/readyz"][0] == 503 and handler.answers["/readyz"][1]["redis"] == "unreachable"
        with pytest.raises(urllib.error.URLError):  # the probes stop with the connection
            urllib.request.urlopen(f"http://127.0.0.1:{port}/livez", timeout=2)
        slack = runtime.current(someone_waiting=True).notifier.client
        assert (slack.timeout, slack.retry_handlers) == (2, [])
        assert runtime.current.cache_info().currsize == 1  # the only runtime app.py built is that one
    finally:
        runtime.current.cache_clear()
        standin.stop()
