"""The `/access` grammar and durations, as a user types them."""

from datetime import timedelta

import pytest

from jitbot.core.commands import REPORT_PERIOD, RequestAccess, ShowHelp, ShowReport, parse_command
from jitbot.core.durations import format_duration, parse_duration
from jitbot.core.errors import UsageError


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("15m", 900), ("2h", 7200), ("1h30m", 5400), ("1d", 86400), ("90s", 90), ("1H", 3600), ("2h0m", 7200)],
)
def test_parse_duration_when_valid_then_seconds(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "2", "h", "2x", "-1h", "1.5h", "0m", "1h 30m", "99999999h", "1h30"])
def test_parse_duration_when_invalid_then_usage_error_with_example(text: str) -> None:
    with pytest.raises(UsageError, match=r"15m|zero"):
        parse_duration(text)


def test_format_duration_when_mixed_units_then_compact() -> None:
    assert format_duration(timedelta(seconds=5400)) == "1h30m"
    assert format_duration(timedelta(days=1, seconds=1)) == "1d1s"
    assert format_duration(timedelta(seconds=-5)) == "0s"


def test_parse_command_when_request_then_typed_command_with_whole_reason() -> None:
    command = parse_command("request prod-db 2h rotating keys for  INC-123")
    assert command == RequestAccess("prod-db", timedelta(hours=2), "rotating keys for INC-123")


@pytest.mark.parametrize("text", ["", "help", "HELP", "  help  extra"])
def test_parse_command_when_help_or_empty_then_help(text: str) -> None:
    assert parse_command(text) == ShowHelp()


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("breakglass", "Missing a resource"),
        ("request prod-db", "Missing a duration"),
        ("request prod-db 2h", "Missing a reason"),
        ("request prod-db soon because", "not a duration"),
        ("frobnicate now", "I don't know `frobnicate`"),
        ("request prod-db 2h " + "x" * 501, "limit is 500"),
    ],
)
def test_parse_command_when_malformed_then_usage_error_says_what(text: str, needle: str) -> None:
    with pytest.raises(UsageError, match=needle):
        parse_command(text)


def test_parse_command_when_unknown_verb_is_hostile_then_echo_is_clipped_and_inert() -> None:
    with pytest.raises(UsageError) as caught:
        parse_command("`" + "a" * 100)
    message = str(caught.value)
    assert "a" * 41 not in message and "*Usage*" in message


def test_parse_command_when_report_then_period_or_ninety_days() -> None:
    assert parse_command("report") == ShowReport(REPORT_PERIOD) == ShowReport(timedelta(days=90))
    assert parse_command("report 30d") == ShowReport(timedelta(days=30))
    with pytest.raises(UsageError, match="not a duration"):
        parse_command("report lately")
