"""PIM's role management as the ARM stand-in plays it, pure: what a policy refuses, and the 2020-10-01 shapes.

The rules an admin's active assignment breaks under a role management policy, the filters a list takes, and each
resource — schedule request, schedule instance, policy assignment, role definition — in the shape the 2020-10-01
examples in azure-rest-api-specs show it. `jitbot.testing.pim` keeps the state; `jitbot.testing.arm_standin` serves it.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from jitbot.testing.loopback import Answer

APP_OBJECT_ID = "0b5e6a4d-2c1f-4e3a-9d8b-7f6e5d4c3b2a"  # the principal every issued token stands for
POLICY_FAILED = "RoleAssignmentRequestPolicyValidationFailed"
# the $filter values the 2020-10-01 list operations document (SDK docstrings of list_for_scope); others are refused
FILTER = re.compile(r"^(?:(atScope|asRequestor)\(\)|principalId eq '?([0-9a-f-]{36})'?)$", re.IGNORECASE)
DURATION = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$")


@dataclass(frozen=True)
class Assignment:
    """An active PIM role assignment; it ends by itself at `end`, as PIM's expiration does."""

    scope: str
    role_definition_id: str
    principal_id: str
    start: datetime
    end: datetime
    request_name: str
    schedule: (
        str  # the schedule's GUID: a request's targetRoleAssignmentScheduleId (PutRoleAssignmentScheduleRequest.json)
    )


@dataclass(frozen=True)
class PimPolicy:
    """What a role management policy demands of an admin's active assignment: rules Enablement_Admin_Assignment and
    Expiration_Admin_Assignment (GetRoleManagementPolicyAssignmentByScope.json, 2020-10-01). `maximum` None: permanent
    active assignment allowed. The defaults are PIM's for an Azure resource role (Learn, "Configure Azure resource role
    settings in Privileged Identity Management", Assignment tab): justification required, no MFA, no ticket, active
    assignments expire after 6 months."""

    mfa: bool = False
    justification: bool = True
    ticket: bool = False
    maximum: timedelta | None = timedelta(days=180)


Key = tuple[str, str, str]  # (scope, role GUID, principal), lower case: PIM holds one active assignment for each


def parse_duration(text: Any) -> timedelta | None:
    """An ISO-8601 duration such as PT2H or P1DT30M; None if it is not one."""
    match = DURATION.match(text) if isinstance(text, str) else None
    if match is None or text in ("P", "PT") or text.endswith("T"):
        return None
    days, hours, minutes, seconds = (int(part or 0) for part in match.groups())
    return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)


def parse_time(text: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(text) if isinstance(text, str) else None
    except ValueError:
        return None


def schedule_id(scope: str, schedule: str) -> str:
    """A schedule's full id, as instances carry it (GetRoleAssignmentScheduleInstancesByScope.json)."""
    return f"{scope}/providers/Microsoft.Authorization/RoleAssignmentSchedules/{schedule}"


def key_of(scope: str, role_definition_id: str, principal_id: str) -> Key:
    return scope.lower(), role_definition_id.rsplit("/", 1)[-1].lower(), principal_id.lower()


def iso(delta: timedelta) -> str:
    return f"P{delta.days}D" if delta == timedelta(days=delta.days) else f"PT{int(delta.total_seconds() // 60)}M"


def is_at_or_above(outer: str, inner: str) -> bool:
    """Whether scope `outer` is `inner` or contains it (a subscription holds its resource groups)."""
    outer, inner = outer.lower().rstrip("/"), inner.lower().rstrip("/")
    return inner == outer or inner.startswith(outer + "/")


def is_listed(kind: str, argument: str, scope: str, item: dict[str, Any]) -> bool:
    """Whether a list at `scope` with this filter shows `item`'s properties: atScope() at or above the scope only,
    others also below it (the SDK's list_for_scope docstrings)."""
    above = is_at_or_above(item["scope"], scope)
    if kind.lower() == "atscope":
        return above
    related = above or is_at_or_above(scope, item["scope"])
    if kind.lower() == "asrequestor":
        return related and item.get("requestorId") == APP_OBJECT_ID
    return related and (not argument or item["principalId"].lower() == argument.lower())


def broken_rules(policy: PimPolicy, properties: dict[str, Any], duration: timedelta | None) -> list[str]:
    """The rules an admin's active assignment breaks, as PIM names them in RoleAssignmentRequestPolicyValidationFailed
    (MfaRule: microsoftgraph/msgraph-sdk-powershell#1808; ExpirationRule: MicrosoftDocs/azure-docs#80426;
    JustificationRule, TicketingRule by the same pattern, unconfirmed)."""
    ticket = properties.get("ticketInfo") or {}
    checks = [
        ("ExpirationRule", policy.maximum is not None and (duration is None or duration > policy.maximum)),
        ("MfaRule", policy.mfa),  # every token here is a service principal's: none carries an MFA claim
        ("JustificationRule", policy.justification and not properties.get("justification")),
        ("TicketingRule", policy.ticket and not (ticket.get("ticketNumber") and ticket.get("ticketSystem"))),
    ]
    return [name for name, broken in checks if broken]


def policy_rules(policy: PimPolicy) -> list[dict[str, Any]]:
    """The admin active-assignment rules in the shape of GetRoleManagementPolicyAssignmentByScope.json."""
    target = {"caller": "Admin", "operations": ["All"], "level": "Assignment", "targetObjects": None}
    asked = (
        ("MultiFactorAuthentication", policy.mfa),
        ("Justification", policy.justification),
        ("Ticketing", policy.ticket),
    )
    expiration = {
        "isExpirationRequired": policy.maximum is not None,
        "maximumDuration": iso(policy.maximum or timedelta(days=180)),
    }
    return [
        {"enabledRules": [name for name, on in asked if on], "id": "Enablement_Admin_Assignment",
         "ruleType": "RoleManagementPolicyEnablementRule", "target": target},
        {**expiration, "id": "Expiration_Admin_Assignment", "ruleType": "RoleManagementPolicyExpirationRule",
         "target": target},
    ]  # fmt: skip


def error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Answer:
    return status, {"error": {"code": code, "message": message}}, headers or {}


def policy_refusal(policy: PimPolicy, properties: dict[str, Any], duration: timedelta | None) -> Answer | None:
    broken = broken_rules(policy, properties, duration)
    if not broken:
        return None
    # the message as ARM writes it: The following policy rules failed: ["EligibilityRule","ExpirationRule"]
    return error(400, POLICY_FAILED, f"The following policy rules failed: {json.dumps(broken, separators=(',', ':'))}")


def listed(scope: str, query: dict[str, str], items: list[dict[str, Any]], kinds: tuple[str, ...]) -> Answer:
    chosen = FILTER.match(query.get("$filter", "")) if query.get("$filter") else None
    kind, argument = (chosen.group(1) or "", chosen.group(2) or "") if chosen else ("", "")
    if query.get("$filter") and (chosen is None or (kind.lower() not in kinds)):
        return error(400, "BadRequest", f"The filter '{query['$filter']}' is not supported.")
    return 200, {"value": [item for item in items if is_listed(kind, argument, scope, item["properties"])]}, {}


def schedule_request(scope: str, name: str, properties: dict[str, Any]) -> dict[str, Any]:
    """A schedule request as PutRoleAssignmentScheduleRequest.json shows one."""
    return {
        "id": f"{scope}/providers/Microsoft.Authorization/roleAssignmentScheduleRequests/{name}",
        "name": name,
        "type": "Microsoft.Authorization/RoleAssignmentScheduleRequests",
        "properties": properties,
    }


def expanded(
    scope: str, properties: dict[str, Any], role_definitions: dict[str, str], principal_names: dict[str, str]
) -> dict[str, Any]:
    role_id = properties["roleDefinitionId"]
    return {
        # as ARM expands it: the display name of a principal the directory knows (azure-mgmt-authorization
        # 2020-10-01 model ExpandedPropertiesPrincipal: id, displayName, email, type)
        "principal": {
            "id": properties["principalId"],
            "type": "User",
            **({"displayName": known} if (known := principal_names.get(properties["principalId"])) else {}),
        },
        "roleDefinition": {
            "id": role_id,
            "displayName": role_definitions[role_id.rsplit("/", 1)[-1].lower()],
            "type": "BuiltInRole",
        },
        "scope": {"id": scope, "displayName": scope.rsplit("/", 1)[-1], "type": "resourcegroup"},
    }


def instance(found: Assignment, role_definitions: dict[str, str], principal_names: dict[str, str]) -> dict[str, Any]:
    """An active assignment as GetRoleAssignmentScheduleInstancesByScope.json shows one."""
    name = str(uuid.uuid5(uuid.NAMESPACE_URL, found.schedule))
    properties = {
        "scope": found.scope,
        "roleDefinitionId": found.role_definition_id,
        "principalId": found.principal_id,
        "principalType": "User",
        "roleAssignmentScheduleId": schedule_id(found.scope, found.schedule),
        "status": "Provisioned",
        "startDateTime": found.start.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "endDateTime": found.end.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "assignmentType": "Assigned",
        "memberType": "Direct",
        "expandedProperties": expanded(
            found.scope,
            {"roleDefinitionId": found.role_definition_id, "principalId": found.principal_id},
            role_definitions,
            principal_names,
        ),
    }
    return {
        "id": f"{found.scope}/providers/Microsoft.Authorization/RoleAssignmentScheduleInstances/{name}",
        "name": name,
        "type": "Microsoft.Authorization/RoleAssignmentScheduleInstances",
        "properties": properties,
    }


def policy_assignment(scope: str, guid: str, demands: PimPolicy) -> dict[str, Any]:
    """The policy that applies to one role at `scope`, as GetRoleManagementPolicyAssignmentByScope.json shows it."""
    policy = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{scope.lower()}/{guid}"))
    subscription = "/".join(scope.split("/")[:3])
    properties = {
        "scope": scope,
        "roleDefinitionId": f"{subscription}/providers/Microsoft.Authorization/roleDefinitions/{guid}",
        "policyId": f"{scope}/providers/Microsoft.Authorization/roleManagementPolicies/{policy}",
        "effectiveRules": policy_rules(demands),
    }
    return {
        "id": f"{scope}/providers/Microsoft.Authorization/roleManagementPolicyAssignment/{policy}_{guid}",
        "name": f"{policy}_{guid}",
        "type": "Microsoft.Authorization/RoleManagementPolicyAssignment",
        "properties": properties,
    }


def role_definition(scope: str, guid: str, name: str | None) -> Answer:
    """A role definition as ARM answers a GET of one; 404 for a name it does not know (None)."""
    if name is None:
        return error(
            404, "RoleDefinitionDoesNotExist", f"The specified role definition with ID '{guid}' does not exist."
        )
    properties = {"roleName": name, "type": "BuiltInRole", "description": name, "assignableScopes": ["/"]}
    definition_id = f"{scope}/providers/Microsoft.Authorization/roleDefinitions/{guid}"
    return (
        200,
        {
            "id": definition_id,
            "name": guid,
            "type": "Microsoft.Authorization/roleDefinitions",
            "properties": properties,
        },
        {},
    )


def role_matches_scope(role_definition_id: str, scope: str) -> bool:
    """PIM takes a role definition id in its scope's form only (error ScopeDoesNotMatchRoleDefinition, azapi #692):
    under a subscription, that subscription's `/subscriptions/<id>/providers/…/roleDefinitions/<guid>`; at a
    management group, the tenant form without one (terraform-provider-azurerm #31052, #31053)."""
    subscription = re.match(r"/subscriptions/[^/]+", scope, re.IGNORECASE)
    guid = role_definition_id.rsplit("/", 1)[-1]
    expected = f"{subscription[0] if subscription else ''}/providers/Microsoft.Authorization/roleDefinitions/{guid}"
    return role_definition_id.lower() == expected.lower()
