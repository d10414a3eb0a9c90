"""Keep the process environment clean: jitbot reads settings only through Config, and tests set what they need."""

import pytest


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "SLACK_BOT_TOKEN",
        "SLACK_SIGNING_SECRET",
        "SLACK_APP_TOKEN",
        "SLACK_API_URL",
        "LOG_LEVEL",
        "WEB_CONCURRENCY",
        "GUNICORN_CMD_ARGS",
        "JITBOT_BIND",
        "HOST",
        "JITBOT_CONFIG",
        "AWS_ENDPOINT_URL",
        "AWS_PROFILE",
    ):
        monkeypatch.delenv(name, raising=False)
