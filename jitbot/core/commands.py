"""The `/access` grammar: command text → a typed command, or a UsageError carrying the exact reply."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

from jitbot.core.durations import parse_duration
from jitbot.core.errors import UsageError, echo

USAGE = "\n".join(
    [
        "*Usage*",
        "• `/access request <resource> <duration> <reason…>`: ask for access, e.g."
        " `/access request prod-db 2h rotating keys for INC-123`",
        "• `/access request`: the same, in a form",
        "• `/access list`: your pending requests and active grants · `/access list all`: everyone's — approvers",
        "• `/access extend <id> <duration> [reason]`: more time on an active grant, through the same approval",
        "• `/access revoke <id>`: end an active grant now · `/access cancel <id>`: withdraw a pending request",
        "• `/access resources`: what you can ask for, for how long, and who approves",
        "• `/access breakglass <resource> <duration> <reason…>`: emergency access without approval, where allowed;"
        " alerts security and must be reviewed",
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
class BreakGlass:
    resource: str
    duration: timedelta
    reason: str


@dataclass(frozen=True)
class OpenRequestForm:
    pass


@dataclass(frozen=True)
class ShowList:
    everyone: bool
    offset: int = 0  # the first entry shown: the command shows the first page, a More click a later one


@dataclass(frozen=True)
class Revoke:
    request_id: str


@dataclass(frozen=True)
class Cancel:
    request_id: str


@dataclass(frozen=True)
class Extend:
    request_id: str
    duration: timedelta
    reason: str


@dataclass(frozen=True)
class ShowResources:
    pass


@dataclass(frozen=True)
class ShowHelp:
    pass


@dataclass(frozen=True)
class ShowReport:
    period: timedelta


Command = (
    RequestAccess
    | BreakGlass
    | OpenRequestForm
    | ShowList
    | Revoke
    | Cancel
    | Extend
    | ShowResources
    | ShowHelp
    | ShowReport
)
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
        return _parse_request(args) if args else OpenRequestForm()
    if verb == "breakglass":
        request = _parse_request(args, "breakglass")
        return BreakGlass(request.resource, request.duration, request.reason)
    if verb == "list":
        return _parse_list(args)
    if verb in ("revoke", "cancel"):
        request_id = _one_id(verb, args)
        return Revoke(request_id) if verb == "revoke" else Cancel(request_id)
    if verb == "extend":
        return _parse_extend(args)
    if verb == "resources":
        return ShowResources()
    if verb == "report":
        return ShowReport(parse_duration(args[0]) if args else REPORT_PERIOD)
    raise UsageError(f"I don't know `{echo(verb)}`.\n{USAGE}")


def _parse_request(args: list[str], verb: str = "request") -> RequestAccess:
    if len(args) < 3:
        missing = ("a resource", "a duration", "a reason")[len(args)]
        usage = REQUEST_USAGE.replace("request", verb, 2)
        raise UsageError(f"Missing {missing}. {usage}")
    return RequestAccess(resource=args[0], duration=parse_duration(args[1]), reason=_reason(args[2:]))


def _parse_list(args: list[str]) -> ShowList:
    if not args:
        return ShowList(everyone=False)
    if [a.lower() for a in args] == ["all"]:
        return ShowList(everyone=True)
    raise UsageError(f"`/access list` takes nothing or `all`, not `{echo(' '.join(args))}`.")


_PAGE_VALUE = re.compile(r"(mine|all):(\d{1,6})")


def page_value(page: ShowList) -> str:
    """A More button's value: which list and where the page starts, nothing else (the clicker sees only what
    the list would show them; a payload can be forged)."""
    return f"{'all' if page.everyone else 'mine'}:{page.offset}"


def parse_page(value: str) -> ShowList:
    """A More click's value back into the page it asks for; any other value is a forged payload."""
    found = _PAGE_VALUE.fullmatch(value)
    if found is None:
        raise UsageError(f"`{echo(value)}` is not a page of the list; `/access list` shows it from the start.")
    return ShowList(everyone=found.group(1) == "all", offset=int(found.group(2)))


def _one_id(verb: str, args: list[str]) -> str:
    if len(args) != 1:
        raise UsageError(f"Usage: `/access {verb} <id>`, e.g. `/access {verb} r-7k3q9x` (`/access list` shows ids).")
    return args[0].lower()


def _parse_extend(args: list[str]) -> Extend:
    if len(args) < 2:
        raise UsageError("Usage: `/access extend <id> <duration> [reason]`, e.g. `/access extend r-7k3q9x 30m INC-123`")
    return Extend(args[0].lower(), parse_duration(args[1]), _reason(args[2:]))


def _reason(words: list[str]) -> str:
    reason = " ".join(words)
    if len(reason) > MAX_REASON:
        raise UsageError(f"The reason is {len(reason)} characters long; the limit is {MAX_REASON}.")
    return reason
