"""`AwsProvider.check`, what `jitbot check --live` asks of an STS resource: caller identity and the role, in moto."""

import json
from dataclasses import replace
from datetime import timedelta

import boto3
import pytest

from jitbot.core.catalog import parse_catalog
from jitbot.core.errors import ProviderError
from jitbot.providers.aws import AwsProvider

ACCOUNT = "123456789012"  # moto's default account: the caller's too
ROLE = "jit-prod-db"
RESOURCE = parse_catalog(
    f"""
approver_channel: C0APPROVALS
resources:
  prod-db:
    provider: aws
    role_arn: arn:aws:iam::{ACCOUNT}:role/team/{ROLE}
    region: eu-west-1
    approvers: [U0BOB]
    max_duration: 4h
"""
).resources["prod-db"]


def create_role(max_session_seconds: int) -> None:
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": ACCOUNT}, "Action": "*"}]}
    boto3.client("iam").create_role(
        RoleName=ROLE, Path="/team/", AssumeRolePolicyDocument=json.dumps(trust), MaxSessionDuration=max_session_seconds
    )


def test_check_when_role_allows_max_duration_then_ok_naming_caller_and_role(moto_aws: None) -> None:
    create_role(4 * 3600)
    assert AwsProvider().check(RESOURCE) == (
        f"ok: running as arn:aws:sts::{ACCOUNT}:user/moto; direct: one set of credentials for the whole grant, up to"
        f" 4h; role arn:aws:iam::{ACCOUNT}:role/team/{ROLE} allows 14400 s sessions; room for 531 more early-ended"
        " sessions"
    )


def test_check_when_jitbot_runs_as_a_role_then_chaining_named_and_an_hour_per_set_is_enough(
    moto_aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_role(3600)  # an hour: all that role chaining can ask for anyway
    own = boto3.client("sts").assume_role(RoleArn=f"arn:aws:iam::{ACCOUNT}:role/team/{ROLE}", RoleSessionName="jb")
    for name, key in (("AWS_ACCESS_KEY_ID", "AccessKeyId"), ("AWS_SECRET_ACCESS_KEY", "SecretAccessKey")):
        monkeypatch.setenv(name, own["Credentials"][key])
    monkeypatch.setenv("AWS_SESSION_TOKEN", own["Credentials"]["SessionToken"])
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    shown = AwsProvider().check(RESOURCE)
    assert ":assumed-role/" in shown and "role chaining (jitbot runs as a role session)" in shown
    assert "renewed by DM before each hour ends, grants up to 4h" in shown


def test_check_when_role_missing_then_not_retryable_error_naming_get_role(moto_aws: None) -> None:
    with pytest.raises(ProviderError, match="AWS GetRole failed: NoSuchEntity") as raised:
        AwsProvider().check(RESOURCE)
    assert raised.value.retryable is False


def test_check_when_max_duration_beyond_role_session_then_not_retryable_error_with_fix(moto_aws: None) -> None:
    create_role(3600)
    with pytest.raises(ProviderError) as raised:
        AwsProvider().check(RESOURCE)
    assert str(raised.value) == (
        f"role {ROLE} allows sessions of 3600 s, but max_duration asks for 14400 s: raise the role's maximum "
        "session duration or lower max_duration"
    )
    assert raised.value.retryable is False


def test_check_when_max_duration_beyond_sts_limit_then_compared_at_sts_limit(moto_aws: None) -> None:
    create_role(12 * 3600)
    assert AwsProvider().check(replace(RESOURCE, max_duration=timedelta(hours=24))).startswith("ok: ")
