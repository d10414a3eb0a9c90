"""The baseline for bench/ack.py: a Bolt app that only calls ack(), behind the same gunicorn settings as `jitbot web`.

Like jitbot, it answers as soon as its listener returns (process_before_response), the fastest a Bolt app can ack.

Run by bench/ack.py as: python bench/bare_app.py PORT SIGNING_SECRET SLACK_API_URL
"""

from __future__ import annotations

import re
import sys
from typing import Any

from slack_bolt import Ack, App
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_sdk import WebClient

from jitbot.config import Config
from jitbot.web import Server


def bare_app(secret: str, api_url: str) -> SlackRequestHandler:
    app = App(
        signing_secret=secret,
        client=WebClient(token="xoxb-bare", base_url=api_url),
        token_verification_enabled=False,
        process_before_response=True,  # as jitbot: answer when the listener returns, no 10 ms ack polling
    )

    def ack_only(ack: Ack, **_: Any) -> None:
        ack()

    app.command("/access")(ack_only)
    app.action(re.compile(".*"))(ack_only)
    return SlackRequestHandler(app)


class BareServer(Server):
    def __init__(self, port: int, secret: str, api_url: str) -> None:
        self.secret, self.api_url = secret, api_url
        super().__init__(Config(port=port))

    def load(self) -> Any:
        return bare_app(self.secret, self.api_url)


if __name__ == "__main__":
    BareServer(int(sys.argv[1]), sys.argv[2], sys.argv[3]).run()
