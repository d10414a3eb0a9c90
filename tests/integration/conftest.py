"""One real jitbot per module: embedded (or $REDIS_URL) Redis, the Procfile's processes, Slack stand-in, moto."""

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from jitbot.testing.stack import Stack

CATALOG = """
approver_channel: C0APPROVALS
alert_channel: C0SECURITY
admins: [U0ADMIN]
defaults:
  min_duration: 1s
  max_duration: 1h
resources:
  prod-db:
    description: Read the production exports bucket
    provider: aws
    role_arn: arn:aws:iam::123456789012:role/jit-prod-db
    region: eu-west-1
    session_policy:
      Version: "2012-10-17"
      Statement: [{Effect: Allow, Action: ["s3:GetObject"], Resource: ["arn:aws:s3:::production-data/*"]}]
    approvers: [U0BOB, S0DBAS]
  two-keys:
    provider: aws
    role_arn: arn:aws:iam::123456789012:role/jit-two-keys
    approvers: [U0BOB, U0CAROL]
    approvals: 2
  staging-logs:
    provider: aws
    role_arn: arn:aws:iam::123456789012:role/jit-staging-logs
    auto_approve: true
    max_duration: 30m
    duration: 30m
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    home: Path = tmp_path_factory.mktemp("stack")
    with Stack(home, CATALOG, redis_url=os.environ.get("REDIS_URL")) as running:
        running.slack.usergroups = {"S0DBAS": ["U0DBA"]}
        yield running


@pytest.fixture
def report(record_property: Callable[[str, object], None]) -> Iterator[Callable[[str, object], None]]:
    """Record a figure in the JUnit properties and print it; the test's wall time is added at the end."""
    started = time.monotonic()

    def note(name: str, value: object) -> None:
        record_property(name, value)
        print(f"[drill] {name} = {value}")

    yield note
    note("test_seconds", round(time.monotonic() - started, 1))
