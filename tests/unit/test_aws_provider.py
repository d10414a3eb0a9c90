"""The AWS provider: pure AssumeRole/deny builders, then grant and revoke against moto in-process."""

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import boto3
import fakeredis
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError, ReadTimeoutError

from jitbot.core.catalog import parse_catalog
from jitbot.core.domain import AccessRequest, approve, open_request
from jitbot.core.errors import ProviderError
from jitbot.core.redaction import Credentials
from jitbot.providers.aws import (
    STS_MAX_SECONDS,
    STS_MIN_SECONDS,
    AwsProvider,
    assume_role_params,
    deny_until,
    role_name,
)
from jitbot.providers.aws_client import CLIENT_CONFIG, call, client
from jitbot.providers.aws_denies import (
    DENY_POLICY,
    LEGACY_DENY_PREFIX,
    _forgiving,
    denied_until,
    deny_document,
    is_denied,
    legacy_prunable,
    pruned,
    read_denies,
    role_denies,
    with_cut,
)
from jitbot.providers.base import Held
from jitbot.providers.limits import Limits, Throttle
from jitbot.store import Store
from jitbot.testing import aws_limits
from jitbot.testing.host import free_port

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


QUARTER = 15 * 60


def test_with_cut_when_sessions_cut_then_grouped_by_the_quarter_hour_their_credentials_expire_in() -> None:
    at = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    denies = with_cut({}, "r-abc234", at + timedelta(minutes=3))
    denies = with_cut(denies, "r-def567", at + timedelta(minutes=14))
    denies = with_cut(denies, "r-ghj234", at + timedelta(minutes=16))
    end = int(at.timestamp()) + QUARTER
    assert denies == {end: ("*:jit-r-abc234-*", "*:jit-r-def567-*"), end + QUARTER: ("*:jit-r-ghj234-*",)}
    later = with_cut(denies, "r-abc234", at + timedelta(minutes=40))  # renewed credentials: the latest end holds
    assert later[end] == ("*:jit-r-def567-*",) and "*:jit-r-abc234-*" in later[end + 2 * QUARTER]
    assert with_cut(later, "r-abc234", at + timedelta(minutes=5)) == later  # an earlier end changes nothing


def test_deny_document_when_read_back_then_the_same_denies_each_statement_denying_everything() -> None:
    denies = {1796648400: ("*:jit-r-abc234-*",), 1796649300: ("*:jit-r-def567-*", "*:jit-r-ghj234-*")}
    document = json.loads(deny_document(denies))
    assert read_denies(document) == denies
    first = document["Statement"][0]
    assert first == {
        "Sid": "JitbotUntil1796648400",
        "Effect": "Deny",
        "Action": "*",
        "Resource": "*",
        "Condition": {"StringLike": {"aws:userid": ["*:jit-r-abc234-*"]}},
    }
    assert " " not in deny_document(denies)


def test_pruned_when_quarter_hour_over_for_more_than_five_minutes_then_dropped() -> None:
    now = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    stamp = int(now.timestamp())
    denies = {stamp - 301: ("a",), stamp - 300: ("b",), stamp + 600: ("c",)}
    assert pruned(denies, now) == {stamp - 300: ("b",), stamp + 600: ("c",)}


def test_deny_until_when_grant_ends_naturally_then_nothing_else_until_its_credentials_expire() -> None:
    now = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    issued = replace(request(), grant={"credentials_expire_at": (now - timedelta(seconds=1)).isoformat()})
    natural = replace(issued, expires_at=now)
    assert deny_until(natural, now) is None  # credentials end with the grant: no IAM write
    short = replace(natural, grant={"credentials_expire_at": (now + timedelta(minutes=10)).isoformat()})
    assert deny_until(short, now) == now + timedelta(minutes=10)  # STS's 15-minute floor outlives a 5m grant
    ended_early = replace(natural, ending_by="U0BOB", grant=short.grant)
    assert deny_until(ended_early, now) == now + timedelta(minutes=10)
    assert deny_until(request(duration=timedelta(hours=2)), now) == now + timedelta(hours=2)  # never recorded


def test_denied_until_when_request_listed_then_end_of_its_latest_quarter_hour() -> None:
    denies = {1796648400: ("*:jit-r-abc234-*",), 1796649300: ("*:jit-r-def567-*", "*:jit-r-abc234-*")}
    assert denied_until(denies, "r-abc234") == datetime.fromtimestamp(1796649300, UTC)
    assert denied_until(denies, "r-ghj234") is None


def test_legacy_prunable_when_mixed_names_then_only_stale_per_session_denies() -> None:
    now = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    stamp = int(now.timestamp())
    names = [
        f"{LEGACY_DENY_PREFIX}r-old234-{stamp - 301}",  # more than 5 minutes past: prune
        f"{LEGACY_DENY_PREFIX}r-edge23-{stamp - 300}",  # exactly 5 minutes: keep
        f"{LEGACY_DENY_PREFIX}r-new234-{stamp + 3600}",  # credentials still live: keep
        DENY_POLICY,
        "team-own-policy",
        f"{LEGACY_DENY_PREFIX}r-bad234-notanumber",
    ]
    assert legacy_prunable(names, now) == [f"{LEGACY_DENY_PREFIX}r-old234-{stamp - 301}"]


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


# --- call: SDK errors become ProviderError ----------------------------------------------------------


@pytest.mark.parametrize("code", ["Throttling", "ThrottlingException", "RequestLimitExceeded", "ServiceUnavailable"])
def test_call_when_throttled_then_retryable_provider_error(code: str) -> None:
    with pytest.raises(ProviderError, match=f"AWS AssumeRole failed: {code}: slow down") as raised:
        call("AssumeRole", raising(client_error(code)))
    assert raised.value.retryable is True
    assert raised.value.throttled is (code != "ServiceUnavailable")  # retried soon, alerted on only as late


@pytest.mark.parametrize("code", ["AccessDenied", "NoSuchEntity", "ValidationError", "MalformedPolicyDocument"])
def test_call_when_refused_then_not_retryable(code: str) -> None:
    with pytest.raises(ProviderError, match=f"AWS PutRolePolicy failed: {code}") as raised:
        call("PutRolePolicy", raising(client_error(code, "no")))
    assert raised.value.retryable is False


def test_call_when_unreachable_then_retryable_and_names_operation() -> None:
    error = EndpointConnectionError(endpoint_url="https://sts.amazonaws.com")
    with pytest.raises(ProviderError, match="AWS AssumeRole could not be reached: EndpointConnectionError") as raised:
        call("AssumeRole", raising(error))
    assert raised.value.retryable is True and raised.value.unanswered is True


def test_call_when_the_endpoint_never_answers_then_unanswered() -> None:
    error = ReadTimeoutError(endpoint_url="https://iam.amazonaws.com")
    with pytest.raises(ProviderError, match="AWS PutRolePolicy could not be reached: ReadTimeoutError") as raised:
        call("PutRolePolicy", raising(error))
    assert raised.value.unanswered is True


def test_call_when_the_sdk_fails_without_calling_then_retryable_but_answered() -> None:
    with pytest.raises(ProviderError, match="failed in the SDK: NoCredentialsError") as raised:
        call("AssumeRole", raising(NoCredentialsError()))
    assert raised.value.retryable is True and raised.value.unanswered is False


def test_call_when_ok_then_passes_arguments_and_returns_result() -> None:
    assert call("Op", lambda a, b: a + b, 1, b=2) == 3


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


def denies_now() -> dict[int, tuple[str, ...]]:
    return role_denies(boto3.client("iam"), ROLE)


def test_revoke_when_ended_early_then_its_sessions_denied_in_the_role_deny_policy(aws: None) -> None:
    provider = AwsProvider()
    active, now = granted(provider)
    provider.revoke(replace(active, ending_by="U0BOB", expires_at=now), DB, now)
    assert policies() == [DENY_POLICY]
    assert is_denied(denies_now(), "r-abc234")
    expires = datetime.fromisoformat(active.grant["credentials_expire_at"])
    (end,) = denies_now()
    assert expires.timestamp() <= end < expires.timestamp() + QUARTER


def test_revoke_when_repeated_then_one_entry_for_the_request(aws: None) -> None:
    provider = AwsProvider()
    active, now = granted(provider)
    ended = replace(active, ending_by="U0BOB", expires_at=now)
    provider.revoke(ended, DB, now)
    provider.revoke(ended, DB, now + timedelta(seconds=30))
    assert sum(patterns.count("*:jit-r-abc234-*") for patterns in denies_now().values()) == 1


def test_revoke_when_grant_ends_naturally_then_no_iam_call(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    provider = AwsProvider()
    active, _ = granted(provider)
    credentials_end = datetime.fromisoformat(active.grant["credentials_expire_at"])
    with monkeypatch.context() as patched:
        patched.setattr(boto3, "client", raising(AssertionError("no AWS call for a natural end")))
        provider.revoke(replace(active, expires_at=credentials_end), DB, credentials_end)
    assert policies() == []


def test_revoke_when_a_day_later_then_old_denies_pruned_in_the_same_write(aws: None) -> None:
    provider = AwsProvider()
    old, now = granted(provider, "r-old234")
    provider.revoke(replace(old, ending_by="U0BOB", expires_at=now), DB, now)
    later = now + timedelta(days=1)
    fresh = replace(
        request("r-new234"),
        grant={"credentials_expire_at": (later + timedelta(hours=1)).isoformat()},
        ending_by="U0BOB",
        expires_at=later,
    )
    provider.revoke(fresh, DB, later)
    assert is_denied(denies_now(), "r-new234") and not is_denied(denies_now(), "r-old234")


def test_verify_revoked_when_ended_early_then_reads_the_deny_back(aws: None) -> None:
    provider = AwsProvider()
    active, now = granted(provider)
    ended = replace(active, ending_by="U0BOB", expires_at=now)
    provider.revoke(ended, DB, now)
    described = provider.verify_revoked(ended, DB, now)
    assert described.startswith(f"deny on role {ROLE} covers *:jit-r-abc234-* sessions until ")
    until = datetime.fromisoformat(described.rsplit(" ", 1)[-1])
    assert until >= datetime.fromisoformat(active.grant["credentials_expire_at"])


def test_verify_revoked_when_deny_missing_then_retryable(aws: None) -> None:
    provider = AwsProvider()
    active, now = granted(provider)
    ended = replace(active, ending_by="U0BOB", expires_at=now)
    provider.revoke(ended, DB, now)
    boto3.client("iam").delete_role_policy(RoleName=ROLE, PolicyName=DENY_POLICY)  # someone tidied the role
    with pytest.raises(ProviderError, match=f"role {ROLE}'s deny does not cover \\*:jit-r-abc234-\\*") as raised:
        AwsProvider().verify_revoked(ended, DB, now)  # another process: nothing read back of its own, so it reads
    assert raised.value.retryable is True


def test_verify_revoked_when_this_process_wrote_the_cut_then_the_batchs_read_back_serves(
    aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider = AwsProvider()
    active, now = granted(provider)
    ended = replace(active, ending_by="U0BOB", expires_at=now)
    provider.revoke(ended, DB, now)
    with monkeypatch.context() as patched:  # read once by the writer, right after its write: no call per grant
        patched.setattr(boto3, "client", raising(AssertionError("the batch's read-back should have served")))
        assert provider.verify_revoked(ended, DB, now).startswith(f"deny on role {ROLE} covers")


def test_verify_revoked_when_deny_ends_before_the_credentials_then_retryable(aws: None) -> None:
    now = datetime.now(UTC)
    provider = AwsProvider()
    provider.revoke(ended("r-abc234", now), DB, now)  # credentials of 15 minutes denied
    longer = replace(ended("r-abc234", now), grant={"credentials_expire_at": (now + timedelta(hours=1)).isoformat()})
    with pytest.raises(ProviderError, match="deny does not cover") as raised:
        provider.verify_revoked(longer, DB, now)  # renewed credentials outlive the deny
    assert raised.value.retryable is True


def test_verify_revoked_when_credentials_end_by_themselves_then_no_iam_call(
    aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider = AwsProvider()
    active, _ = granted(provider)
    stamp = active.grant["credentials_expire_at"]
    credentials_end = datetime.fromisoformat(stamp)
    natural = replace(active, expires_at=credentials_end)
    with monkeypatch.context() as patched:
        patched.setattr(boto3, "client", raising(AssertionError("no AWS call for a natural end")))
        assert provider.verify_revoked(natural, DB, credentials_end) == f"credentials expired at {stamp}"
        early = credentials_end - timedelta(minutes=1)
        assert provider.verify_revoked(natural, DB, early) == f"credentials expire with the grant at {stamp}"


def test_held_when_sessions_live_then_nothing_listed_and_remove_does_nothing(aws: None) -> None:
    provider = AwsProvider()
    active, now = granted(provider)
    assert provider.held(DB, now) == []  # no AWS API lists a role's live sessions
    provider.remove(Held(frozenset({active.id}), "a session", {}), DB, now)
    assert policies() == []


def test_revoke_when_never_granted_then_denied_only_as_long_as_assume_role_could_have_issued(aws: None) -> None:
    now = datetime.now(UTC)
    AwsProvider().revoke(request(duration=timedelta(minutes=5)), DB, now)
    (end,) = denies_now()
    assert end < (now + timedelta(seconds=STS_MIN_SECONDS) + timedelta(minutes=15)).timestamp()


def test_revoke_when_role_missing_then_not_retryable_error_naming_operation(aws: None) -> None:
    boto3.client("iam").delete_role(RoleName=ROLE)
    with pytest.raises(
        ProviderError, match=r"AWS (PutRolePolicy|ListRolePolicies) failed: NoSuchEntity: Role jit-prod-db not found"
    ) as raised:
        AwsProvider().revoke(request(), DB, datetime.now(UTC))
    assert raised.value.retryable is False


def test_revoke_when_legacy_per_session_denies_are_stale_then_pruned(aws: None) -> None:
    now = datetime.now(UTC)
    iam = boto3.client("iam")
    stale = f"{LEGACY_DENY_PREFIX}r-old234-{int((now - timedelta(days=1)).timestamp())}"
    iam.put_role_policy(RoleName=ROLE, PolicyName=stale, PolicyDocument=deny_document({0: ("*:jit-r-old234-*",)}))
    AwsProvider().revoke(replace(request("r-new234"), ending_by="U0BOB"), DB, now)
    assert policies() == [DENY_POLICY]


def test_forgiving_delete_when_policy_already_gone_then_done_and_other_errors_still_raised(aws: None) -> None:
    iam = boto3.client("iam")
    assert _forgiving(iam.delete_role_policy)(RoleName=ROLE, PolicyName="never-there") is None
    with pytest.raises(ClientError):
        _forgiving(raising(client_error("AccessDenied", "not authorized")))(RoleName=ROLE, PolicyName="x")


def ended(request_id: str, now: datetime) -> AccessRequest:
    credentials = {"credentials_expire_at": (now + timedelta(minutes=15)).isoformat()}
    return replace(request(request_id), grant=credentials, ending_by="U0BOB", expires_at=now)


def request_ids(count: int) -> list[str]:
    alphabet = "23456789abcdefghjkmnpqrstuvwxyz"
    return [f"r-{alphabet[i // 961 % 31]}{alphabet[i // 31 % 31]}{alphabet[i % 31]}zzz" for i in range(count)]


def test_revoke_when_500_sessions_ended_early_on_one_role_then_all_denied_within_the_quota(aws: None) -> None:
    provider, now = AwsProvider(), datetime.now(UTC)
    ids = request_ids(500)
    for request_id in ids:
        provider.revoke(ended(request_id, now), DB, now)
    denies = denies_now()
    assert all(is_denied(denies, request_id) for request_id in ids)
    document = boto3.client("iam").get_role_policy(RoleName=ROLE, PolicyName=DENY_POLICY)["PolicyDocument"]
    assert len(json.dumps(document, separators=(",", ":"))) <= 10_240


def test_revoke_when_role_has_no_room_then_retryable_error_naming_the_role_and_the_fix(aws: None) -> None:
    own = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}] * 190}
    boto3.client("iam").put_role_policy(RoleName=ROLE, PolicyName="own", PolicyDocument=json.dumps(own))
    provider, now = AwsProvider(), datetime.now(UTC)
    with pytest.raises(ProviderError, match="role jit-prod-db has no room for another deny") as raised:
        for request_id in request_ids(100):
            provider.revoke(ended(request_id, now), DB, now)
    assert raised.value.retryable and "managed policies" in str(raised.value)


def test_revoke_when_two_processes_cut_64_sessions_on_one_role_at_once_then_every_one_denied(aws: None) -> None:
    """Two sweepers (their own providers, one Redis lock per role between them), 16 threads each."""
    store = Store(fakeredis.FakeRedis())
    serial = lambda role: store.locks.serial(f"aws-role:{role}", timedelta(seconds=30), timedelta(seconds=20))  # noqa: E731
    providers, now, ids = [AwsProvider(serial), AwsProvider(serial)], datetime.now(UTC), request_ids(64)
    with ThreadPoolExecutor(32) as pool:
        list(pool.map(lambda n: providers[n % 2].revoke(ended(ids[n], now), DB, now), range(64)))
    assert all(is_denied(denies_now(), request_id) for request_id in ids)


# --- the AWS stand-in refuses what AWS refuses ----------------------------------------------------------


def test_moto_when_role_inline_policies_exceed_10240_characters_then_limit_exceeded(aws: None) -> None:
    iam = boto3.client("iam")
    padding = {
        "Version": "2012-10-17",
        "Statement": [{"Sid": "A" * 5100, "Effect": "Deny", "Action": "*", "Resource": "*"}],
    }
    iam.put_role_policy(RoleName=ROLE, PolicyName="one", PolicyDocument=json.dumps(padding))
    with pytest.raises(ClientError) as raised:
        iam.put_role_policy(RoleName=ROLE, PolicyName="two", PolicyDocument=json.dumps(padding))
    assert raised.value.response["Error"]["Code"] == "LimitExceeded"
    iam.put_role_policy(RoleName=ROLE, PolicyName="one", PolicyDocument=json.dumps(padding))  # a rewrite is no sum


def test_moto_when_role_chaining_asks_over_an_hour_then_validation_error(aws: None) -> None:
    iam, sts = boto3.client("iam"), boto3.client("sts")
    iam.update_role(RoleName=ROLE, MaxSessionDuration=43200)
    hop = sts.assume_role(RoleArn=ROLE_ARN, RoleSessionName="jitbot", DurationSeconds=3600)["Credentials"]
    chained = boto3.client(
        "sts",
        aws_access_key_id=hop["AccessKeyId"],
        aws_secret_access_key=hop["SecretAccessKey"],
        aws_session_token=hop["SessionToken"],
    )
    with pytest.raises(ClientError, match="1 hour session limit for roles assumed by role chaining"):
        chained.assume_role(RoleArn=ROLE_ARN, RoleSessionName="second", DurationSeconds=3601)
    chained.assume_role(RoleArn=ROLE_ARN, RoleSessionName="second", DurationSeconds=3600)
    sts.assume_role(RoleArn=ROLE_ARN, RoleSessionName="direct", DurationSeconds=7200)  # not chained: the role's max


def test_moto_when_duration_over_the_roles_maximum_or_policy_too_large_then_refused(aws: None) -> None:
    sts = boto3.client("sts")
    with pytest.raises(ClientError, match="exceeds the MaxSessionDuration"):
        sts.assume_role(RoleArn=ROLE_ARN, RoleSessionName="long", DurationSeconds=7200)  # the role allows 3600
    big = json.dumps({"Version": "2012-10-17", "Statement": [{"Sid": "A" * 2100, "Effect": "Allow", "Action": "*"}]})
    with pytest.raises(ClientError) as raised:
        sts.assume_role(RoleArn=ROLE_ARN, RoleSessionName="big", Policy=big)
    assert raised.value.response["Error"]["Code"] == "PackedPolicyTooLarge"


def test_moto_when_role_does_not_exist_then_access_denied(aws: None) -> None:
    with pytest.raises(ClientError) as raised:
        boto3.client("sts").assume_role(RoleArn=f"arn:aws:iam::{ACCOUNT}:role/nobody", RoleSessionName="probe")
    assert raised.value.response["Error"]["Code"] == "AccessDenied"


# --- moto under IAM's throttling (aws_limits.throttle) ---------------------------------------------------

# each role's writes: 3 at once, then one every 10 s
IAM_LIMITS = Limits(writes_per_s=0.1, burst=3)
DENY_ALL = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "*", "Resource": "*"}]})


@pytest.fixture
def clock() -> list[float]:
    """The throttle's clock: seconds, moved on by the test."""
    return [0.0]


@pytest.fixture
def slept() -> list[float]:
    """The latency each call was given, recorded instead of slept."""
    return []


@pytest.fixture
def iam_throttle(aws: None, clock: list[float], slept: list[float]) -> Iterator[Throttle]:
    throttle = Throttle(IAM_LIMITS, clock=lambda: clock[0], sleep=slept.append)
    aws_limits.throttle(throttle)
    yield throttle
    aws_limits.throttle(None)


def test_moto_when_iam_throttled_then_a_burst_of_writes_on_one_role_refused_as_iam_does_other_roles_unaffected(
    iam_throttle: Throttle, clock: list[float], slept: list[float]
) -> None:
    iam = client("iam")  # jitbot's client: one attempt, no retries of botocore's
    for name in ("a", "b", "c"):
        iam.put_role_policy(RoleName=ROLE, PolicyName=name, PolicyDocument=DENY_ALL)
    with pytest.raises(ClientError) as raised:
        iam.delete_role_policy(RoleName=ROLE, PolicyName="a")
    assert raised.value.response["Error"] == {"Type": "Sender", "Code": "Throttling", "Message": "Rate exceeded"}
    meta = raised.value.response["ResponseMetadata"]
    assert (meta["HTTPStatusCode"], meta["RetryAttempts"]) == (400, 0)
    assert policies() == ["a", "b", "c"]  # refused, not done; and reads are not throttled

    iam.create_role(RoleName="jit-other", AssumeRolePolicyDocument=json.dumps(TRUST))
    iam.put_role_policy(RoleName="jit-other", PolicyName="a", PolicyDocument=DENY_ALL)
    clock[0] += 10  # a token back for the hot role
    iam.delete_role_policy(RoleName=ROLE, PolicyName="a")
    assert (iam_throttle.writes, iam_throttle.refused) == (6, 1)

    calls = len(slept)
    client("sts").get_caller_identity()
    assert len(slept) == calls + 1 and all(0 < s < 10 for s in slept)  # STS, and every IAM call, took a latency


def test_revoke_when_iam_throttles_the_roles_writes_then_retryable_and_the_deny_written_once_a_token_is_back(
    iam_throttle: Throttle, clock: list[float]
) -> None:
    provider = AwsProvider()
    active, now = granted(provider)
    for name in ("a", "b", "c"):  # other writers spend the role's burst
        client("iam").put_role_policy(RoleName=ROLE, PolicyName=name, PolicyDocument=DENY_ALL)
    ended = replace(active, ending_by="U0BOB", expires_at=now)
    with pytest.raises(ProviderError, match="AWS PutRolePolicy failed: Throttling: Rate exceeded") as raised:
        provider.revoke(ended, DB, now)
    assert raised.value.retryable and raised.value.code == "Throttling"
    assert DENY_POLICY not in policies()

    clock[0] += 10
    provider.revoke(ended, DB, now)
    assert is_denied(denies_now(), "r-abc234")


def test_client_when_the_environment_asks_for_adaptive_retries_then_standard_mode_and_one_attempt(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Adaptive mode's client-side rate limiter would sleep in the worker before each call after a Throttling."""
    monkeypatch.setenv("AWS_RETRY_MODE", "adaptive")
    assert client("iam", "us-east-1").meta.config.retries == {"mode": "standard", "total_max_attempts": 1}


def test_moto_process_when_given_limits_then_its_iam_throttles_a_roles_writes() -> None:
    port = free_port()
    limits = json.dumps({"p50_s": 0.001, "writes_per_s": 0.001, "burst": 2})
    command = [sys.executable, "-m", "jitbot.testing.moto_process", str(port), limits]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline and server.poll() is None, "moto_process did not listen"
                time.sleep(0.05)
        keys = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "region_name": "us-east-1"}
        iam = boto3.client("iam", endpoint_url=f"http://127.0.0.1:{port}", config=CLIENT_CONFIG, **keys)
        iam.create_role(RoleName=ROLE, AssumeRolePolicyDocument=json.dumps(TRUST))  # a write on the role too
        iam.put_role_policy(RoleName=ROLE, PolicyName="a", PolicyDocument=DENY_ALL)
        with pytest.raises(ClientError) as raised:
            iam.put_role_policy(RoleName=ROLE, PolicyName="b", PolicyDocument=DENY_ALL)
        assert raised.value.response["Error"]["Code"] == "Throttling"
    finally:
        server.kill()
        server.wait(timeout=10)
