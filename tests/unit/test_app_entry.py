"""`python app.py`: Socket Mode when SLACK_APP_TOKEN is set, with the runtime of a process whose listeners
answer while Slack waits (Slack calls fail fast instead of sleeping out a 429)."""

import runpy
from pathlib import Path
from typing import Any, ClassVar

import pytest
import slack_bolt.adapter.socket_mode

from jitbot import runtime

APP = Path(__file__).resolve().parents[2] / "app.py"


class FakeSocketMode:
    started: ClassVar[list["FakeSocketMode"]] = []

    def __init__(self, app: Any, app_token: str) -> None:
        self.app, self.app_token = app, app_token

    def start(self) -> None:
        FakeSocketMode.started.append(self)


def test_app_when_app_token_set_then_socket_mode_with_a_fail_fast_slack_client(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "jitbot.yml").write_text(
        "approver_channel: C0APPROVALS\nresources:\n  sandbox: {provider: fake, approvers: [U0BOB]}\n"
    )
    for name, value in {
        "SLACK_APP_TOKEN": "xapp-test",
        "SLACK_BOT_TOKEN": "xoxb-test",
        "SLACK_SIGNING_SECRET": "secret",
        "JITBOT_CONFIG": str(tmp_path / "jitbot.yml"),
        "REDIS_URL": "redis://127.0.0.1:1/0",  # nothing answers: start-up only warns, and no listener runs
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(slack_bolt.adapter.socket_mode, "SocketModeHandler", FakeSocketMode)
    runtime.current.cache_clear()
    try:
        runpy.run_path(str(APP), run_name="__main__")
        [handler] = FakeSocketMode.started
        assert handler.app_token == "xapp-test"
        slack = runtime.current(someone_waiting=True).notifier.client
        assert (slack.timeout, slack.retry_handlers) == (2, [])
        assert runtime.current.cache_info().currsize == 1  # the only runtime app.py built is that one
    finally:
        runtime.current.cache_clear()
