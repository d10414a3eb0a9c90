"""The AWS provider: pure AssumeRole/deny builders, then grant and revoke against moto in-process."""

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from jitbot.catalog import parse_catalog
from jitbot.domain import AccessRequest, approve, open_request
from jitbot.errors import ProviderError
from jitbot.providers.aws import (
    DENY_PREFIX,
    STS_MAX_SECONDS,
    STS_MIN_SECONDS,
    AwsProvider,
    _call,
    assume_role_params,
    deny_document,
    prunable,
    role_name,
)
from jitbot.redaction import Credentials

ACCOUNT = "123456789012"
ROLE = "jit-prod-db"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/{ROLE}"
SESSION_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": ["arn:aws:s3:::production-data/*"]}],
}
CATALOG = parse_catalog(
    f"""
approver_channel: C0APPROVALS
resources:
  prod-db:
    provider: aws
    role_arn: {ROLE_ARN}
    region: us-east-1
    session_policy: {json.dumps(SESSION_POLICY)}
    approvers: [U0BOB]
    max_duration: 12h
  plain:
    provider: aws
    role_arn: arn:aws:iam::{ACCOUNT}:role/team/data/jit-plain
    approvers: [U0BOB]
"""
)
DB = CATALOG.resources["prod-db"]
PLAIN = CATALOG.resources["plain"]
TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
            "Action": ["sts:AssumeRole", "sts:SetSourceIdentity"],
        }
    ],
}


def request(
    request_id: str = "r-abc234", user: str = "U0ALICE", duration: timedelta = timedelta(hours=1)
) -> AccessRequest:
    opened, _ = open_request(request_id, user, "prod-db", duration, "INC-1", datetime.now(UTC))
    return approve(opened, "U0BOB", 1, datetime.now(UTC))[0]


def client_error(code: str, message: str = "slow down") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, "AssumeRole")


def raising(error: Exception):
    def call(*args: object, **kwargs: object) -> None:
        raise error

    return call


@pytest.fixture
def aws(moto_aws: None) -> Iterator[None]:
    boto3.client("iam").create_role(RoleName=ROLE, AssumeRolePolicyDocument=json.dumps(TRUST))
    yield


def policies() -> list[str]:
    return boto3.client("iam").list_role_policies(RoleName=ROLE)["PolicyNames"]


# --- pure builders --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("duration", "seconds"),
    [
        (timedelta(minutes=5), STS_MIN_SECONDS),
        (timedelta(minutes=15), 900),
        (timedelta(hours=2, milliseconds=1), 7201),
        (timedelta(hours=12), STS_MAX_SECONDS),
        (timedelta(hours=20), STS_MAX_SECONDS),
    ],
)
def test_assume_role_params_when_duration_then_clamped_to_sts_bounds(duration: timedelta, seconds: int) -> None:
    assert assume_role_params(request(duration=duration), DB)["DurationSeconds"] == seconds


def test_assume_role_params_when_session_policy_then_compact_json_and_identity() -> None:
    params = assume_role_params(request(), DB)
    assert params["RoleArn"] == ROLE_ARN
    assert params["RoleSessionName"] == "jit-r-abc234-U0ALICE"
    assert params["SourceIdentity"] == "U0ALICE"
    assert params["Policy"] == json.dumps(SESSION_POLICY, separators=(",", ":")) and " " not in params["Policy"]
    assert json.loads(params["Policy"]) == SESSION_POLICY


def test_assume_role_params_when_no_session_policy_then_no_policy_key() -> None:
    assert "Policy" not in assume_role_params(request(), PLAIN)


def test_assume_role_params_when_long_user_id_then_session_name_at_most_64() -> None:
    name = assume_role_params(request(user="W" + "X" * 80), DB)["RoleSessionName"]
    assert len(name) == 64 and name.startswith("jit-r-abc234-W")


def test_deny_document_then_denies_everything_to_that_session_only() -> None:
    document = json.loads(deny_document(request()))
    (statement,) = document["Statement"]
    assert document["Version"] == "2012-10-17"
    assert (statement["Effect"], statement["Action"], statement["Resource"]) == ("Deny", "*", "*")
    assert statement["Condition"] == {"StringLike": {"aws:userid": "*:jit-r-abc234-U0ALICE"}}


def test_prunable_when_mixed_names_then_only_stale_jitbot_denies() -> None:
    now = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    stamp = int(now.timestamp())
    names = [
        f"{DENY_PREFIX}r-old234-{stamp - 301}",  # more than 5 minutes past: prune
        f"{DENY_PREFIX}r-edge23-{stamp - 300}",  # exactly 5 minutes: keep
        f"{DENY_PREFIX}r-new234-{stamp + 3600}",  # credentials still live: keep
        f"other-policy-{stamp - 86400}",  # not ours
        f"{DENY_PREFIX}r-bad234-notanumber",
        "AllowS3",
    ]
    assert prunable(names, now) == [f"{DENY_PREFIX}r-old234-{stamp - 301}"]


@pytest.mark.parametrize(
    ("arn", "name"),
    [
        (ROLE_ARN, ROLE),
        (f"arn:aws:iam::{ACCOUNT}:role/team/data/jit-plain", "jit-plain"),
        (f"arn:aws-us-gov:iam::{ACCOUNT}:role/a/b", "b"),
    ],
)
def test_role_name_when_arn_with_or_without_path_then_bare_role_name(arn: str, name: str) -> None:
    assert role_name(arn) == name


# --- _call: SDK errors become ProviderError ---------------------------------------------------------


@pytest.mark.parametrize("code", ["Throttling", "ThrottlingException", "RequestLimitExceeded", "ServiceUnavailable"])
def test_call_when_throttled_then_retryable_provider_error(code: str) -> None:
    with pytest.raises(ProviderError, match=f"AWS AssumeRole failed: {code}: slow down") as raised:
        _call("AssumeRole", raising(client_error(code)))
    assert raised.value.retryable is True


@pytest.mark.parametrize("code", ["AccessDenied", "NoSuchEntity", "ValidationError", "MalformedPolicyDocument"])
def test_call_when_refused_then_not_retryable(code: str) -> None:
    with pytest.raises(ProviderError, match=f"AWS PutRolePolicy failed: {code}") as raised:
        _call("PutRolePolicy", raising(client_error(code, "no")))
    assert raised.value.retryable is False


def test_call_when_unreachable_then_retryable_and_names_operation() -> None:
    error = EndpointConnectionError(endpoint_url="https://sts.amazonaws.com")
    with pytest.raises(ProviderError, match="AWS AssumeRole could not be reached: EndpointConnectionError") as raised:
        _call("AssumeRole", raising(error))
    assert raised.value.retryable is True


def test_call_when_ok_then_passes_arguments_and_returns_result() -> None:
    assert _call("Op", lambda a, b: a + b, 1, b=2) == 3


# --- grant and revoke against moto ------------------------------------------------------------------


def test_grant_when_role_exists_then_handle_without_secret_and_working_credentials(aws: None) -> None:
    issued = AwsProvider().grant(request(), DB, datetime.now(UTC))
    fields = issued.credentials.fields()
    assert set(fields) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION"}
    assert issued.handle["session_name"] == "jit-r-abc234-U0ALICE"
    assert issued.handle["assumed_role_id"].endswith(":jit-r-abc234-U0ALICE")
    assert datetime.fromisoformat(issued.handle["credentials_expire_at"]).tzinfo is not None
    assert set(issued.handle) == {"session_name", "assumed_role_id", "credentials_expire_at"}
    secrets = (fields["AWS_SECRET_ACCESS_KEY"], fields["AWS_SESSION_TOKEN"])
    assert not any(secret in json.dumps(issued.handle) for secret in secrets)
    session = boto3.session.Session(
        aws_access_key_id=fields["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=fields["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=fields["AWS_SESSION_TOKEN"],
        region_name=fields["AWS_REGION"],
    )
    assert session.client("sts").get_caller_identity()["Arn"].endswith("/jit-r-abc234-U0ALICE")


def test_grant_then_credentials_repr_and_str_show_no_value(aws: None) -> None:
    credentials = AwsProvider().grant(request(), DB, datetime.now(UTC)).credentials
    assert isinstance(credentials, Credentials)
    for shown in (repr(credentials), str(credentials)):
        assert "AWS_SECRET_ACCESS_KEY" in shown and "[REDACTED]" in shown
        assert not any(value in shown for value in credentials.fields().values())


def test_grant_when_credentials_expire_then_at_least_sts_minimum(aws: None) -> None:
    before = datetime.now(UTC)
    issued = AwsProvider().grant(request(duration=timedelta(minutes=5)), DB, before)
    expires = datetime.fromisoformat(issued.handle["credentials_expire_at"])
    assert expires >= before + timedelta(seconds=STS_MIN_SECONDS) - timedelta(seconds=1)


def test_grant_when_sts_refuses_then_provider_error_naming_assume_role(
    aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_client = boto3.client

    def client(service: str, **kwargs: object):
        made = real_client(service, **kwargs)
        made.assume_role = raising(client_error("AccessDenied", "not authorized to perform sts:AssumeRole"))
        return made

    monkeypatch.setattr(boto3, "client", client)
    with pytest.raises(ProviderError, match="AWS AssumeRole failed: AccessDenied: not authorized") as raised:
        AwsProvider().grant(request(), DB, datetime.now(UTC))
    assert raised.value.retryable is False


def granted(provider: AwsProvider, request_id: str = "r-abc234") -> tuple[AccessRequest, datetime]:
    """The request as the store holds it once ACTIVE: with the grant's handle."""
    now = datetime.now(UTC)
    approved = request(request_id)
    issued = provider.grant(approved, DB, now)
    return replace(approved, grant=issued.handle, granted_at=now, expires_at=now + approved.duration), now


def test_revoke_when_active_then_deny_policy_on_role_for_that_session(aws: None) -> None:
    provider = AwsProvider()
    active, now = granted(provider)
    provider.revoke(active, DB, now)
    expires = datetime.fromisoformat(active.grant["credentials_expire_at"])
    assert policies() == [f"jitbot-deny-r-abc234-{int(expires.timestamp())}"]
    document = boto3.client("iam").get_role_policy(RoleName=ROLE, PolicyName=policies()[0])["PolicyDocument"]
    document = json.loads(document) if isinstance(document, str) else document
    assert document["Statement"][0]["Condition"] == {"StringLike": {"aws:userid": "*:jit-r-abc234-U0ALICE"}}
    assert document["Statement"][0]["Effect"] == "Deny"


def test_revoke_when_repeated_then_still_one_policy_for_the_request(aws: None) -> None:
    provider = AwsProvider()
    active, now = granted(provider)
    provider.revoke(active, DB, now)
    provider.revoke(active, DB, now + timedelta(seconds=30))
    assert len([name for name in policies() if name.startswith("jitbot-deny-r-abc234-")]) == 1


def test_revoke_when_a_day_later_then_old_deny_pruned(aws: None) -> None:
    provider = AwsProvider()
    old, now = granted(provider, "r-old234")
    provider.revoke(old, DB, now)
    later = now + timedelta(days=1)
    fresh = replace(request("r-new234"), grant={"credentials_expire_at": (later + timedelta(hours=1)).isoformat()})
    provider.revoke(fresh, DB, later)
    assert policies() == [f"jitbot-deny-r-new234-{int((later + timedelta(hours=1)).timestamp())}"]


def test_revoke_when_credentials_long_expired_then_no_new_deny_and_old_pruned(aws: None) -> None:
    provider = AwsProvider()
    active, now = granted(provider)
    provider.revoke(active, DB, now)
    provider.revoke(active, DB, now + timedelta(days=1))
    assert policies() == []


def test_revoke_when_never_granted_then_deny_until_sts_maximum(aws: None) -> None:
    now = datetime.now(UTC)
    AwsProvider().revoke(request(), DB, now)
    (name,) = policies()
    assert name == f"jitbot-deny-r-abc234-{int((now + timedelta(seconds=STS_MAX_SECONDS)).timestamp())}"


def test_revoke_when_role_missing_then_not_retryable_error_naming_operation(aws: None) -> None:
    boto3.client("iam").delete_role(RoleName=ROLE)
    with pytest.raises(
        ProviderError, match=r"AWS (PutRolePolicy|ListRolePolicies) failed: NoSuchEntity: Role jit-prod-db not found"
    ) as raised:
        AwsProvider().revoke(request(), DB, datetime.now(UTC))
    assert raised.value.retryable is False


def quota_on_inline_policies(monkeypatch: pytest.MonkeyPatch, limit: int) -> None:
    """IAM's aggregate quota on a role's inline policies (10,240 characters), which moto does not enforce."""
    real_client = boto3.client

    def used(iam, role: str) -> int:
        total = 0
        for name in iam.list_role_policies(RoleName=role)["PolicyNames"]:
            document = iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
            total += len(document if isinstance(document, str) else json.dumps(document, separators=(",", ":")))
        return total

    def client(service: str, **kwargs: object):
        made = real_client(service, **kwargs)
        if service == "iam":
            put = made.put_role_policy

            def limited(**params: str) -> object:
                if used(made, params["RoleName"]) + len(params["PolicyDocument"]) > limit:
                    message = f"Maximum policy size of {limit} bytes exceeded for role {params['RoleName']}"
                    raise ClientError({"Error": {"Code": "LimitExceeded", "Message": message}}, "PutRolePolicy")
                return put(**params)

            made.put_role_policy = limited
        return made

    monkeypatch.setattr(boto3, "client", client)


def test_revoke_when_inline_quota_full_of_stale_denies_then_prunes_them_and_denies(
    aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = datetime.now(UTC)
    iam = boto3.client("iam")
    for request_id in ("r-old234", "r-old567"):  # denies of sessions that expired yesterday
        name = f"{DENY_PREFIX}{request_id}-{int((now - timedelta(days=1)).timestamp())}"
        iam.put_role_policy(RoleName=ROLE, PolicyName=name, PolicyDocument=deny_document(request(request_id)))
    quota_on_inline_policies(monkeypatch, limit=2 * len(deny_document(request("r-old234"))))  # full
    expires = now + timedelta(hours=1)
    fresh = replace(request("r-new234"), grant={"credentials_expire_at": expires.isoformat()})
    AwsProvider().revoke(fresh, DB, now)
    assert policies() == [f"{DENY_PREFIX}r-new234-{int(expires.timestamp())}"]
