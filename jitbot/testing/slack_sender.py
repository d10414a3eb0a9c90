"""Sends slash commands and button clicks to a Bolt app, signed exactly as Slack signs them."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

TEAM_DOMAIN = "jitbot-test"
APP_ID = "A0JITBOT"


def trigger_id() -> str:
    """Like Slack's: unique per command or click (jitbot uses it to recognise a delivery seen before)."""
    return f"{time.time_ns() // 1000}.{secrets.randbelow(10**12)}.{secrets.token_hex(16)}"


def response_url(team_id: str) -> str:
    """The response_url Slack would hand the app for a command or an interaction."""
    return f"https://hooks.slack.com/commands/{team_id}/1/x"


def sign(secret: str, body: bytes, timestamp: int) -> dict[str, str]:
    """The headers Slack sends with `body`: timestamp, v0 HMAC-SHA256 signature and form content type."""
    base = b"v0:" + str(timestamp).encode("ascii") + b":" + body
    digest = hmac.new(secret.encode("utf-8"), base, hashlib.sha256).hexdigest()
    return {
        "X-Slack-Request-Timestamp": str(timestamp),
        "X-Slack-Signature": f"v0={digest}",
        "Content-Type": "application/x-www-form-urlencoded",
    }


def command_body(
    user_id: str, text: str, *, command: str = "/access", channel_id: str = "C0GENERAL", team_id: str = "T0TEAM"
) -> bytes:
    """A slash command payload, form-encoded as Slack sends it."""
    fields = {
        "token": "deprecated-verification-token",
        "team_id": team_id,
        "team_domain": TEAM_DOMAIN,
        "channel_id": channel_id,
        "channel_name": "general",
        "user_id": user_id,
        "user_name": user_id.lower(),
        "command": command,
        "text": text,
        "api_app_id": APP_ID,
        "response_url": response_url(team_id),
        "trigger_id": trigger_id(),
    }
    return urlencode(fields).encode("utf-8")


def click_body(
    user_id: str, action_id: str, value: str, *, channel_id: str, message_ts: str, team_id: str = "T0TEAM"
) -> bytes:
    """A `block_actions` interaction for one button click, form-encoded as `payload=<json>` as Slack sends it."""
    payload = {
        "type": "block_actions",
        "user": {"id": user_id, "username": user_id.lower(), "team_id": team_id},
        "team": {"id": team_id, "domain": TEAM_DOMAIN},
        "api_app_id": APP_ID,
        "container": {"type": "message", "message_ts": message_ts, "channel_id": channel_id, "is_ephemeral": False},
        "channel": {"id": channel_id, "name": "directmessage" if channel_id.startswith("D") else "general"},
        "message": {"ts": message_ts, "text": ""},
        "trigger_id": trigger_id(),
        "response_url": response_url(team_id),
        "actions": [
            {
                "action_id": action_id,
                "block_id": "decide",
                "value": value,
                "type": "button",
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }
    return urlencode({"payload": json.dumps(payload)}).encode("utf-8")


@dataclass(frozen=True)
class Reply:
    """What the app answered: HTTP status, body text and seconds taken."""

    status: int
    body: str
    elapsed: float

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


class SlackSender:
    """Posts signed requests to a Bolt app's `/slack/events` URL, as Slack does."""

    def __init__(self, url: str, signing_secret: str, clock: Callable[[], float] = time.time) -> None:
        self.url = url
        self.signing_secret = signing_secret
        self.clock = clock

    def post(self, body: bytes, headers: dict[str, str] | None = None, *, timestamp: int | None = None) -> Reply:
        """POST `body`, signed unless `headers` are given; HTTP errors come back as a Reply, not an exception."""
        if headers is None:
            headers = sign(self.signing_secret, body, int(self.clock()) if timestamp is None else timestamp)
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        started = time.monotonic()
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                status, text = response.status, response.read().decode("utf-8")
        except urllib.error.HTTPError as error:
            status, text = error.code, error.read().decode("utf-8")
        return Reply(status, text, time.monotonic() - started)

    def command(self, user_id: str, text: str) -> Reply:
        """Send `/access <text>` as `user_id`."""
        return self.post(command_body(user_id, text))

    def click(self, user_id: str, action_id: str, value: str, *, channel_id: str, message_ts: str) -> Reply:
        """Send a click on the button `action_id` carrying `value`, in the message at (channel_id, message_ts)."""
        return self.post(click_body(user_id, action_id, value, channel_id=channel_id, message_ts=message_ts))
