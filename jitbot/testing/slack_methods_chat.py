"""The Slack stand-in's chat methods (chat.postMessage, chat.update, conversations.open) and the messages they keep."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any


@dataclass
class _Message:
    text: Any
    blocks: Any = field(default=None)


def dm_channel(channel: str) -> str:
    """The channel Slack posts to for `channel`: a user id (U…/W…) becomes the app's DM with that user (D…)."""
    return "D" + channel[1:] if channel[:1] in ("U", "W") else channel


class ChatMethods:
    """Mixed into SlackStandIn, whose `__init__` sets the state declared here and which serves the calls."""

    channels: dict[str, dict[str, Any]]  # see DirectoryMethods
    _cond: threading.Condition
    _messages: dict[tuple[str, str], _Message]  # (channel, ts) → the message as last posted or updated
    _ts: int  # the last message ts handed out, as a count

    def message(self, channel: str, ts: str) -> dict[str, Any]:
        """The current `text` and `blocks` of a posted message, after any updates (KeyError if never posted)."""
        with self._cond:
            stored = self._messages[(dm_channel(channel), ts)]
            return {"text": stored.text, "blocks": stored.blocks}

    def _next_ts(self) -> str:
        self._ts += 1
        return f"{1700000000 + self._ts // 1_000_000}.{self._ts % 1_000_000:06d}"

    def _post_message(self, params: dict[str, Any]) -> dict[str, Any]:
        # https://api.slack.com/methods/chat.postMessage#errors: `not_in_channel` (the bot is not a member; jitbot
        # has no chat:write.public) and `is_archived` — for a channel a test described in `channels`
        described = self.channels.get(str(params.get("channel", "")))
        if described is not None and described.get("is_archived"):
            return {"ok": False, "error": "is_archived"}
        if described is not None and not described.get("is_member", True):
            return {"ok": False, "error": "not_in_channel"}
        channel, ts = dm_channel(str(params.get("channel", ""))), self._next_ts()
        self._messages[(channel, ts)] = _Message(params.get("text"), params.get("blocks"))
        return {"ok": True, "channel": channel, "ts": ts, "message": {"text": params.get("text"), "ts": ts}}

    def _update(self, params: dict[str, Any]) -> dict[str, Any]:
        channel, ts = dm_channel(str(params.get("channel", ""))), str(params.get("ts", ""))
        if (channel, ts) not in self._messages:
            return {"ok": False, "error": "message_not_found"}
        self._messages[(channel, ts)] = _Message(params.get("text"), params.get("blocks"))
        return {"ok": True, "channel": channel, "ts": ts, "text": params.get("text")}

    def _open_conversation(self, params: dict[str, Any]) -> dict[str, Any]:
        first = str(params.get("users", "")).split(",")[0]
        return {"ok": True, "channel": {"id": "D" + first[1:]}}
