"""Shared by the unit tests: AWS in-process (moto), with test credentials and nothing of the developer's."""

from collections.abc import Iterator

import pytest
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
