"""Block Kit building blocks shared by every surface: the reply to a command, escaping user text, times,
mentions, sections and buttons. Pure functions of their arguments; user text is always escaped here."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jitbot.core.domain import AccessRequest
from jitbot.core.durations import format_duration
from jitbot.core.events import AUTO
from jitbot.slack import ids

Block = dict[str, Any]
View = dict[str, Any]


@dataclass(frozen=True)
class Reply:
    """An ephemeral answer to a command: text, and blocks when there is more to show than text."""

    text: str
    blocks: list[Block] | None = None


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")  # and bidi overrides
SHOWN_REASON = 300
SHOWN_FAILURE = 1000  # why jitbot could not grant: the cloud's refusal and what an admin must change, all of it


def escape(text: str, limit: int = SHOWN_REASON) -> str:
    """User text made inert: `<!channel>`, `<@U…>` and links don't ping or render; long text is cut."""
    cleaned = _CONTROL.sub("", text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return cleaned if len(cleaned) <= limit else cleaned[:limit] + "… (truncated)"


def when(moment: datetime) -> str:
    """A time every reader sees in their own time zone, with a UTC fallback."""
    epoch = int(moment.timestamp())
    return f"<!date^{epoch}^{{date_short_pretty}} {{time}}|{moment:%Y-%m-%d %H:%M} UTC>"


def mention(user: str | None) -> str:
    return f"<@{user}>" if user and user != AUTO else AUTO


def request_summary(request: AccessRequest) -> str:
    return f"<@{request.requester}> asks for `{request.resource}` for {format_duration(request.duration)}"


def section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


def button(label: str, action_id: str, value: str, style: str | None = None) -> Block:
    button: Block = {
        "type": "button",
        "text": {"type": "plain_text", "text": label},
        "action_id": action_id,
        "value": value,
    }
    if style:
        button["style"] = style
    return button


def decision_buttons(request_id: str) -> Block:
    return {
        "type": "actions",
        "block_id": f"decide-{request_id}",
        "elements": [
            button("Approve", ids.APPROVE, request_id, "primary"),
            button("Deny", ids.DENY, request_id, "danger"),
        ],
    }
