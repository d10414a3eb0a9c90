"""Durations as people type them: `15m`, `2h`, `1h30m`, `1d` — parsed and printed."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

from jitbot.core.errors import UsageError, echo

UNIT_SECONDS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
MAX_DURATION = timedelta(days=3660)  # ten years: longer than any grant or review, far from timedelta's limits
_WHOLE = re.compile(r"(?:[0-9]{1,6}[smhd])+")  # ASCII digits only: no Arabic-Indic or full-width ones
_PART = re.compile(r"([0-9]{1,6})([smhd])")


def parse_duration(text: str) -> timedelta:
    """`1h30m` → 5400 s. Raises UsageError with an example for anything else (or for zero)."""
    cleaned = text.strip().lower()
    if not _WHOLE.fullmatch(cleaned):
        raise UsageError(f"`{echo(text)}` is not a duration: use a number and a unit (s, m, h, d), e.g. 15m or 1h30m.")
    seconds = sum(int(n) * UNIT_SECONDS[unit] for n, unit in _PART.findall(cleaned))
    if seconds == 0:
        raise UsageError("A duration must be longer than zero, e.g. 15m.")
    if seconds > MAX_DURATION.total_seconds():
        raise UsageError(f"`{echo(text)}` is too long: at most {MAX_DURATION.days}d.")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """5400 s → `1h30m`; zero or negative → `0s`. Whole seconds only."""
    remaining = max(int(value.total_seconds()), 0)
    if remaining == 0:
        return "0s"
    parts = []
    for unit, size in UNIT_SECONDS.items():
        count, remaining = divmod(remaining, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def retry_after(header: str | None, now: datetime) -> datetime | None:
    """The time a Retry-After header names (RFC 9110 §10.2.3: seconds, or an HTTP date, always in UTC); None when
    absent or unreadable."""
    if not header:
        return None
    if header.strip().isdigit():
        return now + timedelta(seconds=int(header))
    try:
        when = parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)  # "-0000" parses naive
