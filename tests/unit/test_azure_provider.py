"""The Azure provider: pure PIM request builders and error mapping, then the real SDK against the ARM stand-in."""

import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from azure.core.credentials import AccessToken
from azure.mgmt.authorization.v2020_10_01.models import RoleManagementPolicyEnablementRule as EnablementRule
from azure.mgmt.authorization.v2020_10_01.models import RoleManagementPolicyExpirationRule as ExpirationRule

from jitbot.core.catalog import Resource
from jitbot.core.domain import AccessRequest, approve, ask_extension, grant, open_request
from jitbot.core.errors import ProviderError
from jitbot.providers.arm import is_loopback
from jitbot.providers.azure import AzureProvider, admin_assignment_demands
from jitbot.providers.azure_settings import AzureSettings
from jitbot.providers.limits import Limits
from jitbot.providers.pim import (
    JUSTIFICATION_LIMIT,
    PIM_MINIMUM,
    PORTAL_PIM,
    REMOVE_SLACK,
    ArmRefusal,
    assign_body,
    extend_body,
    is_settled,
    iso_duration,
    justification,
    policy_hint,
    provider_error,
    remove_body,
    schedule_request_name,
)
from jitbot.testing.arm_standin import ArmStandIn
from jitbot.testing.role_management import PimPolicy

SUBSCRIPTION = "/subscriptions/00000000-0000-0000-0000-000000000001"
SCOPE = f"{SUBSCRIPTION}/resourceGroups/prod"
ROLE_GUID = "9980e02c-c2be-4d73-94e8-173b1dc7cf3c"
ROLE_ID = f"{SUBSCRIPTION}/providers/Microsoft.Authorization/roleDefinitions/{ROLE_GUID}"
OBJECT_ID = "7d1c2b3a-1111-2222-3333-444455556666"
NOW = datetime(2026, 11, 5, 10, 0, 0, 250000, tzinfo=UTC)
HTTP_DATE = "Thu, 05 Nov 2026 10:02:00 GMT"
POLICY_FAILED = "RoleAssignmentRequestPolicyValidationFailed"
AZURE_ENVIRONMENT = (
    "AZURE_CLIENT_ID",
    "AZURE_CLIENT_SECRET",
    "AZURE_TENANT_ID",
    "AZURE_USERNAME",
    "AZURE_CLIENT_CERTIFICATE_PATH",
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_TOKEN_CREDENTIALS",
    "AZURE_ARM_ENDPOINT",
    "IDENTITY_ENDPOINT",
    "IDENTITY_HEADER",
    "IDENTITY_SERVER_THUMBPRINT",
    "IMDS_ENDPOINT",
    "MSI_ENDPOINT",
    "MSI_SECRET",
)


def resource(scope: str = SCOPE, role: str = ROLE_ID) -> Resource:
    week = timedelta(days=7)
    return Resource(
        "prod-vms", "azure", "", ("U0CAROL",), 1, timedelta(hours=1), timedelta(minutes=1), week, week, "C0", False,
        settings=AzureSettings(scope, role),
    )  # fmt: skip


def request(
    request_id: str = "r-abc234",
    duration: timedelta = timedelta(hours=2),
    reason: str = "INC-123 restart the stuck VM",
    identity: dict[str, str] | None = None,
    now: datetime = NOW,
) -> AccessRequest:
    opened, _ = open_request(request_id, "U0ALICE", "prod-vms", duration, reason, now, provider="azure")
    approved = approve(opened, "U0CAROL", 1, now)[0]
    return replace(
        approved,
        identity={"azure_object_id": OBJECT_ID, "email": "alice@example.com"} if identity is None else identity,
    )


class StaticToken:
    """A credential that hands out one fixed token (for the tests that are not about signing in)."""

    def __init__(self, token: str) -> None:
        self.token = token

    def get_token(self, *scopes: str, **kwargs: object) -> AccessToken:
        return AccessToken(self.token, int(time.time()) + 3600)


@pytest.fixture
def arm(request: pytest.FixtureRequest) -> Iterator[ArmStandIn]:
    """The stand-in; with ARM's throttle when a test passes Limits (`parametrize("arm", [...], indirect=True)`)."""
    with ArmStandIn(limits=getattr(request, "param", None)) as standin:
        yield standin


@pytest.fixture
def managed_identity(monkeypatch: pytest.MonkeyPatch, arm: ArmStandIn) -> None:
    """The environment of an App Service with a managed identity whose token endpoint is the stand-in."""
    for name in AZURE_ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("IDENTITY_ENDPOINT", arm.identity_endpoint)
    monkeypatch.setenv("IDENTITY_HEADER", arm.identity_header)


@pytest.fixture
def slept() -> list[float]:
    return []


@pytest.fixture
def provider(arm: ArmStandIn, managed_identity: None, slept: list[float]) -> AzureProvider:
    # credential None: the real DefaultAzureCredential; the polls' sleeps are recorded, not slept
    return AzureProvider(endpoint=arm.url, sleep=slept.append, poll_timeout=10)


def granted(provider: AzureProvider, req: AccessRequest, now: datetime) -> AccessRequest:
    """Grant through the provider, then record it as the lifecycle does (granted_at, the handle)."""
    issued = provider.grant(req, resource(), now)
    return grant(req, issued.handle, now)[0]


def put_bodies(arm: ArmStandIn) -> list[dict]:
    return [r.body for r in arm.arm_requests("PUT")]


# --- pure builders --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("duration", "iso"),
    [
        (timedelta(seconds=30), "PT5M"),
        (timedelta(minutes=5), "PT5M"),
        (timedelta(minutes=5, seconds=1), "PT6M"),
        (timedelta(minutes=45), "PT45M"),
        (timedelta(hours=1, minutes=30), "PT1H30M"),
        (timedelta(hours=2), "PT2H"),
        (timedelta(hours=26), "PT26H"),
    ],
)
def test_iso_duration_when_duration_then_whole_minutes_and_at_least_pim_minimum(duration: timedelta, iso: str) -> None:
    assert iso_duration(duration) == iso


def test_assign_body_when_built_then_pim_admin_assign_for_the_requester() -> None:
    assert assign_body(request(), resource(), NOW) == {
        "properties": {
            "principalId": OBJECT_ID,
            "roleDefinitionId": ROLE_ID,
            "requestType": "AdminAssign",
            "justification": "INC-123 restart the stuck VM",
            "ticketInfo": {"ticketNumber": "r-abc234", "ticketSystem": "jitbot"},
            "scheduleInfo": {
                "startDateTime": "2026-11-05T10:00:00Z",
                "expiration": {"type": "AfterDuration", "duration": "PT2H"},
            },
        }
    }


def test_justification_when_reason_too_long_then_cut_to_pim_limit() -> None:
    long = "x" * (JUSTIFICATION_LIMIT + 50)
    assert len(justification(long)) == JUSTIFICATION_LIMIT
    assert justification(long).endswith("…")
    assert justification("INC-1") == "INC-1"
    assert len(assign_body(request(reason=long), resource(), NOW)["properties"]["justification"]) == JUSTIFICATION_LIMIT


def test_schedule_request_name_when_repeated_then_same_guid_per_request_and_action() -> None:
    name = schedule_request_name("r-abc234", "assign")
    assert name == schedule_request_name("r-abc234", "assign")
    assert len({name, schedule_request_name("r-abc234", "remove"), schedule_request_name("r-xyz789", "assign")}) == 3
    assert len(name) == 36 and name.count("-") == 4


def test_remove_body_when_granted_then_targets_what_the_handle_says_not_the_edited_catalog() -> None:
    handle = {"principal_id": OBJECT_ID, "scope": SCOPE, "role_definition_id": ROLE_ID}
    ended = replace(request(identity={}), grant=handle)
    body = remove_body(ended, resource(role="/providers/Microsoft.Authorization/roleDefinitions/other"))
    assert body["properties"]["requestType"] == "AdminRemove"
    assert body["properties"]["roleDefinitionId"] == ROLE_ID
    assert body["properties"]["principalId"] == OBJECT_ID
    assert "scheduleInfo" not in body["properties"]


def test_extend_body_when_extended_then_admin_extend_of_the_granted_schedule_to_the_new_end() -> None:
    handle = {"principal_id": OBJECT_ID, "scope": SCOPE, "role_definition_id": ROLE_ID, "schedule_id": "sched-1"}
    extended = replace(request(), grant=handle, expires_at=NOW + timedelta(hours=3))
    properties = extend_body(extended, resource())["properties"]
    assert properties["requestType"] == "AdminExtend"
    assert properties["targetRoleAssignmentScheduleId"] == "sched-1"
    assert properties["scheduleInfo"] == {
        "expiration": {"type": "AfterDateTime", "endDateTime": "2026-11-05T13:00:00Z"}
    }


def test_extend_body_when_no_schedule_on_record_then_non_retryable() -> None:
    with pytest.raises(ProviderError) as raised:
        extend_body(replace(request(), expires_at=NOW + timedelta(hours=3)), resource())
    assert not raised.value.retryable and "first expiry" in str(raised.value)


def test_assign_body_when_no_azure_object_id_then_non_retryable_error_naming_it() -> None:
    with pytest.raises(ProviderError) as raised:
        assign_body(request(identity={"email": "alice@example.com"}), resource(), NOW)
    assert not raised.value.retryable
    assert "azure_object_id" in str(raised.value) and "U0ALICE" in str(raised.value)


@pytest.mark.parametrize(
    ("refusal", "retryable", "not_before", "words"),
    [
        (ArmRefusal(403, "AuthorizationFailed", "no"), False, None, ["User Access Administrator", "Owner", SCOPE]),
        (ArmRefusal(429, "TooManyRequests", "slow", "30"), True, NOW + timedelta(seconds=30), ["10:00:30"]),
        (ArmRefusal(503, "ServiceUnavailable", "busy", HTTP_DATE), True, NOW.replace(minute=2, microsecond=0), []),
        (ArmRefusal(500, "InternalServerError", "oops"), True, None, ["InternalServerError"]),
        (ArmRefusal(409, "Conflict", "busy"), True, None, ["Conflict"]),
        (ArmRefusal(400, "PendingRoleAssignmentRequest", "pending"), True, None, []),
        (ArmRefusal(400, POLICY_FAILED, 'The following policy rules failed: ["ExpirationRule"]'), False, None,
         ["PIM's settings", "Expire active assignments after", "Settings → the role → Edit → Assignment"]),
        (ArmRefusal(404, "NotFound", "no scope"), False, None, ["scope and role_definition_id"]),
    ],
)  # fmt: skip
def test_provider_error_when_arm_refuses_then_retryable_and_message_fit_the_cause(
    refusal: ArmRefusal, retryable: bool, not_before: datetime | None, words: list[str]
) -> None:
    error = provider_error("assign", refusal, SCOPE, NOW)
    assert error.retryable is retryable
    assert error.not_before == not_before
    assert error.throttled is (refusal.status == 429)  # its Retry-After is a throttle's, not PIM's deferral
    for word in words:
        assert word in str(error)


@pytest.mark.parametrize(
    ("status", "wanted"),
    [("Failed", "Provisioned"), ("Denied", "Provisioned"), ("FailedAsResourceIsLocked", "Revoked"),
     ("Revoked", "Provisioned"), ("Canceled", "Revoked")],
)  # fmt: skip
def test_is_settled_when_pim_status_is_a_failure_then_non_retryable(status: str, wanted: str) -> None:
    with pytest.raises(ProviderError) as raised:
        is_settled(status, wanted, "name-1")
    assert not raised.value.retryable and status in str(raised.value)


@pytest.mark.parametrize(
    ("status", "settled"),
    [("Provisioned", True), ("Granted", False), ("Accepted", False), ("PendingProvisioning", False),
     ("ScheduleCreated", False), (None, False)],
)  # fmt: skip
def test_is_settled_when_assigning_then_only_provisioned_is_done(status: str | None, settled: bool) -> None:
    assert is_settled(status, "Provisioned", "name-1") is settled


@pytest.mark.parametrize(
    ("message", "words"),
    [('The following policy rules failed: ["MfaRule"]', ["Multi-Factor Authentication on active assignment",
                                                           "service principal"]),
     ('The following policy rules failed: ["JustificationRule","TicketingRule"]',
      ["Require justification on active assignment", "ticket"]),
     ("The following policy rules failed: [\"EligibilityRule\"]", ["EligibilityRule"])],
)  # fmt: skip
def test_policy_hint_when_rules_fail_then_each_named_with_its_setting(message: str, words: list[str]) -> None:
    hint = policy_hint(message, SCOPE)
    assert f"PIM → Azure resources → {SCOPE} → Settings" in hint
    for word in words:
        assert word in hint


@pytest.mark.parametrize(
    ("endpoint", "loopback"),
    [
        ("http://127.0.0.1:8080", True),
        ("http://localhost:1234/", True),
        ("http://[::1]:80", True),
        ("https://management.azure.com", False),
        ("https://management.usgovcloudapi.net", False),
        ("http://10.1.2.3", False),
    ],
)
def test_is_loopback_when_endpoint_then_only_this_machine(endpoint: str, loopback: bool) -> None:
    assert is_loopback(endpoint) is loopback


# --- against the ARM stand-in, through the real SDK -----------------------------------------------


def test_grant_then_revoke_when_allowed_then_assign_and_remove_requests_as_built(
    provider: AzureProvider, arm: ArmStandIn
) -> None:
    now = datetime.now(UTC)
    req = request(now=now)
    issued = provider.grant(req, resource(), now)
    [assignment] = arm.assignments
    assert (assignment.principal_id, assignment.scope, assignment.role_definition_id) == (OBJECT_ID, SCOPE, ROLE_ID)
    assert assignment.end - assignment.start == timedelta(hours=2)
    name = schedule_request_name(req.id, "assign")
    assert issued.handle == {
        "schedule_request": name,
        "schedule_request_id": f"{SCOPE}/providers/Microsoft.Authorization/roleAssignmentScheduleRequests/{name}",
        "principal_id": OBJECT_ID,
        "scope": SCOPE,
        "role_definition_id": ROLE_ID,
        "schedule_id": assignment.schedule,  # a bare GUID, as PutRoleAssignmentScheduleRequest.json answers
    }
    assert issued.access == {
        "Role": "Virtual Machine Contributor",
        "Scope": SCOPE,
        "Identity": f"{OBJECT_ID} (alice@example.com)",
        "Until": (now + timedelta(hours=2)).isoformat(),
        "Console": PORTAL_PIM,
    }
    assert issued.credentials.fields() == {}

    active = grant(req, issued.handle, now)[0]
    arm.advance(PIM_MINIMUM)
    provider.revoke(active, resource(), datetime.now(UTC))
    assert arm.assignments == []
    assert put_bodies(arm) == [assign_body(req, resource(), now), remove_body(active, resource())]
    [assign_put, remove_put] = arm.arm_requests("PUT")
    assert assign_put.path.endswith(f"/roleAssignmentScheduleRequests/{name}")
    assert remove_put.path.endswith(f"/roleAssignmentScheduleRequests/{schedule_request_name(req.id, 'remove')}")
    assert assign_put.query["api-version"] == "2020-10-01"


def test_grant_when_repeated_then_one_assignment_and_the_same_handle(provider: AzureProvider, arm: ArmStandIn) -> None:
    now = datetime.now(UTC)
    first = provider.grant(request(now=now), resource(), now)
    second = provider.grant(request(now=now), resource(), now)
    assert second.handle == first.handle
    assert len(arm.assignments) == 1
    assert {r.answered for r in arm.arm_requests("PUT")} == {201, 400}  # ARM said it exists; that is success


def test_grant_when_arm_answers_409_exists_for_our_request_then_success(
    provider: AzureProvider, arm: ArmStandIn
) -> None:
    now = datetime.now(UTC)
    provider.grant(request(now=now), resource(), now)
    arm.fail(409, code="RoleAssignmentExists", message="The role assignment already exists.")
    assert provider.grant(request(now=now), resource(), now).access["Role"] == "Virtual Machine Contributor"


def test_grant_when_another_assignment_holds_the_role_then_refused_and_left_alone(
    provider: AzureProvider, arm: ArmStandIn
) -> None:
    now = datetime.now(UTC)
    provider.grant(request("r-other2", now=now), resource(), now)
    with pytest.raises(ProviderError) as raised:
        provider.grant(request("r-abc234", now=now), resource(), now)
    assert not raised.value.retryable
    assert "already holds this role" in str(raised.value)
    assert [a.request_name for a in arm.assignments] == [schedule_request_name("r-other2", "assign")]


def test_grant_when_exists_and_looking_up_our_request_fails_then_retryable(
    provider: AzureProvider, arm: ArmStandIn
) -> None:
    arm.fail(400, code="RoleAssignmentExists", message="The Role assignment already exists.")
    arm.fail(503, retry_after=5)
    with pytest.raises(ProviderError) as raised:
        provider.grant(request(), resource(), datetime.now(UTC))
    assert raised.value.retryable and raised.value.not_before is not None
    assert [(r.method, r.answered) for r in arm.arm_requests()] == [("PUT", 400), ("GET", 503)]


def test_grant_when_other_conflict_then_retryable(provider: AzureProvider, arm: ArmStandIn) -> None:
    arm.fail(409, code="Conflict", message="Another operation is in progress on this scope.")
    with pytest.raises(ProviderError) as raised:
        provider.grant(request(), resource(), datetime.now(UTC))
    assert raised.value.retryable and "in progress" in str(raised.value)


def test_grant_when_short_duration_then_pim_minimum_sent_and_accepted(provider: AzureProvider, arm: ArmStandIn) -> None:
    now = datetime.now(UTC)
    provider.grant(request(duration=timedelta(minutes=2), now=now), resource(), now)
    assert put_bodies(arm)[0]["properties"]["scheduleInfo"]["expiration"]["duration"] == "PT5M"
    assert len(arm.assignments) == 1


def test_grant_when_no_azure_object_id_then_clear_error_and_no_request(
    provider: AzureProvider, arm: ArmStandIn
) -> None:
    with pytest.raises(ProviderError) as raised:
        provider.grant(request(identity={"email": "alice@example.com"}), resource(), datetime.now(UTC))
    assert not raised.value.retryable and "azure_object_id" in str(raised.value)
    assert arm.requests == []


def test_revoke_when_repeated_then_no_error(provider: AzureProvider, arm: ArmStandIn) -> None:
    now = datetime.now(UTC)
    active = granted(provider, request(now=now), now)
    arm.advance(PIM_MINIMUM)
    provider.revoke(active, resource(), now)
    provider.revoke(active, resource(), now)
    assert arm.assignments == []
    assert [r.answered for r in arm.arm_requests("PUT")] == [201, 201, 400]


def test_revoke_when_pim_already_expired_it_then_no_op(provider: AzureProvider, arm: ArmStandIn) -> None:
    now = datetime.now(UTC)
    active = granted(provider, request(duration=timedelta(minutes=5), now=now), now)
    arm.advance(timedelta(minutes=6))
    assert arm.assignments == []  # PIM's own expiry, the backstop
    provider.revoke(active, resource(), now)
    assert arm.arm_requests("PUT")[-1].answered == 400


def test_revoke_when_in_first_five_minutes_then_retryable_until_allowed(
    provider: AzureProvider, arm: ArmStandIn
) -> None:
    now = datetime.now(UTC)
    active = granted(provider, request(now=now), now)
    with pytest.raises(ProviderError) as raised:
        provider.revoke(active, resource(), now + timedelta(minutes=1))
    assert raised.value.retryable
    assert raised.value.not_before == now + PIM_MINIMUM + REMOVE_SLACK
    assert "first 5 minutes" in str(raised.value)
    assert f"{raised.value.not_before:%H:%M:%S} UTC" in str(raised.value)
    assert len(arm.assignments) == 1

    arm.advance(PIM_MINIMUM + REMOVE_SLACK)
    provider.revoke(active, resource(), now + PIM_MINIMUM + REMOVE_SLACK)
    assert arm.assignments == []


def test_revoke_when_never_recorded_as_granted_then_falls_back_to_catalog_and_identity(
    provider: AzureProvider, arm: ArmStandIn
) -> None:
    now = datetime.now(UTC)
    req = request(now=now)
    provider.grant(req, resource(), now)  # issued, but the lifecycle never recorded it (no handle, no granted_at)
    with pytest.raises(ProviderError) as raised:
        provider.revoke(req, resource(), now)
    assert raised.value.not_before == now + PIM_MINIMUM + REMOVE_SLACK


def test_extend_when_approved_then_pim_end_moves_to_the_new_expiry_and_repeat_is_harmless(
    provider: AzureProvider, arm: ArmStandIn
) -> None:
    now = datetime.now(UTC)
    active = granted(provider, request(duration=timedelta(hours=1), now=now), now)
    asked = ask_extension(active, timedelta(hours=1), "INC-123 still broken", now, timedelta(hours=1))[0]
    extended = approve(asked, "U0CAROL", 1, now)[0]  # the one approval needed: expires_at moves an hour on
    issued = provider.extend(extended, resource(), now)
    provider.extend(extended, resource(), now)
    assert issued.handle == active.grant
    [assignment] = arm.assignments
    assert assignment.end == (now + timedelta(hours=2)).replace(microsecond=0)
    assert [r.body["properties"]["requestType"] for r in arm.arm_requests("PUT")] == [
        "AdminAssign",
        "AdminExtend",
        "AdminExtend",
    ]
    assert [r.answered for r in arm.arm_requests("PUT")] == [201, 201, 400]


def test_grant_when_403_then_non_retryable_naming_the_permission(provider: AzureProvider, arm: ArmStandIn) -> None:
    arm.fail(403, message="The client does not have authorization to perform action over scope.")
    with pytest.raises(ProviderError) as raised:
        provider.grant(request(), resource(), datetime.now(UTC))
    assert not raised.value.retryable
    assert "AuthorizationFailed" in str(raised.value)
    assert "User Access Administrator" in str(raised.value) and SCOPE in str(raised.value)


def test_grant_when_429_with_retry_after_then_retryable_after_it_without_sdk_retries(
    provider: AzureProvider, arm: ArmStandIn
) -> None:
    arm.fail(429, retry_after=30)
    now = datetime.now(UTC)
    with pytest.raises(ProviderError) as raised:
        provider.grant(request(), resource(), now)
    assert raised.value.retryable
    assert raised.value.not_before == now + timedelta(seconds=30)
    assert len(arm.arm_requests("PUT")) == 1  # the SDK did not sleep out the Retry-After in the worker


@pytest.mark.parametrize("arm", [Limits(p50_s=0.001, writes_per_s=0.1, burst=1)], indirect=True)
def test_grant_when_arm_throttles_the_subscriptions_writes_then_retryable_at_its_retry_after_without_sdk_retries(
    provider: AzureProvider, arm: ArmStandIn
) -> None:
    now = datetime.now(UTC)
    second = request("r-second", identity={"azure_object_id": "0f1e2d3c-aaaa-bbbb-cccc-ddddeeeeffff"})
    provider.grant(request("r-first"), resource(), now)  # the bucket's one token
    with pytest.raises(ProviderError) as raised:
        provider.grant(second, resource(), now)
    assert raised.value.retryable
    assert raised.value.not_before == now + timedelta(seconds=10)  # Retry-After: a token every 10 s
    assert "SubscriptionRequestsThrottled" in str(raised.value)
    assert [r.answered for r in arm.arm_requests("PUT")] == [201, 429]  # the SDK did not retry it in the worker

    arm.advance(timedelta(seconds=10))
    provider.grant(second, resource(), now + timedelta(seconds=10))
    assert len(arm.assignments) == 2


def test_revoke_when_500_then_retryable(provider: AzureProvider, arm: ArmStandIn) -> None:
    now = datetime.now(UTC)
    active = granted(provider, request(now=now), now)
    arm.advance(PIM_MINIMUM)
    arm.fail(500)
    with pytest.raises(ProviderError) as raised:
        provider.revoke(active, resource(), now)
    assert raised.value.retryable and raised.value.not_before is None
    assert len(arm.assignments) == 1


def test_default_credential_when_managed_identity_env_then_token_from_standin_carried_to_arm(
    monkeypatch: pytest.MonkeyPatch, arm: ArmStandIn
) -> None:
    for name in AZURE_ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    provider = AzureProvider(endpoint=arm.url)  # before the environment is set: the credential is made lazily
    monkeypatch.setenv("IDENTITY_ENDPOINT", arm.identity_endpoint)
    monkeypatch.setenv("IDENTITY_HEADER", arm.identity_header)
    provider.grant(request(), resource(), datetime.now(UTC))
    [token_request] = [r for r in arm.requests if r.path == "/msi/token"]
    assert token_request.query == {"api-version": "2019-08-01", "resource": arm.url}
    [token] = arm.tokens
    assert [r.token for r in arm.arm_requests()] == [token]


def test_grant_when_managed_identity_refuses_then_non_retryable_sign_in_error(
    provider: AzureProvider, arm: ArmStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IDENTITY_HEADER", "wrong")
    with pytest.raises(ProviderError) as raised:
        provider.grant(request(), resource(), datetime.now(UTC))
    assert not raised.value.retryable and "sign-in failed" in str(raised.value)
    assert arm.arm_requests() == []


def test_grant_when_arm_rejects_the_token_then_non_retryable_sign_in_error(arm: ArmStandIn) -> None:
    provider = AzureProvider(endpoint=arm.url, credential=StaticToken("not-issued-by-arm"))
    with pytest.raises(ProviderError) as raised:
        provider.grant(request(), resource(), datetime.now(UTC))
    assert not raised.value.retryable and "sign-in failed" in str(raised.value)
    assert [r.answered for r in arm.arm_requests()] == [401]


def test_grant_when_arm_unreachable_then_retryable() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    provider = AzureProvider(endpoint=f"http://127.0.0.1:{port}", credential=StaticToken("token"))
    with pytest.raises(ProviderError) as raised:
        provider.grant(request(), resource(), datetime.now(UTC))
    assert raised.value.retryable and raised.value.unanswered and "could not be reached" in str(raised.value)


def test_grant_when_plain_http_endpoint_is_not_loopback_then_no_token_is_sent() -> None:
    provider = AzureProvider(endpoint="http://arm.example.invalid", credential=StaticToken("token"))
    with pytest.raises(ProviderError) as raised:  # azure-core refuses before any connection is made
        provider.grant(request(), resource(), datetime.now(UTC))
    assert "non-https" in str(raised.value)


def test_check_when_role_definition_readable_then_ok_with_its_name(provider: AzureProvider, arm: ArmStandIn) -> None:
    said = "ok: Virtual Machine Contributor; PIM active assignment: at most 180d, justification (jitbot sends them)"
    assert provider.check(resource()) == said  # PIM's defaults for an Azure resource role
    tenant_form = f"/providers/Microsoft.Authorization/roleDefinitions/{ROLE_GUID}"
    assert provider.check(resource(role=tenant_form)) == said
    assert arm.arm_requests("GET")[0].path == f"{SCOPE}/providers/Microsoft.Authorization/roleDefinitions/{ROLE_GUID}"


def test_check_when_role_definition_unknown_then_non_retryable_pointing_at_the_setting(provider: AzureProvider) -> None:
    unknown = f"{SUBSCRIPTION}/providers/Microsoft.Authorization/roleDefinitions/00000000-0000-0000-0000-00000000dead"
    with pytest.raises(ProviderError) as raised:
        provider.check(resource(role=unknown))
    assert not raised.value.retryable
    assert "RoleDefinitionDoesNotExist" in str(raised.value) and "role_definition_id" in str(raised.value)


def test_provider_errors_when_any_failure_then_no_token_in_the_message(
    provider: AzureProvider, arm: ArmStandIn
) -> None:
    now = datetime.now(UTC)
    messages = []
    for status in (403, 429, 500, 409):
        arm.fail(status, retry_after=7)
        with pytest.raises(ProviderError) as raised:
            provider.grant(request(), resource(), now)
        messages.append(str(raised.value))
    active = granted(provider, request(now=now), now)
    with pytest.raises(ProviderError) as raised:
        provider.revoke(active, resource(), now)
    messages.append(str(raised.value))
    [token] = arm.tokens
    assert len(messages) == 5
    assert not [m for m in messages if token in m or arm.identity_header in m]


# --- PIM's statuses, policy, read-back and drift -----------------------------------------------------------------

BOB = "1e2d3c4b-aaaa-bbbb-cccc-ddddeeeeffff"


def gets(arm: ArmStandIn) -> list[str]:
    """The schedule requests read back by name, in order."""
    return [r.path.rsplit("/", 1)[-1] for r in arm.arm_requests("GET") if "/roleAssignmentScheduleRequests/" in r.path]


def test_grant_when_pim_answers_pending_provisioning_then_returned_only_once_provisioned(
    provider: AzureProvider, arm: ArmStandIn, slept: list[float]
) -> None:
    now = datetime.now(UTC)
    arm.pim.pending("PendingProvisioning", gets=2)
    issued = provider.grant(request(now=now), resource(), now)
    assert gets(arm) == [issued.handle["schedule_request"]] * 2  # read until Provisioned, backing off
    assert slept == [0.5, 1.0]
    [assignment] = arm.assignments
    assert issued.handle["schedule_id"] == assignment.schedule


def test_grant_when_pim_never_settles_within_the_bound_then_retryable_and_the_rerun_waits_on_the_same_request(
    provider: AzureProvider, arm: ArmStandIn, slept: list[float]
) -> None:
    now = datetime.now(UTC)
    arm.pim.pending("PendingProvisioning", gets=7)  # the bound (10 s) allows 5 reads: 0.5 + 1 + 2 + 4 + 4 s
    with pytest.raises(ProviderError) as raised:
        provider.grant(request(now=now), resource(), now)
    assert raised.value.retryable and "PendingProvisioning" in str(raised.value)
    assert arm.assignments == [] and len(gets(arm)) == 5

    issued = provider.grant(request(now=now), resource(), now)  # the job again: RequestExists, then read on
    assert [r.answered for r in arm.arm_requests("PUT")] == [201, 400]
    assert len(gets(arm)) == 7 and len(arm.assignments) == 1
    assert issued.handle["schedule_id"] == arm.assignments[0].schedule


def test_grant_when_pim_settles_on_failed_then_non_retryable_naming_it(
    provider: AzureProvider, arm: ArmStandIn
) -> None:
    arm.pim.pending("PendingEvaluation", gets=1, final="Failed")
    with pytest.raises(ProviderError) as raised:
        provider.grant(request(), resource(), datetime.now(UTC))
    assert not raised.value.retryable and "Failed" in str(raised.value)
    assert arm.assignments == []


def test_revoke_when_pim_answers_pending_revocation_then_done_only_once_revoked(
    provider: AzureProvider, arm: ArmStandIn
) -> None:
    now = datetime.now(UTC)
    active = granted(provider, request(now=now), now)
    arm.advance(PIM_MINIMUM)
    arm.pim.pending("PendingRevocation", gets=7)
    with pytest.raises(ProviderError) as raised:
        provider.revoke(active, resource(), now)
    assert raised.value.retryable and "PendingRevocation" in str(raised.value)
    assert len(arm.assignments) == 1  # not gone while PIM says PendingRevocation

    provider.revoke(active, resource(), now)  # RequestExists: the same removal, read until Revoked
    assert arm.assignments == []
    assert [r.answered for r in arm.arm_requests("PUT")] == [201, 201, 400]


def test_extend_when_pim_answers_accepted_then_waits_for_provisioned(provider: AzureProvider, arm: ArmStandIn) -> None:
    now = datetime.now(UTC)
    active = granted(provider, request(duration=timedelta(hours=1), now=now), now)
    extended = replace(active, expires_at=now + timedelta(hours=2))
    arm.pim.pending("Accepted", gets=1)
    provider.extend(extended, resource(), now)
    assert arm.assignments[0].end == (now + timedelta(hours=2)).replace(microsecond=0)


def test_grant_when_policy_requires_mfa_on_active_assignment_then_refused_naming_the_setting(
    provider: AzureProvider, arm: ArmStandIn
) -> None:
    arm.pim.set_policy(SCOPE, ROLE_ID, PimPolicy(mfa=True))
    with pytest.raises(ProviderError) as raised:
        provider.grant(request(), resource(), datetime.now(UTC))
    assert not raised.value.retryable
    said = str(raised.value)
    assert POLICY_FAILED in said and "Require Azure Multi-Factor Authentication on active assignment" in said
    assert "service principal" in said and f"PIM → Azure resources → {SCOPE} → Settings" in said
    assert arm.assignments == []

    with pytest.raises(ProviderError) as checked:
        provider.check(resource())
    assert not checked.value.retryable and "Multi-Factor Authentication" in str(checked.value)


def test_check_when_policy_maximum_shorter_than_max_duration_then_refused_naming_the_setting(
    provider: AzureProvider, arm: ArmStandIn
) -> None:
    arm.pim.set_policy(SCOPE, ROLE_ID, PimPolicy(maximum=timedelta(days=1)))
    with pytest.raises(ProviderError) as raised:
        provider.check(resource())  # the catalog allows a week
    assert not raised.value.retryable
    assert "1d at most" in str(raised.value) and "Expire active assignments after" in str(raised.value)


def test_grant_when_longer_than_the_policy_allows_then_refused_by_the_expiration_rule(
    provider: AzureProvider, arm: ArmStandIn
) -> None:
    arm.pim.set_policy(SCOPE, ROLE_ID, PimPolicy(maximum=timedelta(hours=1)))
    with pytest.raises(ProviderError) as raised:
        provider.grant(request(duration=timedelta(hours=2)), resource(), datetime.now(UTC))
    assert not raised.value.retryable and "Expire active assignments after" in str(raised.value)


def test_check_when_policy_asks_ticket_and_allows_permanent_then_ok_reporting_them(
    provider: AzureProvider, arm: ArmStandIn
) -> None:
    arm.pim.set_policy(SCOPE, ROLE_ID, PimPolicy(justification=True, ticket=True, maximum=None))
    said = provider.check(resource())
    assert said == (
        "ok: Virtual Machine Contributor; PIM active assignment: no maximum, justification and ticket "
        "(jitbot sends them)"
    )
    [listed] = [r for r in arm.arm_requests("GET") if r.path.endswith("/roleManagementPolicyAssignments")]
    assert listed.path.startswith(SCOPE) and listed.query["api-version"] == "2020-10-01"


def test_admin_assignment_demands_when_other_levels_and_callers_then_ignored() -> None:
    rules = [
        EnablementRule(id="Enablement_EndUser_Assignment", enabled_rules=["MultiFactorAuthentication"]),
        ExpirationRule(id="Expiration_Admin_Eligibility", is_expiration_required=True, maximum_duration="P1D"),
        ExpirationRule(id="Expiration_Admin_Assignment", is_expiration_required=True, maximum_duration="PT8H"),
    ]
    demands = admin_assignment_demands(rules)
    assert (demands.mfa, demands.maximum) == (False, timedelta(hours=8))


def test_verify_revoked_when_still_active_then_retryable_and_after_revoke_passes(
    provider: AzureProvider, arm: ArmStandIn
) -> None:
    now = datetime.now(UTC)
    active = granted(provider, request(now=now), now)
    with pytest.raises(ProviderError) as raised:
        provider.verify_revoked(active, resource(), now)
    assert raised.value.retryable and active.grant["schedule_id"] in str(raised.value)

    arm.advance(PIM_MINIMUM)
    provider.revoke(active, resource(), now)
    said = provider.verify_revoked(active, resource(), now)
    assert said.startswith(f"read 0 active assignment(s) of {OBJECT_ID} at {SCOPE}")
    [listed, *_] = [r for r in arm.arm_requests("GET") if r.path.endswith("/roleAssignmentScheduleInstances")]
    assert listed.query["$filter"] == f"principalId eq '{OBJECT_ID}'"


def test_verify_revoked_when_the_principal_holds_the_role_through_another_schedule_then_passes(
    provider: AzureProvider, arm: ArmStandIn
) -> None:
    now = datetime.now(UTC)
    active = replace(granted(provider, request(now=now), now), grant={})  # a grant never recorded: found by name
    arm.advance(PIM_MINIMUM)
    provider.revoke(active, resource(), now)
    arm.pim.standing(SCOPE, ROLE_ID, OBJECT_ID, timedelta(days=30))  # someone else's, not jitbot's to verify
    assert "read 1 active assignment(s)" in provider.verify_revoked(active, resource(), now)


def test_held_when_jitbot_assignment_and_a_standing_one_then_only_jitbots_with_its_ticket(
    provider: AzureProvider, arm: ArmStandIn
) -> None:
    now = datetime.now(UTC)
    active = granted(provider, request(now=now), now)
    arm.pim.standing(SCOPE, ROLE_ID, BOB, timedelta(days=30))
    [held] = provider.held(resource(), now)
    assert held.holders == frozenset({"r-abc234"})
    assert held.what == f"Virtual Machine Contributor for {OBJECT_ID} on {SCOPE}"
    assert held.ref["schedule_id"].endswith(active.grant["schedule_id"])


def test_remove_when_held_then_taken_away_and_safe_to_repeat(provider: AzureProvider, arm: ArmStandIn) -> None:
    now = datetime.now(UTC)
    granted(provider, request(now=now), now)
    standing = arm.pim.standing(SCOPE, ROLE_ID, BOB, timedelta(days=30))
    [held] = provider.held(resource(), now)
    with pytest.raises(ProviderError) as raised:
        provider.remove(held, resource(), now)
    assert raised.value.retryable and raised.value.not_before is not None  # PIM's first five minutes

    arm.advance(PIM_MINIMUM)
    arm.pim.pending("PendingRevocation", gets=1)
    assert provider.remove(held, resource(), now) is True
    assert provider.remove(held, resource(), now) is True  # RequestExists: read back, Revoked
    assert arm.assignments == [standing]
    other = replace(held, ref=held.ref | {"schedule_id": str(uuid.uuid4())})  # another scan's find, gone since
    assert provider.remove(other, resource(), now) is False  # RoleAssignmentDoesNotExist: nothing to record
    assert provider.held(resource(), now) == []
    removal = arm.arm_requests("PUT")[-1].body["properties"]
    assert removal["requestType"] == "AdminRemove" and removal["ticketInfo"]["ticketNumber"] == "r-abc234"
