"""Sends slash commands, button clicks, modal submissions and events to a Bolt app, signed exactly as Slack signs
them."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

TEAM_DOMAIN = "jitbot-test"
APP_ID = "A0JITBOT"
BOT_USER_ID = "U0JITBOT"  # the stand-in's auth.test answer


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


def new_view_id() -> str:
    """Like Slack's view ids: `V` and ten upper-case letters or digits."""
    return "V" + "".join(secrets.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") for _ in range(10))


def view_state(values: Mapping[str, str], blocks: Sequence[Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """`view.state` as Slack sends it on submit: `values[block_id][action_id]`, typed by the element.

    With the `blocks` of the view as it was opened, every input block is there (an empty one as null, as
    Slack sends it), a `static_select` gives the chosen option as `selected_option` and a `plain_text_input`
    gives `value`. A value for a block the view does not have (or without `blocks`) is sent as text input
    whose action id is the block id — what a tampered payload would carry.
    """
    state: dict[str, Any] = {}
    for block in blocks or ():
        element = block.get("element")
        if block.get("type") != "input" or not isinstance(element, Mapping):
            continue
        chosen = values.get(str(block.get("block_id")))
        state[str(block["block_id"])] = {str(element["action_id"]): _element_state(element, chosen)}
    for block_id, text in values.items():
        if block_id not in state:
            state[block_id] = {block_id: {"type": "plain_text_input", "value": text}}
    return {"values": state}


def _element_state(element: Mapping[str, Any], chosen: str | None) -> dict[str, Any]:
    kind = str(element.get("type"))
    if kind == "static_select":
        if chosen is None:
            return {"type": kind, "selected_option": None}
        offered = [o for o in element.get("options", []) if o.get("value") == chosen]
        option = offered[0] if offered else {"text": {"type": "plain_text", "text": chosen}, "value": chosen}
        return {"type": kind, "selected_option": dict(option)}
    return {"type": kind, "value": chosen}


def view_submission_body(
    user_id: str,
    callback_id: str,
    values: Mapping[str, str],
    private_metadata: str = "",
    view_id: str | None = None,
    *,
    blocks: Sequence[Mapping[str, Any]] | None = None,
    team_id: str = "T0TEAM",
) -> bytes:
    """A `view_submission` of a modal, form-encoded as `payload=<json>` as Slack sends it (see `view_state`)."""
    the_id = view_id or new_view_id()
    payload = {
        "type": "view_submission",
        "team": {"id": team_id, "domain": TEAM_DOMAIN},
        "user": {"id": user_id, "username": user_id.lower(), "name": user_id.lower(), "team_id": team_id},
        "api_app_id": APP_ID,
        "token": "deprecated-verification-token",
        "trigger_id": trigger_id(),
        "view": {
            "id": the_id,
            "team_id": team_id,
            "type": "modal",
            "blocks": list(blocks or []),
            "private_metadata": private_metadata,
            "callback_id": callback_id,
            "state": view_state(values, blocks),
            "hash": f"{int(time.time())}.{secrets.token_hex(4)}",
            "title": {"type": "plain_text", "text": "jitbot"},
            "clear_on_close": False,
            "notify_on_close": False,
            "close": None,
            "submit": {"type": "plain_text", "text": "Submit"},
            "previous_view_id": None,
            "root_view_id": the_id,
            "app_id": APP_ID,
            "external_id": "",
            "app_installed_team_id": team_id,
            "bot_id": "B0JITBOT",
        },
        "response_urls": [],
        "is_enterprise_install": False,
        "enterprise": None,
    }
    return urlencode({"payload": json.dumps(payload)}).encode("utf-8")


def home_click_body(user_id: str, action_id: str, value: str, *, view_id: str, team_id: str = "T0TEAM") -> bytes:
    """A `block_actions` click on a button in the App Home tab: the container is the view, and there is no
    `channel`, `message` or `response_url` (there is nowhere to respond in place)."""
    payload = {
        "type": "block_actions",
        "user": {"id": user_id, "username": user_id.lower(), "team_id": team_id},
        "team": {"id": team_id, "domain": TEAM_DOMAIN},
        "api_app_id": APP_ID,
        "token": "deprecated-verification-token",
        "container": {"type": "view", "view_id": view_id},
        "trigger_id": trigger_id(),
        "view": {
            "id": view_id,
            "team_id": team_id,
            "type": "home",
            "blocks": [],
            "private_metadata": "",
            "callback_id": "",
            "state": {"values": {}},
            "hash": f"{int(time.time())}.{secrets.token_hex(4)}",
            "root_view_id": view_id,
            "app_id": APP_ID,
            "bot_id": "B0JITBOT",
        },
        "actions": [
            {
                "action_id": action_id,
                "block_id": "home",
                "value": value,
                "type": "button",
                "action_ts": f"{time.time():.6f}",
            }
        ],
        "is_enterprise_install": False,
        "enterprise": None,
    }
    return urlencode({"payload": json.dumps(payload)}).encode("utf-8")


def event_body(
    user_id: str, event_type: str = "app_home_opened", *, tab: str = "home", team_id: str = "T0TEAM"
) -> bytes:
    """An Events API delivery (`event_callback`), as JSON as Slack sends it; by default the user opening the
    app's Home tab."""
    now = time.time()
    payload = {
        "token": "deprecated-verification-token",
        "team_id": team_id,
        "api_app_id": APP_ID,
        "event": {
            "type": event_type,
            "user": user_id,
            "channel": "D" + user_id[1:],
            "tab": tab,
            "event_ts": f"{now:.6f}",
        },
        "type": "event_callback",
        "event_id": "Ev" + secrets.token_hex(5).upper(),
        "event_time": int(now),
        "authorizations": [
            {
                "enterprise_id": None,
                "team_id": team_id,
                "user_id": BOT_USER_ID,
                "is_bot": True,
                "is_enterprise_install": False,
            }
        ],
        "is_ext_shared_channel": False,
    }
    return json.dumps(payload).encode("utf-8")


def member_joined_body(user_id: str, channel: str, *, inviter: str = "U0ADMIN", team_id: str = "T0TEAM") -> bytes:
    """`member_joined_channel` as Slack delivers it when `user_id` joins `channel` (the Events API reference:
    user, channel, channel_type, team, inviter), in the envelope of event_body."""
    payload = json.loads(event_body(user_id, "member_joined_channel", team_id=team_id))
    payload["event"] = {
        "type": "member_joined_channel",
        "user": user_id,
        "channel": channel,
        "channel_type": "C",
        "team": team_id,
        "inviter": inviter,
        "event_ts": payload["event"]["event_ts"],
    }
    return json.dumps(payload).encode("utf-8")


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

    def submit_view(
        self,
        user_id: str,
        callback_id: str,
        values: Mapping[str, str],
        private_metadata: str = "",
        view_id: str | None = None,
        *,
        blocks: Sequence[Mapping[str, Any]] | None = None,
    ) -> Reply:
        """Submit the modal `callback_id` as `user_id` (Slack sends one view id per opened modal: pass the same
        `view_id` twice for a double submit). Pass the opened view's `blocks` to type the values as Slack does."""
        body = view_submission_body(user_id, callback_id, values, private_metadata, view_id, blocks=blocks)
        return self.post(body)

    def click_home(self, user_id: str, action_id: str, value: str, *, view_id: str) -> Reply:
        """Send a click on the button `action_id` carrying `value` in `user_id`'s App Home tab (`view_id`)."""
        return self.post(home_click_body(user_id, action_id, value, view_id=view_id))

    def event(self, body: bytes, *, retry_num: int = 0) -> Reply:
        """Deliver an Events API body (JSON); `retry_num` > 0 marks it as Slack's re-delivery of an earlier one."""
        headers = {**sign(self.signing_secret, body, int(self.clock())), "Content-Type": "application/json"}
        if retry_num:
            headers.update({"X-Slack-Retry-Num": str(retry_num), "X-Slack-Retry-Reason": "http_timeout"})
        return self.post(body, headers)

    def joined(self, user_id: str, channel: str) -> Reply:
        """`user_id` (jitbot's own bot user: BOT_USER_ID) was invited to `channel`."""
        return self.event(member_joined_body(user_id, channel))

    def open_home(self, user_id: str) -> Reply:
        """`user_id` opens the app's Home tab (`app_home_opened`)."""
        return self.event(event_body(user_id))
