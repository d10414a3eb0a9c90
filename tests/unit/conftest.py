"""Shared by the unit tests: AWS in-process (moto), with test credentials and nothing of the developer's."""

import logging
from collections.abc import Iterator

import pytest
import structlog
from moto import mock_aws

from jitbot.testing import aws_limits

TEST_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture
def moto_aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """boto3 talks to moto in this process, as an account with test credentials; moto refuses what AWS does."""
    aws_limits.enforce()
    for name, value in TEST_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    with mock_aws():
        yield


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Logging as it was before the test: a test that configures jitbot's logging leaves no handler behind."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers, root.level = handlers, level
    structlog.reset_defaults()
