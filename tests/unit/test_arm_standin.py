"""The ARM stand-in refuses what PIM refuses and lists in the shapes of azure-rest-api-specs' 2020-10-01 examples."""

import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from jitbot.testing.arm_standin import MANAGED_IDENTITY_API, SCHEDULE_REQUESTS_API, ArmStandIn, PimPolicy

SCOPE = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/prod"
ROLE_GUID = "9980e02c-c2be-4d73-94e8-173b1dc7cf3c"
ROLE_ID = (
    f"/subscriptions/00000000-0000-0000-0000-000000000001/providers/Microsoft.Authorization/roleDefinitions/{ROLE_GUID}"
)
PRINCIPAL = "7d1c2b3a-1111-2222-3333-444455556666"
AUTHORIZATION = "/providers/Microsoft.Authorization"


@pytest.fixture
def arm() -> Iterator[ArmStandIn]:
    with ArmStandIn() as standin:
        yield standin


def call(arm: ArmStandIn, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    """One ARM call with a token the stand-in issued; (status, JSON answer)."""
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
            return answer.status, json.load(answer)
    except urllib.error.HTTPError as refused:
        return refused.code, json.load(refused)


def assign(arm: ArmStandIn, **extra: Any) -> tuple[int, Any]:
    properties = {
        "principalId": PRINCIPAL,
        "roleDefinitionId": ROLE_ID,
        "requestType": "AdminAssign",
        "scheduleInfo": {"expiration": {"type": "AfterDuration", "duration": "PT2H"}},
        **extra,
    }
    path = f"{SCOPE}{AUTHORIZATION}/roleAssignmentScheduleRequests/{uuid.uuid4()}"
    return call(arm, "PUT", path, {"properties": properties})


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
    arm.set_policy(SCOPE, ROLE_ID, PimPolicy(mfa=True, ticket=True, maximum=timedelta(hours=1)))
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
