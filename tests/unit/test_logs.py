"""Every log line, from jitbot or from a library below it, is redacted; tracebacks carry no locals."""

import io
import json
import logging

import pytest

from jitbot.core import redaction
from jitbot.core.redaction import Credentials
from jitbot.observability import logs

pytestmark = pytest.mark.usefixtures("restore_logging")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("stream_type", [io.StringIO, Terminal])
def test_configure_when_a_secret_is_logged_anywhere_then_it_is_scrubbed(stream_type: type[io.StringIO]) -> None:
    stream = stream_type()
    logs.configure(stream)
    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYSECRETKEY1"
    Credentials({"AWS_SECRET_ACCESS_KEY": secret})
    logs.get("jitbot.test").info("issued", note=f"key {secret}")
    logging.getLogger("botocore.endpoint").warning("body: %s", secret)
    logging.getLogger("slack_sdk").error("token xoxb-1234-abcd sent")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        hidden = secret  # a local variable holding the secret  # noqa: F841
        logs.get("jitbot.test").exception("failed")
    text = stream.getvalue()
    assert secret not in text and "xoxb-1234-abcd" not in text and text.count("[REDACTED]") >= 3
    assert "RuntimeError" in text


def test_configure_when_not_a_terminal_then_one_json_object_per_line() -> None:
    stream = io.StringIO()
    logs.configure(stream)
    logs.get("jitbot.test").info("hello", request_id="r-abc234")
    line = json.loads(stream.getvalue().splitlines()[-1])
    assert (line["event"], line["request_id"], line["level"]) == ("hello", "r-abc234", "info")


@pytest.mark.parametrize(
    ("text", "redacted"),
    [
        ("AWS_SECRET_ACCESS_KEY=abc123", "AWS_SECRET_ACCESS_KEY=[REDACTED]"),
        ('{"SessionToken": "abc"}', '{"SessionToken": "[REDACTED]"}'),
        ("PassWord: hunter2", "PassWord: [REDACTED]"),
        ("pa\u017fsword=hunter2", "pa\u017fsword=[REDACTED]"),  # a long s: re's IGNORECASE takes it for an s
        ("sess\u0131on_token=abc", "sess\u0131on_token=[REDACTED]"),  # a dotless i, likewise
        ("pass word=x, a session", "pass word=x, a session"),
    ],
)
def test_redact_when_a_named_secret_in_any_case_or_script_then_masked_and_nothing_else(
    text: str, redacted: str
) -> None:
    """The pattern is skipped only for ASCII text naming no `secret`, `session` or `password`: a name in any case,
    or with a letter re's IGNORECASE folds to ASCII, is masked as before."""
    assert redaction.redact(text) == redacted
