"""What jitbot knows of Azure PIM, without calling it: schedule requests, their statuses, the policy, ARM's refusals.

Pure: the names and bodies of the schedule requests jitbot PUTs (AdminAssign, AdminExtend, AdminRemove), the handle
and DM lines of a grant, which status is final, what a role management policy demands and whether it refuses a
resource, ARM's refusal turned into a ProviderError that says what to do, and the GUIDs ARM names things by.
`jitbot.providers.azure` makes the calls.
"""

from __future__ import annotations

import math
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from jitbot.core.catalog import Resource
from jitbot.core.domain import AccessRequest
from jitbot.core.durations import format_duration, retry_after
from jitbot.core.errors import ProviderError
from jitbot.providers.azure_settings import AzureSettings

PORTAL_PIM = "https://portal.azure.com/#view/Microsoft_Azure_PIMCommon/ActivationMenuBlade/~/azurerbac"
PIM_MINIMUM = timedelta(minutes=5)  # PIM neither assigns for less nor removes an assignment younger than this
REMOVE_SLACK = timedelta(seconds=15)  # our clock and PIM's differ a little: retry the removal just after
JUSTIFICATION_LIMIT = 500  # what the PIM portal accepts as a justification
NAME_NAMESPACE = uuid.UUID("5b0c7d1e-3f7a-4c43-9a57-6a0e2f1d8c11")  # jitbot's; never change: names must repeat
ASSIGNMENT_EXISTS = "RoleAssignmentExists"
REQUEST_EXISTS = "RoleAssignmentRequestExists"  # a schedule request of that name was accepted before
ASSIGNMENT_GONE = "RoleAssignmentDoesNotExist"
TOO_YOUNG = "ActiveDurationTooShort"
POLICY_FAILED = "RoleAssignmentRequestPolicyValidationFailed"
RETRYABLE_STATUS = {408, 409, 429, 500, 502, 503, 504}
RETRYABLE_CODES = {"PendingRoleAssignmentRequest"}
# the Status enum of azure-mgmt-authorization 2020-10-01: an assign or extend is done at Provisioned, a removal at
# Revoked; these say no access change came of it; every other status (Accepted, PendingEvaluation, Granted,
# PendingProvisioning, PendingRevocation, ScheduleCreated — for a future start, which jitbot never asks for…) is
# PIM still at work
PROVISIONED, REVOKED = "Provisioned", "Revoked"
FAILED_STATUSES = {"Denied", "Failed", "Canceled", "Invalid", "FailedAsResourceIsLocked", "TimedOut", "AdminDenied"}
PIM_SETTINGS = "PIM → Azure resources → {scope} → Settings → the role → Edit → Assignment"
LONGER_SETTING = (
    'raise "Expire active assignments after" to at least the resource\'s max_duration (or tick "Allow permanent '
    'active assignment"), or lower max_duration in jitbot.yml'
)
# what each rule in "The following policy rules failed: [\"MfaRule\"]" asks for, and the setting that relaxes it
# (rule names: MicrosoftDocs/azure-docs#80426, microsoftgraph/msgraph-sdk-powershell#1808)
POLICY_RULES = {
    "MfaRule": "PIM requires Azure Multi-Factor Authentication on active assignment, which jitbot cannot give (it "
    'signs in as a service principal): clear "Require Azure Multi-Factor Authentication on active assignment"',
    "JustificationRule": "PIM requires a justification on active assignment and refused jitbot's: check \"Require "
    'justification on active assignment"',
    "TicketingRule": "PIM requires ticket information and refused jitbot's (system jitbot, number the request id): "
    "check the ticket requirement",
    "ExpirationRule": "the grant is longer than PIM allows active assignments to last: " + LONGER_SETTING,
}
ISO_SPAN = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$")
PERMISSION_HINT = (
    "the identity jitbot signs in as lacks permission on {scope}: give it User Access Administrator or Owner "
    "there, or a role with Microsoft.Authorization/roleAssignmentScheduleRequests/write (PIM role management)"
)
HINTS = {
    "RoleDefinitionDoesNotExist": "check role_definition_id in jitbot.yml",
    "PrincipalNotFound": "the requester's azure_object_id is not a user of this tenant",
}


@dataclass
class ArmRefusal(Exception):
    """What ARM answered when it refused a call, before it is turned into a ProviderError."""

    status: int
    code: str
    message: str
    retry_after: str | None = None


@dataclass(frozen=True)
class Demands:
    """What PIM's policy demands of an active assignment made by an admin; `maximum` None: no limit."""

    mfa: bool = False
    justification: bool = False
    ticket: bool = False
    maximum: timedelta | None = None


def schedule_request_name(request_id: str, action: str) -> str:
    """A GUID fixed by request and action ("assign", "remove", "extend:<end>"): a repeated job PUTs the same one."""
    return str(uuid.uuid5(NAME_NAMESPACE, f"{request_id}:{action}"))


def schedule_request_id(scope: str, name: str) -> str:
    return f"{scope}/providers/Microsoft.Authorization/roleAssignmentScheduleRequests/{name}"


def iso_duration(duration: timedelta) -> str:
    """ISO-8601 in whole minutes, rounded up and at least PIM's minimum: PT5M, PT2H, PT1H30M, PT26H."""
    minutes = max(math.ceil(duration.total_seconds() / 60), int(PIM_MINIMUM.total_seconds()) // 60)
    hours, minutes = divmod(minutes, 60)
    return "PT" + (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "")


def justification(reason: str) -> str:
    return reason if len(reason) <= JUSTIFICATION_LIMIT else reason[: JUSTIFICATION_LIMIT - 1] + "…"


def principal_id(request: AccessRequest) -> str:
    """The principal granted to (the handle's, once granted), else the identity resolved for the request."""
    found = request.grant.get("principal_id") or request.identity.get("azure_object_id")
    if not found:
        raise ProviderError(
            f"Request {request.id} has no Azure principal: map {request.requester} to an azure_object_id "
            "(identities: in jitbot.yml) before asking for an Azure resource.",
            retryable=False,
        )
    return found


def target(request: AccessRequest, resource: Resource) -> tuple[str, str]:
    """(scope, role definition id) as granted; the catalog's for a request not granted yet."""
    settings = resource.settings_as(AzureSettings)
    scope = request.grant.get("scope") or settings.scope
    return scope, request.grant.get("role_definition_id") or settings.role_definition_id


def zulu(moment: datetime) -> str:
    """UTC to the second, rounded down, as ARM writes it."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def assign_body(request: AccessRequest, resource: Resource, now: datetime) -> dict[str, Any]:
    _, role = target(request, resource)
    properties = {
        "principalId": principal_id(request),
        "roleDefinitionId": role,
        "requestType": "AdminAssign",
        "justification": justification(request.reason),
        "ticketInfo": {"ticketNumber": request.id, "ticketSystem": "jitbot"},
        "scheduleInfo": {
            "startDateTime": zulu(now),  # never later than now: a future start is only scheduled
            "expiration": {"type": "AfterDuration", "duration": iso_duration(request.duration)},
        },
    }
    return {"properties": properties}


def remove_body(request: AccessRequest, resource: Resource) -> dict[str, Any]:
    _, role = target(request, resource)
    return removal(principal_id(request), role, request.id, f"jitbot: access request {request.id} ended")


def removal(principal: str, role: str, ticket: str, why: str) -> dict[str, Any]:
    """AdminRemove of `principal`'s assignment of `role`, under the ticket of the jitbot request it was made for."""
    properties = {
        "principalId": principal,
        "roleDefinitionId": role,
        "requestType": "AdminRemove",
        "justification": why,
        "ticketInfo": {"ticketNumber": ticket, "ticketSystem": "jitbot"},
    }
    return {"properties": properties}


def extend_body(request: AccessRequest, resource: Resource) -> dict[str, Any]:
    """AdminExtend of the schedule the grant made, to end at the request's (extended) expiry."""
    _, role = target(request, resource)
    schedule = request.grant.get("schedule_id")
    if not schedule or request.expires_at is None:
        raise ProviderError(
            f"Request {request.id} has no PIM schedule on record, so Azure cannot extend it; "
            "the Azure access still ends at its first expiry.",
            retryable=False,
        )
    properties = {
        "principalId": principal_id(request),
        "roleDefinitionId": role,
        "requestType": "AdminExtend",
        "justification": justification(f"jitbot: access request {request.id} extended; {request.reason}"),
        "ticketInfo": {"ticketNumber": request.id, "ticketSystem": "jitbot"},
        "targetRoleAssignmentScheduleId": schedule,
        "scheduleInfo": {"expiration": {"type": "AfterDateTime", "endDateTime": zulu(request.expires_at)}},
    }
    return {"properties": properties}


def grant_handle(request: AccessRequest, resource: Resource) -> dict[str, str]:
    scope, role = target(request, resource)
    name = schedule_request_name(request.id, "assign")
    return {
        "schedule_request": name,
        "schedule_request_id": schedule_request_id(scope, name),
        "principal_id": principal_id(request),
        "scope": scope,
        "role_definition_id": role,
    }


def access_lines(
    request: AccessRequest, handle: dict[str, str], role_name: str | None, now: datetime
) -> dict[str, str]:
    email = request.identity.get("email")
    identity = f"{handle['principal_id']} ({email})" if email else handle["principal_id"]
    return {
        "Role": role_name or handle["role_definition_id"].rsplit("/", 1)[-1],
        "Scope": handle["scope"],
        "Identity": identity,
        "Until": (now + request.duration).isoformat(),
        "Console": PORTAL_PIM,
    }


def provider_error(operation: str, refusal: ArmRefusal, scope: str, now: datetime) -> ProviderError:
    """ARM's refusal as a ProviderError: retryable or not, when to retry, and what a person should do."""
    said = f"{refusal.code}: {refusal.message}"[:300]
    if refusal.status == 403:
        hint = PERMISSION_HINT.format(scope=scope)
        return ProviderError(f"Azure {operation} refused on {scope} ({said}); {hint}.", retryable=False)
    if refusal.status in RETRYABLE_STATUS or refusal.code in RETRYABLE_CODES:
        wait = retry_after(refusal.retry_after, now)
        later = f"; Azure asks to retry after {wait:%H:%M:%S} UTC" if wait else ""
        return ProviderError(
            f"Azure {operation} failed for now ({said}){later}.",
            retryable=True,
            not_before=wait,
            throttled=refusal.status == 429,
        )
    hint = HINTS.get(refusal.code, "check scope and role_definition_id in jitbot.yml" if refusal.status == 404 else "")
    if refusal.code == POLICY_FAILED:
        hint = policy_hint(refusal.message, scope)
    what = f": {hint} (Azure said {said})" if hint else f" ({said})"  # what to do first: a DM may be cut short
    return ProviderError(f"Azure {operation} refused on {scope}{what}.", retryable=False)


def policy_hint(message: str, scope: str) -> str:
    """PIM's settings for the role refuse the request: each rule named in ARM's message, and where to change it."""
    rules = re.findall(r"\w+Rule", message)
    said = "; ".join(POLICY_RULES.get(rule, f"{rule}: check the role's PIM settings") for rule in rules)
    return f"PIM's settings for this role refuse it: {said or 'check them'} ({PIM_SETTINGS.format(scope=scope)})"


def is_settled(status: str | None, wanted: str, name: str) -> bool:
    """True once PIM answers `wanted`, False while it is still at work; a failure raises a non-retryable error."""
    if status == wanted:
        return True
    if status in FAILED_STATUSES or status in (PROVISIONED, REVOKED):
        raise ProviderError(f"Azure PIM answered {status} for schedule request {name}.", retryable=False)
    return False


def span(text: str | None) -> timedelta | None:
    """An ISO-8601 duration as PIM's rules write it (P90D, PT8H, P1DT12H); None if absent or of another form."""
    match = ISO_SPAN.match(text or "")
    if match is None or not any(match.groups()):
        return None
    days, hours, minutes, seconds = (int(part or 0) for part in match.groups())
    return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)


def policy_refusal(demands: Demands, resource: Resource) -> ProviderError | None:
    """Why PIM would refuse every grant of `resource`, naming the setting to change; None if it would not."""
    setting = PIM_SETTINGS.format(scope=resource.settings_as(AzureSettings).scope)
    if demands.mfa:
        return ProviderError(f"Azure: {POLICY_RULES['MfaRule']} ({setting}).", retryable=False)
    if demands.maximum is not None and resource.max_duration > demands.maximum:
        return ProviderError(
            f"Azure: PIM lets active assignments last {format_duration(demands.maximum)} at most, less than "
            f"{resource.name}'s max_duration of {format_duration(resource.max_duration)}: {LONGER_SETTING} "
            f"({setting}).",
            retryable=False,
        )
    return None


def describe_demands(demands: Demands) -> str:
    asked = [what for what, on in (("justification", demands.justification), ("ticket", demands.ticket)) if on]
    longest = f"at most {format_duration(demands.maximum)}" if demands.maximum else "no maximum"
    sent = f", {' and '.join(asked)} (jitbot sends them)" if asked else ""
    return f"PIM active assignment: {longest}{sent}"


def guid_of(reference: str | None) -> str:
    """The GUID an ARM reference ends in: a request names its schedule by GUID (PutRoleAssignmentScheduleRequest.json),
    an instance by full id (GetRoleAssignmentScheduleInstancesByScope.json); a role definition id is written under
    the subscription or the tenant root."""
    return str(reference or "").rsplit("/", 1)[-1].lower()


def same_guid(one: str | None, other: str | None) -> bool:
    return bool(one and other) and guid_of(one) == guid_of(other)


def too_young_error(granted_at: datetime | None, now: datetime) -> ProviderError:
    at = max((granted_at or now) + PIM_MINIMUM, now) + REMOVE_SLACK
    return ProviderError(
        "Azure PIM does not allow removing an assignment in its first 5 minutes; "
        f"jitbot removes it at {at.astimezone(UTC):%H:%M:%S} UTC.",
        retryable=True,
        not_before=at,
    )
