"""Run jitbot's web side alone: Socket Mode (`jitbot socket`) when SLACK_APP_TOKEN is set, otherwise `jitbot web`."""

from __future__ import annotations

import sys

from jitbot.config import Config
from jitbot.core.errors import ConfigError
from jitbot.ops.cli import main


def command() -> str:
    try:
        return "socket" if Config.from_env().slack_app_token else "web"
    except ConfigError:  # a malformed setting: either command names it, in one line
        return "web"


if __name__ == "__main__":
    sys.exit(main([command()]))
