"""How `jitbot demo` prints the Slack conversation it makes: each Web API call jitbot makes as a chat line, Block Kit
and mrkdwn as plain text, and the secrets in credential DMs masked."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, TextIO

from jitbot.testing.slack_standin import Call

SECRET_NAMES = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")  # masked in the transcript; the key id is not secret
WHERE_WIDTH = 15
INDENT = " " * (WHERE_WIDTH + len("jitbot: "))

_EXPORT = re.compile(r"export (AWS_\w+)=(\S+)")
_DATE = re.compile(r"<!date\^(\d+)\^[^>]*>")
_MENTION = re.compile(r"<(?:@|!subteam\^)([A-Z0-9]+)(?:\|[^>]*)?>")
_BOLD = re.compile(r"\*([^*\n]+)\*")


class Transcript:
    """Prints narration from the script and each Slack Web API call as a chat line, one line at a time."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.secrets: set[str] = set()
        self._lock = threading.Lock()
        self._held: list[str] | None = None
        self._edits: dict[tuple[str, str], str] = {}  # (channel, ts) → the edit last shown

    def say(self, text: str = "", *, from_slack: bool = False) -> None:
        with self._lock:
            if from_slack and self._held is not None:
                self._held.append(text)
                return
            self.out.write(text + "\n")
            self.out.flush()

    def chat(self, where: str, who: str, lines: list[str]) -> None:
        self.say(mask(chat_line(where, who, lines), self.secrets))

    def heading(self, text: str) -> None:
        self.say(f"\n── {text} " + "─" * max(3, 72 - len(text)))

    @contextmanager
    def holding(self) -> Iterator[None]:
        """Keep Slack's lines back while the script prints what a person did, so that cause comes first."""
        with self._lock:
            self._held = []
        try:
            yield
        finally:
            with self._lock:
                held, self._held = self._held or [], None
            for text in held:
                self.say(text)

    def on_call(self, call: Call) -> None:
        """The stand-in's observer: runs in its server thread for every Web API call jitbot makes."""
        self.secrets |= secrets_in(call.params)
        line = render_call(call)
        if line is None or self._is_repeat(call, line):
            return
        self.say(mask(line, self.secrets), from_slack=True)

    def _is_repeat(self, call: Call, line: str) -> bool:
        """An edit that changes nothing is invisible in Slack, so the transcript leaves it out too."""
        if call.method != "chat.update":
            return False
        key = (str(call.params.get("channel")), str(call.params.get("ts")))
        repeat, self._edits[key] = self._edits.get(key) == line, line
        return repeat


def render_call(call: Call) -> str | None:
    """One Web API call as a chat line; None for calls a person would not see."""
    params = call.params
    if call.method == "usergroups.users.list":
        return f"{'':<{WHERE_WIDTH}}(jitbot asks Slack who is in @{params.get('usergroup')} right now)"
    if call.method not in ("chat.postMessage", "chat.update", "chat.postEphemeral"):
        return None
    where = place(str(params.get("channel", "")))
    who = {
        "chat.update": "jitbot (edited)",
        "chat.postEphemeral": f"jitbot (only @{params.get('user')} sees)",
    }.get(call.method, "jitbot")
    return chat_line(where, who, flatten(params.get("blocks"), str(params.get("text", ""))))


def chat_line(where: str, who: str, lines: list[str]) -> str:
    """`#channel  who: first line`, the other lines indented under the first."""
    first, *rest = lines or [""]
    return f"{where:<{WHERE_WIDTH}}{who}: {first}" + "".join(f"\n{INDENT}{line}" for line in rest)


def place(channel: str) -> str:
    """`#C…` for a channel; `DM @U…` for a user or the app's DM with them (D…)."""
    return f"DM @U{channel[1:]}" if channel[:1] in ("U", "W", "D") else f"#{channel}"


def flatten(blocks: Any, text: str) -> list[str]:
    """Block Kit as readable lines: section text, context elements, buttons as `[Approve] [Deny]`."""
    lines = [readable(line) for line in block_lines(blocks) if line.strip("`")]
    return lines or [readable(text)]


def block_lines(blocks: Any) -> list[str]:
    """The mrkdwn lines of a message's blocks, as Slack would show them top to bottom."""
    lines: list[str] = []
    for block in blocks if isinstance(blocks, list) else []:
        if block.get("type") == "section":
            lines += block.get("text", {}).get("text", "").splitlines()
        elif block.get("type") == "context":
            lines += [element.get("text", "") for element in block.get("elements", [])]
        elif block.get("type") == "actions":
            lines.append(" ".join(f"[{e.get('text', {}).get('text', '?')}]" for e in block.get("elements", [])))
    return lines


def credentials_in(params: dict[str, Any]) -> dict[str, str]:
    """The `export AWS_…=…` values of a credentials DM (empty for any other message)."""
    return dict(_EXPORT.findall("\n".join(block_lines(params.get("blocks")))))


def readable(mrkdwn: str) -> str:
    """Slack mrkdwn for a terminal: mentions as @U…, dates as local clock times, no bold stars or fences."""
    text = _DATE.sub(lambda m: datetime.fromtimestamp(int(m.group(1))).strftime("%H:%M:%S"), mrkdwn)
    text = _MENTION.sub(r"@\1", text)
    text = _BOLD.sub(r"\1", text).replace("```", "")
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def secrets_in(params: dict[str, Any]) -> set[str]:
    exports = credentials_in(params)
    return {exports[name] for name in SECRET_NAMES if name in exports}


def mask(text: str, secrets: set[str]) -> str:
    """Each secret shown as its first 4 characters and `…`: enough to recognise, not enough to use."""
    for secret in secrets:
        text = text.replace(secret, secret[:4] + "…")
    return text
