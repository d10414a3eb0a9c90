"""Every log line, from jitbot or from a library below it, is redacted; tracebacks carry no locals."""

import io
import json
import logging

import pytest

from jitbot import logs
from jitbot.redaction import Credentials

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
