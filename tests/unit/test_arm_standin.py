"""The ARM stand-in refuses what PIM refuses and lists in the shapes of azure-rest-api-specs' 2020-10-01 examples."""

import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from jitbot.providers.limits import Limits
from jitbot.testing.arm_standin import MANAGED_IDENTITY_API, SCHEDULE_REQUESTS_API, ArmStandIn
from jitbot.testing.role_management import PimPolicy

SUBSCRIPTION = "00000000-0000-0000-0000-000000000001"
SCOPE = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/prod"
ROLE_GUID = "9980e02c-c2be-4d73-94e8-173b1dc7cf3c"
ROLE_ID = (
    f"/subscriptions/00000000-0000-0000-0000-000000000001/providers/Microsoft.Authorization/roleDefinitions/{ROLE_GUID}"
)
PRINCIPAL = "7d1c2b3a-1111-2222-3333-444455556666"
AUTHORIZATION = "/providers/Microsoft.Authorization"
# a subscription's writes: 3 at once, then one every 10 s; latency of a millisecond, so the tests do not wait
LIMITS = Limits(p50_s=0.001, writes_per_s=0.1, burst=3)
WRITES_LEFT = "x-ms-ratelimit-remaining-subscription-writes"
READS_LEFT = "x-ms-ratelimit-remaining-subscription-reads"


@pytest.fixture
def arm() -> Iterator[ArmStandIn]:
    with ArmStandIn() as standin:
        yield standin


def call(arm: ArmStandIn, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    """One ARM call with a token the stand-in issued; (status, JSON answer)."""
    status, answer, _ = exchange(arm, method, path, body)
    return status, answer


def exchange(
    arm: ArmStandIn, method: str, path: str, body: dict[str, Any] | None = None
) -> tuple[int, Any, dict[str, str]]:
    """One ARM call with a token the stand-in issued; (status, JSON answer, headers by lower-case name)."""
    asked = urllib.request.Request(
        f"{arm.identity_endpoint}?api-version={MANAGED_IDENTITY_API}&resource={arm.url}",
        headers={"X-IDENTITY-HEADER": arm.identity_header},
    )
    with urllib.request.urlopen(asked, timeout=10) as answer:
        token = json.load(answer)["access_token"]
    sep = "&" if "?" in path else "?"
    sent = urllib.request.Request(
        f"{arm.url}{path}{sep}api-version={SCHEDULE_REQUESTS_API}",
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method=method,
    )
    try:
        with urllib.request.urlopen(sent, timeout=10) as answer:
            return answer.status, json.load(answer), {k.lower(): v for k, v in answer.headers.items()}
    except urllib.error.HTTPError as refused:
        return refused.code, json.load(refused), {k.lower(): v for k, v in refused.headers.items()}


def assign(arm: ArmStandIn, **extra: Any) -> tuple[int, Any]:
    status, answer, _ = assign_exchange(arm, **extra)
    return status, answer


def assign_exchange(arm: ArmStandIn, scope: str = SCOPE, **extra: Any) -> tuple[int, Any, dict[str, str]]:
    properties = {
        "principalId": PRINCIPAL,
        "roleDefinitionId": ROLE_ID,
        "requestType": "AdminAssign",
        "scheduleInfo": {"expiration": {"type": "AfterDuration", "duration": "PT2H"}},
        **extra,
    }
    path = f"{scope}{AUTHORIZATION}/roleAssignmentScheduleRequests/{uuid.uuid4()}"
    return exchange(arm, "PUT", path, {"properties": properties})


def test_assign_when_no_justification_then_refused_by_pims_default_policy(arm: ArmStandIn) -> None:
    status, answer = assign(arm)
    assert status == 400
    assert answer["error"] == {
        "code": "RoleAssignmentRequestPolicyValidationFailed",
        "message": 'The following policy rules failed: ["JustificationRule"]',
    }
    assert arm.assignments == []


@pytest.mark.parametrize(
    "role",
    [
        f"/providers/Microsoft.Authorization/roleDefinitions/{ROLE_GUID}",  # the tenant form, under a subscription
        f"/subscriptions/00000000-0000-0000-0000-000000000002/providers/Microsoft.Authorization/roleDefinitions/{ROLE_GUID}",
    ],
)
def test_assign_when_role_not_in_the_form_of_the_scope_then_refused(arm: ArmStandIn, role: str) -> None:
    status, answer = assign(arm, justification="INC-1", roleDefinitionId=role)
    assert (status, answer["error"]["code"]) == (400, "ScopeDoesNotMatchRoleDefinition")
    assert arm.assignments == []


def test_assign_when_policy_demands_mfa_ticket_and_one_hour_then_each_rule_named(arm: ArmStandIn) -> None:
    arm.pim.set_policy(SCOPE, ROLE_ID, PimPolicy(mfa=True, ticket=True, maximum=timedelta(hours=1)))
    status, answer = assign(arm, justification="INC-1")
    assert status == 400
    assert (
        answer["error"]["message"] == 'The following policy rules failed: ["ExpirationRule","MfaRule","TicketingRule"]'
    )


def test_lists_when_assigned_then_instances_link_to_the_requests_schedule(arm: ArmStandIn) -> None:
    status, made = assign(arm, justification="INC-1", ticketInfo={"ticketNumber": "r-1", "ticketSystem": "jitbot"})
    assert status == 201 and made["properties"]["status"] == "Provisioned"
    schedule = made["properties"]["targetRoleAssignmentScheduleId"]
    assert uuid.UUID(schedule)  # a bare GUID, as PutRoleAssignmentScheduleRequest.json answers

    _, listed = call(arm, "GET", f"{SCOPE}{AUTHORIZATION}/roleAssignmentScheduleInstances?$filter=atScope()")
    [instance] = listed["value"]
    assert (
        instance["properties"]["roleAssignmentScheduleId"]
        == f"{SCOPE}{AUTHORIZATION}/RoleAssignmentSchedules/{schedule}"
    )
    _, requests = call(arm, "GET", f"{SCOPE}{AUTHORIZATION}/roleAssignmentScheduleRequests?$filter=asRequestor()")
    assert [r["name"] for r in requests["value"]] == [made["name"]]


def test_lists_when_filter_not_documented_then_refused(arm: ArmStandIn) -> None:
    status, _ = call(arm, "GET", f"{SCOPE}{AUTHORIZATION}/roleAssignmentScheduleInstances?$filter=asRequestor()")
    assert status == 400


def test_policy_assignments_when_listed_then_admin_assignment_rules_per_role(arm: ArmStandIn) -> None:
    _, listed = call(arm, "GET", f"{SCOPE}{AUTHORIZATION}/roleManagementPolicyAssignments")
    [mine] = [a for a in listed["value"] if a["properties"]["roleDefinitionId"] == ROLE_ID]
    rules = {rule["id"]: rule for rule in mine["properties"]["effectiveRules"]}
    assert rules["Enablement_Admin_Assignment"]["enabledRules"] == ["Justification"]
    assert rules["Expiration_Admin_Assignment"]["maximumDuration"] == "P180D"
    assert rules["Expiration_Admin_Assignment"]["target"]["level"] == "Assignment"


# --- ARM's throttle (limits on) -----------------------------------------------------------------------


def test_writes_when_limited_then_past_the_burst_429_throttled_with_retry_after_until_the_bucket_refills() -> None:
    with ArmStandIn(limits=LIMITS) as arm:
        answers = [assign_exchange(arm, justification="INC-1", principalId=str(uuid.uuid4())) for _ in range(4)]
        assert [status for status, _, _ in answers] == [201, 201, 201, 429]
        assert [headers[WRITES_LEFT] for _, _, headers in answers] == ["2", "1", "0", "0"]
        assert all(READS_LEFT not in headers for _, _, headers in answers)  # a write reports its own bucket
        _, refused, headers = answers[-1]
        assert headers["retry-after"] == "10"  # a token every 10 s; ARM says when in whole seconds
        assert refused["error"]["code"] == "SubscriptionRequestsThrottled"
        assert f"'write' requests for subscription '{SUBSCRIPTION}'" in refused["error"]["message"]
        assert "Please try again after '10' seconds." in refused["error"]["message"]
        assert len(arm.assignments) == 3  # the refused write did nothing

        arm.advance(timedelta(seconds=10))
        status, _, headers = assign_exchange(arm, justification="INC-1")
        assert (status, headers[WRITES_LEFT]) == (201, "0")


def test_writes_when_one_subscription_is_throttled_then_another_subscription_and_reads_unaffected() -> None:
    other = "00000000-0000-0000-0000-000000000002"
    with ArmStandIn(limits=LIMITS) as arm:
        for _ in range(4):
            assign_exchange(arm, justification="INC-1", principalId=str(uuid.uuid4()))
        role = f"/subscriptions/{other}/providers/Microsoft.Authorization/roleDefinitions/{ROLE_GUID}"
        status, _, headers = assign_exchange(
            arm, f"/subscriptions/{other}/resourceGroups/prod", justification="INC-1", roleDefinitionId=role
        )
        assert (status, headers[WRITES_LEFT]) == (201, "2")
        path = f"{SCOPE}{AUTHORIZATION}/roleAssignmentScheduleInstances?$filter=atScope()"
        reads = [exchange(arm, "GET", path) for _ in range(2)]
        assert [(status, headers[READS_LEFT]) for status, _, headers in reads] == [(200, "249"), (200, "248")]
        assert all(WRITES_LEFT not in headers for _, _, headers in reads)


def test_calls_when_limited_then_each_takes_its_latency_and_token_requests_none() -> None:
    with ArmStandIn(limits=LIMITS) as arm:
        assert arm.throttle is not None
        slept: list[float] = []
        arm.throttle.sleep = slept.append
        call(arm, "GET", f"{SCOPE}{AUTHORIZATION}/roleManagementPolicyAssignments")  # a token request, then the call
        assert len(slept) == 1 and 0 < slept[0] < 1


def test_calls_when_not_limited_then_no_rate_limit_headers() -> None:
    with ArmStandIn() as arm:
        assert arm.throttle is None
        answers = [assign_exchange(arm, justification="INC-1", principalId=str(uuid.uuid4())) for _ in range(5)]
        assert [status for status, _, _ in answers] == [201] * 5
        assert not any(name.startswith("x-ms-ratelimit") for _, _, headers in answers for name in headers)
