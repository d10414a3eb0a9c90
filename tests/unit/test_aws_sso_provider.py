"""AWS Identity Center mode: pure builders, then grant, revoke and check against moto in-process.

moto settles every account assignment at once; AWS starts them IN_PROGRESS. `settling` wraps moto's client so
the polls see what AWS really answers.
"""

import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import boto3
import fakeredis
import pytest
from botocore.exceptions import ClientError

from jitbot.core.catalog import Resource, parse_catalog
from jitbot.core.domain import AccessRequest, approve, open_request
from jitbot.core.errors import ProviderError
from jitbot.providers.aws_sso import POLL_INTERVALS, AwsSsoProvider
from jitbot.providers.aws_sso_assignment import (
    MemoryLedger,
    access_lines,
    assignment_key,
    assignment_params,
    held_assignment,
    revoked_state,
    session_length,
)
from jitbot.providers.aws_sso_settings import SsoSettings
from jitbot.providers.base import Held
from jitbot.store import Store

ACCOUNT = "123456789012"
REGION = "eu-west-1"
EMAIL = "alice@example.com"
PORTAL = "https://d-1234567890.awsapps.com/start"
BASE = parse_catalog(
    f"""
approver_channel: C0APPROVALS
resources:
  prod-sso:
    provider: aws
    role_arn: arn:aws:iam::{ACCOUNT}:role/unused
    approvers: [U0BOB]
"""
).resources["prod-sso"]
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def sso_resource(**settings: str) -> Resource:
    """The catalog's keys for `mode: sso` (the catalog validator knows them separately)."""
    return replace(BASE, settings=SsoSettings(**({"region": REGION, "account_id": ACCOUNT} | settings)))


def request(identity: dict[str, str] | None = None, duration: timedelta = timedelta(hours=1)) -> AccessRequest:
    opened, _ = open_request("r-abc234", "U0ALICE", "prod-sso", duration, "INC-1", NOW)
    approved = approve(opened, "U0BOB", 1, NOW)[0]
    return replace(approved, identity={"email": EMAIL} if identity is None else identity)


@dataclass(frozen=True)
class Center:
    """An Identity Center instance in moto, with Alice in its identity store and one permission set."""

    instance_arn: str
    store_id: str
    user_id: str
    permission_set_arn: str

    @property
    def resource(self) -> Resource:
        return sso_resource(instance_arn=self.instance_arn, permission_set_arn=self.permission_set_arn)

    def params(self) -> dict[str, str]:
        """Alice's assignment, as CreateAccountAssignment takes it."""
        return {
            "InstanceArn": self.instance_arn,
            "TargetId": ACCOUNT,
            "TargetType": "AWS_ACCOUNT",
            "PermissionSetArn": self.permission_set_arn,
            "PrincipalType": "USER",
            "PrincipalId": self.user_id,
        }

    def assigned(self) -> list[str]:
        """Principal ids holding the permission set on the account."""
        answer = boto3.client("sso-admin", region_name=REGION).list_account_assignments(
            InstanceArn=self.instance_arn, AccountId=ACCOUNT, PermissionSetArn=self.permission_set_arn
        )
        return [item["PrincipalId"] for item in answer["AccountAssignments"]]


@pytest.fixture
def center(moto_aws: None) -> Iterator[Center]:
    admin = boto3.client("sso-admin", region_name=REGION)
    (instance,) = admin.list_instances()["Instances"]  # moto, like an enabled account, has one instance
    user_id = boto3.client("identitystore", region_name=REGION).create_user(
        IdentityStoreId=instance["IdentityStoreId"],
        UserName="alice",
        DisplayName="Alice Liddell",
        Name={"GivenName": "Alice", "FamilyName": "Liddell"},
        Emails=[{"Value": EMAIL, "Type": "work", "Primary": True}],
    )["UserId"]
    permission_set = admin.create_permission_set(
        Name="ProdReadOnly", InstanceArn=instance["InstanceArn"], SessionDuration="PT2H"
    )["PermissionSet"]
    yield Center(instance["InstanceArn"], instance["IdentityStoreId"], user_id, permission_set["PermissionSetArn"])


def provider(sleeps: list[float] | None = None, poll_timeout: float = 60.0) -> AwsSsoProvider:
    return AwsSsoProvider(sleep=(sleeps if sleeps is not None else []).append, poll_timeout=poll_timeout)


def settling(monkeypatch: pytest.MonkeyPatch, kind: str, statuses: list[str], reason: str = "") -> None:
    """AWS's asynchronous answers over moto: the `Creation`/`Deletion` starts IN_PROGRESS, then each status poll
    answers the next of `statuses` (a FAILED one carries `reason`)."""
    real_client = boto3.client
    key = f"AccountAssignment{kind}Status"

    def client(service: str, **kwargs: object):
        made = real_client(service, **kwargs)
        if service != "sso-admin":
            return made
        start = made.create_account_assignment if kind == "Creation" else made.delete_account_assignment
        describe = getattr(made, f"describe_account_assignment_{kind.lower()}_status")

        def started(**params: str) -> dict:
            answer = start(**params)
            answer[key]["Status"] = "IN_PROGRESS"
            return answer

        def described(**params: str) -> dict:
            answer = describe(**params)
            answer[key]["Status"] = statuses.pop(0)
            if answer[key]["Status"] == "FAILED":
                answer[key]["FailureReason"] = reason
            return answer

        setattr(made, "create_account_assignment" if kind == "Creation" else "delete_account_assignment", started)
        setattr(made, f"describe_account_assignment_{kind.lower()}_status", described)
        return made

    monkeypatch.setattr(boto3, "client", client)


def refusing(monkeypatch: pytest.MonkeyPatch, code: str, message: str) -> None:
    """sso-admin refuses CreateAccountAssignment, as AWS does under a race or without permission."""
    real_client = boto3.client

    def client(service: str, **kwargs: object):
        made = real_client(service, **kwargs)

        def refuse(**params: str) -> None:
            raise ClientError({"Error": {"Code": code, "Message": message}}, "CreateAccountAssignment")

        if service == "sso-admin":
            made.create_account_assignment = refuse
        return made

    monkeypatch.setattr(boto3, "client", client)


# --- pure builders --------------------------------------------------------------------------------


def test_assignment_params_when_no_handle_then_from_catalog_settings() -> None:
    resource = sso_resource(instance_arn="arn:aws:sso:::instance/ssoins-1", permission_set_arn="arn:ps-1")
    assert assignment_params(request(), resource, "user-1") == {
        "InstanceArn": "arn:aws:sso:::instance/ssoins-1",
        "TargetId": ACCOUNT,
        "TargetType": "AWS_ACCOUNT",
        "PermissionSetArn": "arn:ps-1",
        "PrincipalType": "USER",
        "PrincipalId": "user-1",
    }


def test_assignment_params_when_handle_then_handle_wins_over_changed_catalog() -> None:
    resource = sso_resource(instance_arn="arn:aws:sso:::instance/ssoins-1", permission_set_arn="arn:ps-new")
    granted = replace(request(), grant={"permission_set_arn": "arn:ps-old", "account_id": "210987654321"})
    params = assignment_params(granted, resource, "user-1")
    assert (params["PermissionSetArn"], params["TargetId"]) == ("arn:ps-old", "210987654321")


@pytest.mark.parametrize(
    ("iso", "length"),
    [
        ("PT1H", timedelta(hours=1)),
        ("PT12H", timedelta(hours=12)),
        ("PT1H30M", timedelta(hours=1, minutes=30)),
        ("PT45M", timedelta(minutes=45)),
        ("PT90S", timedelta(seconds=90)),
        ("PT", None),
        ("P1D", None),
        ("1h", None),
    ],
)
def test_session_length_when_iso_duration_then_timedelta_or_none(iso: str, length: timedelta | None) -> None:
    assert session_length(iso) == length


def test_access_lines_when_portal_configured_then_link_and_latest_session_end() -> None:
    resource = sso_resource(instance_arn="i", permission_set_arn="ps", portal_url=PORTAL)
    until = NOW + timedelta(hours=1)
    lines = access_lines(request(), resource, {"Name": "ProdReadOnly", "SessionDuration": "PT2H"}, "user-1", until)
    assert lines == {
        "Account": ACCOUNT,
        "Permission set": "ProdReadOnly",
        "Identity": EMAIL,
        "Until": "2026-11-23T13:00:00+00:00",
        "Sessions already open last until": "2026-11-23T15:00:00+00:00 at the latest (a session lasts 2h)",
        "Portal": PORTAL,
    }


def test_access_lines_when_no_portal_nor_duration_nor_email_then_defaults() -> None:
    resource = sso_resource(instance_arn="i", permission_set_arn="ps")
    lines = access_lines(request({"aws_sso_user_id": "user-1"}), resource, {"Name": "P"}, "user-1", NOW)
    assert lines["Portal"] == "your AWS access portal"
    assert lines["Identity"] == "user-1"
    assert lines["Sessions already open last until"].endswith("(a session lasts 1h)")  # Identity Center's default


@pytest.mark.parametrize(
    ("entry", "handle", "state"),
    [
        ((True, {"r-def567", "r-ghj234"}), {"principal_id": "u"}, "assignment kept for r-def567, r-ghj234"),
        (
            (False, {"r-def567"}),
            {"principal_id": "u", "standing": "1"},
            "standing assignment, not jitbot's: left as it was",
        ),
        (None, {"principal_id": "u", "standing": "1"}, "standing assignment, not jitbot's: left as it was"),
        (None, {"principal_id": "u", "creation_request_id": "c"}, None),  # jitbot's, released: AWS must not show it
        (None, {"principal_id": "u"}, None),  # shared with the grant that created it, both released
        (None, {}, "no grant recorded for it, and the ledger lists it nowhere: no assignment of its own to check"),
    ],
)
def test_revoked_state_when_ledger_and_handle_then_what_is_left_or_none_to_read_aws(
    entry: tuple[bool, set[str]] | None, handle: dict[str, str], state: str | None
) -> None:
    assert revoked_state(entry, handle) == state


def test_held_assignment_when_jitbot_created_it_then_held_by_its_grants_else_none() -> None:
    params = {"InstanceArn": "i", "TargetId": ACCOUNT, "PermissionSetArn": "ps", "PrincipalId": "u-1"}
    held = held_assignment(params, (True, {"r-abc234", "r-def567"}))
    assert held == Held(frozenset({"r-abc234", "r-def567"}), f"ps for user u-1 on account {ACCOUNT}", params)
    assert held_assignment(params, (False, {"r-abc234"})) is None  # standing: found, not made, by jitbot
    assert held_assignment(params, None) is None


# --- grant and revoke against moto ------------------------------------------------------------------


def test_grant_when_user_found_by_email_then_assigned_and_handle_names_it(center: Center) -> None:
    issued = provider().grant(request(), center.resource, NOW)
    assert center.assigned() == [center.user_id]
    assert issued.handle | {"creation_request_id": "?"} == {
        "principal_id": center.user_id,
        "instance_arn": center.instance_arn,
        "account_id": ACCOUNT,
        "permission_set_arn": center.permission_set_arn,
        "creation_request_id": "?",
    }
    assert len(issued.handle["creation_request_id"]) == 36  # the uuid AWS tracks the request by


def test_grant_then_access_lines_carry_portal_and_no_secret(center: Center) -> None:
    resource = replace(center.resource, settings=replace(center.resource.settings, portal_url=PORTAL))
    issued = provider().grant(request(), resource, NOW)
    assert issued.credentials.fields() == {}
    assert issued.access["Portal"] == PORTAL
    assert issued.access["Permission set"] == "ProdReadOnly"
    assert issued.access["Until"] == (NOW + timedelta(hours=1)).isoformat()
    assert issued.access["Sessions already open last until"].startswith((NOW + timedelta(hours=3)).isoformat())
    shown = json.dumps(issued.access).lower()
    assert not any(word in shown for word in ("secret", "token", "aws_access_key_id", "testing"))


def test_grant_when_repeated_then_one_assignment(center: Center) -> None:
    sso = provider()
    sso.grant(request(), center.resource, NOW)
    again = sso.grant(request(), center.resource, NOW)
    assert center.assigned() == [center.user_id]
    assert "creation_request_id" not in again.handle  # found, not created


def test_grant_when_aws_sso_user_id_then_no_email_lookup(center: Center) -> None:
    identity = {"email": "not-in-the-store@example.com", "aws_sso_user_id": "9067e1b2-override"}
    issued = provider().grant(request(identity), center.resource, NOW)
    assert center.assigned() == ["9067e1b2-override"]
    assert issued.handle["principal_id"] == "9067e1b2-override"


def test_grant_when_email_unknown_then_not_retryable_error_naming_email_store_and_fix(center: Center) -> None:
    with pytest.raises(ProviderError) as raised:
        provider().grant(request({"email": "bob@example.com"}), center.resource, NOW)
    assert str(raised.value) == (
        f"No Identity Center user with email bob@example.com in identity store {center.store_id}: add them to "
        "Identity Center or set aws_sso_user_id under identities: in jitbot.yml"
    )
    assert raised.value.retryable is False
    assert center.assigned() == []


def test_grant_when_no_email_nor_user_id_then_not_retryable_error(center: Center) -> None:
    with pytest.raises(ProviderError, match=r"No email known for <@U0ALICE>") as raised:
        provider().grant(request({}), center.resource, NOW)
    assert raised.value.retryable is False


def test_grant_when_identity_store_id_configured_then_looked_up_there(center: Center) -> None:
    resource = replace(center.resource, settings=replace(center.resource.settings, identity_store_id="d-0000000000"))
    with pytest.raises(ProviderError, match=f"{EMAIL} in identity store d-0000000000"):
        provider().grant(request(), resource, NOW)


def test_grant_when_instance_unknown_then_not_retryable_error_naming_instance_and_region(center: Center) -> None:
    resource = replace(
        center.resource, settings=replace(center.resource.settings, instance_arn="arn:aws:sso:::instance/ssoins-nope")
    )
    with pytest.raises(
        ProviderError, match=f"No Identity Center instance arn:aws:sso:::instance/ssoins-nope in region {REGION}"
    ) as raised:
        provider().grant(request(), resource, NOW)
    assert raised.value.retryable is False


def test_grant_when_creation_in_progress_then_polls_until_succeeded(
    center: Center, monkeypatch: pytest.MonkeyPatch
) -> None:
    statuses = ["IN_PROGRESS", "IN_PROGRESS", "SUCCEEDED"]
    settling(monkeypatch, "Creation", statuses)
    sleeps: list[float] = []
    issued = provider(sleeps).grant(request(), center.resource, NOW)
    assert sleeps == list(POLL_INTERVALS) and statuses == []  # polled sooner at first, then every 2 s
    assert issued.handle["principal_id"] == center.user_id


def test_grant_when_creation_failed_then_not_retryable_error_with_aws_reason(
    center: Center, monkeypatch: pytest.MonkeyPatch
) -> None:
    reason = "Received a 404 status error: Not supported policy arn:aws:iam::aws:policy/Nope"
    settling(monkeypatch, "Creation", ["IN_PROGRESS", "FAILED"], reason)
    with pytest.raises(ProviderError) as raised:
        provider().grant(request(), center.resource, NOW)
    assert str(raised.value) == f"AWS Identity Center account assignment creation failed: {reason}"
    assert raised.value.retryable is False


def test_grant_when_creation_outlasts_poll_timeout_then_retryable_error(
    center: Center, monkeypatch: pytest.MonkeyPatch
) -> None:
    settling(monkeypatch, "Creation", ["IN_PROGRESS"] * 10)
    sleeps: list[float] = []
    with pytest.raises(ProviderError, match=r"creation .* is still in progress after 4 s") as raised:
        provider(sleeps, poll_timeout=sum(POLL_INTERVALS)).grant(request(), center.resource, NOW)
    assert raised.value.retryable is True
    assert sleeps == list(POLL_INTERVALS)


def test_grant_when_job_times_out_after_creating_then_its_retry_and_revocation_know_it_as_jitbots(
    center: Center, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger, aws = MemoryLedger(), boto3.client
    settling(monkeypatch, "Creation", ["IN_PROGRESS"] * 3)  # the assignment is made, but not in this job's time
    first = AwsSsoProvider(sleep=[].append, poll_timeout=0, ledger=ledger)
    with pytest.raises(ProviderError, match="still in progress") as raised:
        first.grant(request(), center.resource, NOW)
    assert raised.value.retryable
    monkeypatch.setattr(boto3, "client", aws)  # the creation has settled by the retry

    retried = AwsSsoProvider(sleep=[].append, ledger=ledger)
    issued = retried.grant(request(), center.resource, NOW)
    assert "standing" not in issued.handle and "Note" not in issued.access
    ended = replace(request(), grant=issued.handle, granted_at=NOW, expires_at=NOW + timedelta(hours=1))
    retried.revoke(ended, center.resource, NOW)
    assert center.assigned() == []


def test_grant_when_creation_failed_for_good_then_no_claim_is_left_in_the_ledger(
    center: Center, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = MemoryLedger()
    refusing(monkeypatch, "AccessDenied", "no")
    with pytest.raises(ProviderError):
        AwsSsoProvider(sleep=[].append, ledger=ledger).grant(request(), center.resource, NOW)
    assert ledger.shared(assignment_key(assignment_params(request(), center.resource, center.user_id))) is None


@pytest.mark.parametrize(
    ("code", "retryable"), [("ConflictException", True), ("InternalServerException", True), ("AccessDenied", False)]
)
def test_grant_when_create_refused_then_retryable_only_if_transient(
    center: Center, monkeypatch: pytest.MonkeyPatch, code: str, retryable: bool
) -> None:
    refusing(monkeypatch, code, "try later")
    with pytest.raises(ProviderError, match=f"AWS CreateAccountAssignment failed: {code}: try later") as raised:
        provider().grant(request(), center.resource, NOW)
    assert raised.value.retryable is retryable


def granted(center: Center) -> AccessRequest:
    """The request as the store holds it once ACTIVE: with the grant's handle."""
    approved = request()
    issued = provider().grant(approved, center.resource, NOW)
    return replace(approved, grant=issued.handle, granted_at=NOW, expires_at=NOW + approved.duration)


def test_revoke_when_active_then_assignment_gone(center: Center) -> None:
    active = granted(center)
    provider().revoke(active, center.resource, NOW)
    assert center.assigned() == []


def test_revoke_when_repeated_then_no_error(center: Center) -> None:
    active = granted(center)
    provider().revoke(active, center.resource, NOW)
    provider().revoke(active, center.resource, NOW)
    assert center.assigned() == []


def test_revoke_when_never_granted_then_user_looked_up_and_nothing_to_do(center: Center) -> None:
    provider().revoke(request(), center.resource, NOW)
    assert center.assigned() == []


def test_revoke_when_other_users_assigned_then_only_this_one_removed(center: Center) -> None:
    provider().grant(request({"aws_sso_user_id": "someone-else"}), center.resource, NOW)
    provider().revoke(granted(center), center.resource, NOW)
    assert center.assigned() == ["someone-else"]


def test_revoke_when_deletion_in_progress_then_polls_until_succeeded(
    center: Center, monkeypatch: pytest.MonkeyPatch
) -> None:
    active = granted(center)
    statuses = ["IN_PROGRESS", "SUCCEEDED"]
    settling(monkeypatch, "Deletion", statuses)
    sleeps: list[float] = []
    provider(sleeps).revoke(active, center.resource, NOW)
    assert sleeps == list(POLL_INTERVALS[:2]) and statuses == []
    assert center.assigned() == []


# --- check ----------------------------------------------------------------------------------------


def test_check_when_instance_and_permission_set_exist_then_ok_naming_them(center: Center) -> None:
    assert provider().check(center.resource) == (
        f"ok: permission set ProdReadOnly in {center.instance_arn}, identity store {center.store_id}"
    )


def test_check_when_permission_set_missing_then_not_retryable_error(center: Center) -> None:
    resource = replace(
        center.resource,
        settings=replace(center.resource.settings, permission_set_arn=f"{center.instance_arn}/ps-0000000000000000"),
    )
    with pytest.raises(ProviderError, match="AWS DescribePermissionSet failed: ResourceNotFoundException") as raised:
        provider().check(resource)
    assert raised.value.retryable is False


# --- what jitbot owns ------------------------------------------------------------------------------


def shared_provider(store: Store) -> AwsSsoProvider:
    """A worker's provider: who holds which assignment is kept in Redis, so every worker sees it."""
    return AwsSsoProvider(sleep=[].append, ledger=store.locks)


def as_granted(approved: AccessRequest, issued_handle: dict[str, str]) -> AccessRequest:
    return replace(approved, grant=issued_handle, granted_at=NOW, expires_at=NOW + approved.duration)


def test_grant_when_user_already_holds_it_outside_jitbot_then_told_and_its_end_leaves_it(center: Center) -> None:
    boto3.client("sso-admin", region_name=REGION).create_account_assignment(**center.params())
    store = Store(fakeredis.FakeRedis())
    approved = request()
    issued = shared_provider(store).grant(approved, center.resource, NOW)
    assert issued.access["Note"].startswith("you already hold this permission set on this account outside jitbot")
    shared_provider(store).revoke(as_granted(approved, issued.handle), center.resource, NOW)
    assert center.assigned() == [center.user_id]  # the standing assignment is not jitbot's to delete


def test_grant_when_two_jitbot_grants_overlap_then_they_share_it_until_the_last_ends(center: Center) -> None:
    store = Store(fakeredis.FakeRedis())
    first, second = request(), replace(request(), id="r-def567")
    first_issued = shared_provider(store).grant(first, center.resource, NOW)
    second_issued = shared_provider(store).grant(second, center.resource, NOW)
    assert "Note" not in second_issued.access and center.assigned() == [center.user_id]
    shared_provider(store).revoke(as_granted(first, first_issued.handle), center.resource, NOW)
    assert center.assigned() == [center.user_id]  # the second grant still holds it
    shared_provider(store).revoke(as_granted(second, second_issued.handle), center.resource, NOW)
    assert center.assigned() == []


def test_moto_when_assignment_created_or_deleted_then_in_progress_until_polled(center: Center) -> None:
    sso = boto3.client("sso-admin", region_name=REGION)
    created = sso.create_account_assignment(**center.params())["AccountAssignmentCreationStatus"]
    assert created["Status"] == "IN_PROGRESS"
    polls = [
        sso.describe_account_assignment_creation_status(
            InstanceArn=center.instance_arn, AccountAssignmentCreationRequestId=created["RequestId"]
        )["AccountAssignmentCreationStatus"]["Status"]
        for _ in range(3)
    ]
    assert polls == ["IN_PROGRESS", "SUCCEEDED", "SUCCEEDED"]
    deleted = sso.delete_account_assignment(**center.params())["AccountAssignmentDeletionStatus"]
    assert deleted["Status"] == "IN_PROGRESS"


# --- read back, and the drift scan ---------------------------------------------------------------------


def test_verify_revoked_when_revoked_then_assignment_deleted(center: Center) -> None:
    sso = provider()
    active = as_granted(request(), sso.grant(request(), center.resource, NOW).handle)
    sso.revoke(active, center.resource, NOW)
    assert sso.verify_revoked(active, center.resource, NOW) == "assignment deleted"


def test_verify_revoked_when_ledger_still_holds_it_then_retryable(center: Center) -> None:
    sso = provider()
    active = as_granted(request(), sso.grant(request(), center.resource, NOW).handle)  # never revoked
    with pytest.raises(ProviderError, match="ledger still lists r-abc234") as raised:
        sso.verify_revoked(active, center.resource, NOW)
    assert raised.value.retryable is True


def test_verify_revoked_when_assignment_back_after_revoke_then_retryable_naming_it(center: Center) -> None:
    sso = provider()
    active = as_granted(request(), sso.grant(request(), center.resource, NOW).handle)
    sso.revoke(active, center.resource, NOW)
    boto3.client("sso-admin", region_name=REGION).create_account_assignment(**center.params())
    with pytest.raises(
        ProviderError, match=f"still assigns .* to user {center.user_id} on account {ACCOUNT}"
    ) as raised:
        sso.verify_revoked(active, center.resource, NOW)
    assert raised.value.retryable is True


def test_verify_revoked_when_shared_or_standing_then_says_it_was_kept(center: Center) -> None:
    store = Store(fakeredis.FakeRedis())
    first, second = request(), replace(request(), id="r-def567")
    first_active = as_granted(first, shared_provider(store).grant(first, center.resource, NOW).handle)
    shared_provider(store).grant(second, center.resource, NOW)
    shared_provider(store).revoke(first_active, center.resource, NOW)
    assert shared_provider(store).verify_revoked(first_active, center.resource, NOW) == "assignment kept for r-def567"

    standing_store = Store(fakeredis.FakeRedis())
    third = replace(request(), id="r-ghj234")
    third_active = as_granted(third, shared_provider(standing_store).grant(third, center.resource, NOW).handle)
    shared_provider(standing_store).revoke(third_active, center.resource, NOW)
    described = shared_provider(standing_store).verify_revoked(third_active, center.resource, NOW)
    assert described == "standing assignment, not jitbot's: left as it was"
    assert center.assigned() == [center.user_id]


def test_held_when_jitbot_and_standing_assignments_then_only_jitbots_with_its_holders(center: Center) -> None:
    admin = boto3.client("sso-admin", region_name=REGION)
    sso = AwsSsoProvider(sleep=[].append, ledger=MemoryLedger())
    admin.create_account_assignment(**center.params() | {"PrincipalId": "f00dcafe-1111-2222-3333-444455556666"})
    for n in range(100):  # standing assignments nobody told jitbot of: the list needs a second page
        admin.create_account_assignment(**center.params() | {"PrincipalId": f"00000000-0000-0000-0000-{n:012d}"})
    sso.grant(request({"aws_sso_user_id": "f00dcafe-1111-2222-3333-444455556666"}), center.resource, NOW)  # standing
    sso.grant(request(), center.resource, NOW)
    sso.grant(replace(request(), id="r-def567"), center.resource, NOW)
    (held,) = sso.held(center.resource, NOW)
    assert held.holders == {"r-abc234", "r-def567"}
    assert held.ref == center.params()
    assert held.what == f"{center.permission_set_arn} for user {center.user_id} on account {ACCOUNT}"


def test_remove_when_held_then_assignment_deleted_holders_released_and_repeat_does_nothing(center: Center) -> None:
    sso = provider()
    sso.grant(request(), center.resource, NOW)
    (held,) = sso.held(center.resource, NOW)
    assert sso.remove(held, center.resource, NOW) is True
    assert center.assigned() == []
    assert sso.ledger.shared(assignment_key(center.params())) is None
    assert sso.remove(held, center.resource, NOW) is False
    assert center.assigned() == [] and sso.held(center.resource, NOW) == []


def test_remove_when_a_new_grant_took_it_up_since_the_scan_then_kept_for_it(center: Center) -> None:
    sso = provider()
    sso.grant(request(), center.resource, NOW)
    (held,) = sso.held(center.resource, NOW)
    sso.grant(replace(request(), id="r-def567"), center.resource, NOW)  # live, and not in what the scan saw
    sso.remove(held, center.resource, NOW)
    assert center.assigned() == [center.user_id]
    assert sso.ledger.shared(assignment_key(center.params())) == (True, {"r-def567"})


def test_remove_when_assignment_is_standing_then_never_deleted(center: Center) -> None:
    boto3.client("sso-admin", region_name=REGION).create_account_assignment(**center.params())
    sso = provider()
    forged = Held(frozenset({"r-abc234"}), "a standing assignment", center.params())
    assert sso.remove(forged, center.resource, NOW) is False
    assert center.assigned() == [center.user_id]
