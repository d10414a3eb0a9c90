"""Run jitbot's web side alone: Socket Mode when SLACK_APP_TOKEN is set, otherwise gunicorn on $PORT."""

from __future__ import annotations

import sys

from jitbot import runtime
from jitbot.cli import main

if __name__ == "__main__":
    rt = runtime.current(someone_waiting=True)  # a listener's Slack calls are made while Slack waits for the ack
    if rt.config.slack_app_token:
        from slack_bolt.adapter.socket_mode import SocketModeHandler

        from jitbot.web import build_bolt_app

        SocketModeHandler(build_bolt_app(rt), rt.config.slack_app_token).start()
    else:
        sys.exit(main(["web"]))
