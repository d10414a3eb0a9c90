"""Secrets kept out of everything but the DM: a wrapper that never prints, and a scrubber for log text.

Every credential a provider issues is wrapped in `Credentials`, which registers each value with this
process's scrubber; the log pipeline passes every rendered line through `redact`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

MASK = "[REDACTED]"
_known: set[str] = set()
_PATTERNS = [
    re.compile(r"xox[abposr]-[A-Za-z0-9-]+"),  # Slack tokens
    re.compile(r"xapp-[A-Za-z0-9-]+"),
    re.compile(
        r"(?i)(secret_?access_?key|session_?token|aws_session_token|password)([\"']?\s*[:=]\s*[\"']?)[^\s\"',]+"
    ),
]
# Every match of the last pattern holds one of these, in any case: in ASCII text (where case is ASCII's) the pattern
# need only run where one is. Run on every line (re's IGNORECASE tries each position), it was half the instructions
# of writing an audit line.
_NAMED = ("secret", "session", "password")


class Credentials:
    """Name → value pairs that must only reach the requester's DM. repr() and str() show no value."""

    def __init__(self, fields: Mapping[str, str]) -> None:
        self._fields = dict(fields)
        for value in self._fields.values():
            remember(value)

    def fields(self) -> dict[str, str]:
        return dict(self._fields)

    def __repr__(self) -> str:
        return f"Credentials({', '.join(self._fields)}: {MASK})"

    __str__ = __repr__


def remember(value: str) -> None:
    """Scrub `value` from every log line this process writes from now on (short values are not secrets)."""
    if len(value) >= 8:
        _known.add(value)


def forget() -> None:
    """A job that issued credentials is over: its values leave the scrubber, which would otherwise grow with
    every grant a long-lived worker issues (and check each log line against all of them)."""
    _known.clear()


def redact(text: str) -> str:
    for value in _known:
        if value in text:
            text = text.replace(value, MASK)
    text = _PATTERNS[0].sub(MASK, text)
    text = _PATTERNS[1].sub(MASK, text)
    if text.isascii() and not any(name in text.lower() for name in _NAMED):
        return text
    return _PATTERNS[2].sub(lambda m: m.group(1) + m.group(2) + MASK, text)
