"""The `/access` grammar: command text → a typed command, or a UsageError carrying the exact reply."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from jitbot.durations import parse_duration
from jitbot.errors import UsageError, echo

USAGE = "\n".join(
    [
        "*Usage*",
        "• `/access request <resource> <duration> <reason…>`: ask for access, e.g."
        " `/access request prod-db 2h rotating keys for INC-123`",
        "• `/access report [period]`: the access review of the last 90d (or the period), as files by DM — admins",
        "• `/access help`: this text",
        "Durations: a number and a unit (s, m, h, d), e.g. `15m`, `2h`, `1h30m`.",
    ]
)
REQUEST_USAGE = "Usage: `/access request <resource> <duration> <reason…>`, e.g. `/access request prod-db 2h INC-123`"
MAX_REASON = 500


@dataclass(frozen=True)
class RequestAccess:
    resource: str
    duration: timedelta
    reason: str


@dataclass(frozen=True)
class ShowHelp:
    pass


@dataclass(frozen=True)
class ShowReport:
    period: timedelta


Command = RequestAccess | ShowHelp | ShowReport
REPORT_PERIOD = timedelta(days=90)


def parse_command(text: str) -> Command:
    """Parse what followed `/access`. Unknown input raises UsageError with the usage text."""
    words = text.split()
    if not words:
        return ShowHelp()
    verb, args = words[0].lower(), words[1:]
    if verb == "help":
        return ShowHelp()
    if verb == "request":
        return _parse_request(args)
    if verb == "report":
        return ShowReport(parse_duration(args[0]) if args else REPORT_PERIOD)
    raise UsageError(f"I don't know `{echo(verb)}`.\n{USAGE}")


def _parse_request(args: list[str]) -> RequestAccess:
    if len(args) < 3:
        missing = ("a resource", "a duration", "a reason")[len(args)]
        raise UsageError(f"Missing {missing}. {REQUEST_USAGE}")
    reason = " ".join(args[2:])
    if len(reason) > MAX_REASON:
        raise UsageError(f"The reason is {len(reason)} characters long; the limit is {MAX_REASON}.")
    return RequestAccess(resource=args[0], duration=parse_duration(args[1]), reason=reason)
