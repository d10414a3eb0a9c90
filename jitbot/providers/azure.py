"""Azure: a PIM active role assignment (AdminAssign) that expires by itself; AdminExtend moves its end, AdminRemove
takes it away early.

Pure builders first (the schedule request's name and body, the DM lines, the error mapping, the policy's demands),
then the few Azure Resource Manager calls through the SDK. PIM's own expiration is the backstop if every revocation
fails. PIM answers a schedule request with a status that may not be final yet (Accepted, PendingProvisioning,
PendingRevocation…): the request is read again, with backoff, until it says Provisioned (or Revoked), and a job that
runs again finds its own request by name and goes on waiting. The read-back (`verify_revoked`) and the drift scan
(`held`) tell jitbot's assignments by the schedule its AdminAssign created and the ticket it carried (ticketSystem
"jitbot", ticketNumber the request id).
"""

from __future__ import annotations

import io
import ipaddress
import json
import math
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

from azure.core.credentials import TokenCredential
from azure.core.exceptions import AzureError, ClientAuthenticationError, HttpResponseError
from azure.mgmt.authorization.v2020_10_01 import AuthorizationManagementClient as PimClient
from azure.mgmt.authorization.v2020_10_01.models import (
    RoleAssignmentScheduleInstance,
    RoleAssignmentScheduleRequest,
    RoleManagementPolicyEnablementRule,
    RoleManagementPolicyExpirationRule,
    RoleManagementPolicyRule,
)
from azure.mgmt.authorization.v2022_04_01 import AuthorizationManagementClient as RbacClient

from jitbot.catalog import Resource
from jitbot.domain import AccessRequest
from jitbot.durations import format_duration
from jitbot.errors import ProviderError
from jitbot.providers.base import Held, Issued

PUBLIC_ARM = "https://management.azure.com"
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
POLL_INTERVALS = (0.5, 1.0, 2.0, 4.0)  # seconds between reads of a pending request, the last repeated
POLL_TIMEOUT = 60.0  # then a retryable error: the job runs again, finds its request by name and waits more
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
    scope = request.grant.get("scope") or resource.settings["scope"]
    return scope, request.grant.get("role_definition_id") or resource.settings["role_definition_id"]


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


def retry_at(retry_after: str | None, now: datetime) -> datetime | None:
    """Retry-After as seconds or as an HTTP date; None when absent or unreadable."""
    if not retry_after:
        return None
    if retry_after.strip().isdigit():
        return now + timedelta(seconds=int(retry_after))
    try:
        return parsedate_to_datetime(retry_after)
    except (TypeError, ValueError):
        return None


def provider_error(operation: str, refusal: ArmRefusal, scope: str, now: datetime) -> ProviderError:
    """ARM's refusal as a ProviderError: retryable or not, when to retry, and what a person should do."""
    said = f"{refusal.code}: {refusal.message}"[:300]
    if refusal.status == 403:
        hint = PERMISSION_HINT.format(scope=scope)
        return ProviderError(f"Azure {operation} refused on {scope} ({said}); {hint}.", retryable=False)
    if refusal.status in RETRYABLE_STATUS or refusal.code in RETRYABLE_CODES:
        wait = retry_at(refusal.retry_after, now)
        later = f"; Azure asks to retry after {wait:%H:%M:%S} UTC" if wait else ""
        return ProviderError(f"Azure {operation} failed for now ({said}){later}.", retryable=True, not_before=wait)
    hint = HINTS.get(refusal.code, "check scope and role_definition_id in jitbot.yml" if refusal.status == 404 else "")
    if refusal.code == POLICY_FAILED:
        hint = policy_hint(refusal.message, scope)
    return ProviderError(
        f"Azure {operation} refused on {scope} ({said}){'; ' + hint if hint else ''}.", retryable=False
    )


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


def admin_assignment_demands(rules: list[RoleManagementPolicyRule]) -> Demands:
    """The demands on an admin's active assignment: rules Enablement_Admin_Assignment and Expiration_Admin_Assignment
    (their ids in GetRoleManagementPolicyAssignmentByScope.json, 2020-10-01)."""
    demands = Demands()
    for rule in rules:
        if isinstance(rule, RoleManagementPolicyEnablementRule) and rule.id == "Enablement_Admin_Assignment":
            enabled = set(rule.enabled_rules or ())
            mfa, ticket = "MultiFactorAuthentication" in enabled, "Ticketing" in enabled
            demands = replace(demands, mfa=mfa, justification="Justification" in enabled, ticket=ticket)
        if isinstance(rule, RoleManagementPolicyExpirationRule) and rule.id == "Expiration_Admin_Assignment":
            demands = replace(demands, maximum=span(rule.maximum_duration) if rule.is_expiration_required else None)
    return demands


def policy_refusal(demands: Demands, resource: Resource) -> ProviderError | None:
    """Why PIM would refuse every grant of `resource`, naming the setting to change; None if it would not."""
    setting = PIM_SETTINGS.format(scope=resource.settings["scope"])
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


def is_jitbot_assign(made: RoleAssignmentScheduleRequest, scope: str, role: str) -> bool:
    """An AdminAssign jitbot made (its ticket system, a request id as ticket) for `role` at `scope`."""
    ticket = made.ticket_info
    return (
        made.request_type == "AdminAssign"
        and ticket is not None
        and ticket.ticket_system == "jitbot"
        and bool(ticket.ticket_number and made.target_role_assignment_schedule_id)
        and same_guid(made.role_definition_id, role)
        and str(made.scope).lower() == scope.lower()
    )


def held_of(instance: RoleAssignmentScheduleInstance, ticket: str, scope: str) -> Held:
    """An active instance of jitbot's schedule as the drift scan reports it, with what `remove` needs."""
    expanded = instance.expanded_properties
    role_id, principal = str(instance.role_definition_id), str(instance.principal_id)
    role = expanded.role_definition.display_name if expanded and expanded.role_definition else None
    ref = {
        "scope": scope,
        "principal_id": principal,
        "role_definition_id": role_id,
        "ticket": ticket,
        "schedule_id": str(instance.role_assignment_schedule_id),
        "start": instance.start_date_time.isoformat() if instance.start_date_time else "",
    }
    return Held(frozenset({ticket}), f"{role or role_id.rsplit('/', 1)[-1]} for {principal} on {scope}", ref)


def too_young_error(granted_at: datetime | None, now: datetime) -> ProviderError:
    at = max((granted_at or now) + PIM_MINIMUM, now) + REMOVE_SLACK
    return ProviderError(
        "Azure PIM does not allow removing an assignment in its first 5 minutes; "
        f"jitbot removes it at {at.astimezone(UTC):%H:%M:%S} UTC.",
        retryable=True,
        not_before=at,
    )


def first_line(error: Exception) -> str:
    """The head of an SDK error's text (theirs run to many lines; none carries a token)."""
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else type(error).__name__


def is_loopback(endpoint: str) -> bool:
    host = urlsplit(endpoint).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class AzureProvider:
    """PIM assignments through ARM; `endpoint` elsewhere for sovereign clouds and local stand-ins; `sleep` and
    `poll_timeout` pace the reads of a schedule request PIM has not settled yet."""

    def __init__(
        self,
        endpoint: str | None = None,
        credential: TokenCredential | None = None,
        sleep: Callable[[float], None] = time.sleep,
        poll_timeout: float = POLL_TIMEOUT,
    ) -> None:
        self.endpoint = (endpoint or PUBLIC_ARM).rstrip("/")
        self.sleep = sleep
        self.poll_timeout = poll_timeout
        self._credential = credential
        self._pim: PimClient | None = None
        self._rbac: RbacClient | None = None
        # azure-core refuses to send a bearer token over plain http; a stand-in on this machine has no TLS and
        # the token never leaves the host, so only a loopback endpoint may switch that check off, per call
        self._call_options: dict[str, Any] = {"enforce_https": False} if is_loopback(self.endpoint) else {}

    def grant(self, request: AccessRequest, resource: Resource, now: datetime) -> Issued:
        handle = grant_handle(request, resource)
        scope, name = handle["scope"], handle["schedule_request"]
        body = _json(assign_body(request, resource, now))
        try:
            answer = self._arm(self.pim().role_assignment_schedule_requests.create, scope, name, body)
        except ArmRefusal as refusal:
            if refusal.code not in (ASSIGNMENT_EXISTS, REQUEST_EXISTS):
                raise provider_error("assign", refusal, scope, now) from None
            answer = self._own_request(request, scope, name, now)
        answer = self._settle(scope, name, answer, PROVISIONED, now)
        if answer.target_role_assignment_schedule_id:  # what an extension names as its target
            handle["schedule_id"] = answer.target_role_assignment_schedule_id
        expanded = answer.expanded_properties
        if expanded and expanded.principal and expanded.principal.display_name:  # shown to the approvers
            handle["principal_name"] = expanded.principal.display_name
        role = expanded.role_definition if expanded else None
        return Issued(handle, access=access_lines(request, handle, role.display_name if role else None, now))

    def extend(self, request: AccessRequest, resource: Resource, now: datetime) -> Issued:
        """PIM's own end moves to the request's new expiry, so the backstop does not cut the extended grant short."""
        scope, _ = target(request, resource)
        body = extend_body(request, resource)
        until = body["properties"]["scheduleInfo"]["expiration"]["endDateTime"]
        name = schedule_request_name(request.id, f"extend:{until}")
        try:
            answer = self._arm(self.pim().role_assignment_schedule_requests.create, scope, name, _json(body))
        except ArmRefusal as refusal:
            if refusal.code != REQUEST_EXISTS:
                raise provider_error("extend", refusal, scope, now) from None
            answer = self._request(scope, name, now)  # this very extension, made by an earlier run
        self._settle(scope, name, answer, PROVISIONED, now)
        return Issued(dict(request.grant))

    def revoke(self, request: AccessRequest, resource: Resource, now: datetime) -> None:
        scope, _ = target(request, resource)
        name = schedule_request_name(request.id, "remove")
        self._remove(scope, name, remove_body(request, resource), too_young_error(request.granted_at, now), now)

    def verify_revoked(self, request: AccessRequest, resource: Resource, now: datetime) -> str:
        """No active instance left of the schedule jitbot's AdminAssign created (someone else's standing one of the
        same role is not jitbot's, and is left out)."""
        scope, role = target(request, resource)
        principal = principal_id(request)
        schedule = request.grant.get("schedule_id") or self._assigned_schedule(request, scope, now)
        if not schedule:
            return f"no assignment request of {request.id} at {scope}: PIM never assigned it"
        instances = self._instances(scope, f"principalId eq '{principal}'", now)
        ours = [i for i in instances if same_guid(i.role_assignment_schedule_id, schedule)]
        if ours:
            end = ours[0].end_date_time
            until = f", active until {end:%Y-%m-%d %H:%M} UTC" if end else ""
            raise ProviderError(
                f"Azure still shows {principal}'s assignment of {role.rsplit('/', 1)[-1]} on {scope} from schedule "
                f"{schedule}{until}.",
                retryable=True,
            )
        return f"read {len(instances)} active assignment(s) of {principal} at {scope}: none from schedule {schedule}"

    def held(self, resource: Resource, now: datetime) -> list[Held]:
        """Active instances at the scope whose schedule an AdminAssign of jitbot's created for this role."""
        scope, role = resource.settings["scope"], resource.settings["role_definition_id"]
        tickets = self._jitbot_schedules(scope, role, now)
        found = []
        for instance in self._instances(scope, "atScope()", now):
            schedule = guid_of(instance.role_assignment_schedule_id)
            if schedule in tickets and same_guid(instance.role_definition_id, role):
                found.append(held_of(instance, tickets[schedule], scope))
        return found

    def remove(self, held: Held, resource: Resource, now: datetime) -> None:
        """AdminRemove under a name fixed by the ticket and schedule: a repeat finds its own request and waits on it."""
        ref = held.ref
        name = schedule_request_name(ref["ticket"], f"drift:{ref['schedule_id']}")
        why = f"jitbot: drift scan, no live grant explains access request {ref['ticket']}"
        body = removal(ref["principal_id"], ref["role_definition_id"], ref["ticket"], why)
        started = datetime.fromisoformat(ref["start"]) if ref.get("start") else None
        self._remove(ref["scope"], name, body, too_young_error(started, now), now)

    def check(self, resource: Resource) -> str:
        """For `jitbot check --live`: the role definition can be read on the scope with jitbot's sign-in, and PIM's
        policy for the role there lets jitbot grant it (no MFA; active assignments may last max_duration)."""
        scope, role = resource.settings["scope"], resource.settings["role_definition_id"]
        now = datetime.now(UTC)
        try:
            definition = self._arm(self.rbac().role_definitions.get, scope, role.rsplit("/", 1)[-1])
        except ArmRefusal as refusal:
            raise provider_error("read role definition", refusal, scope, now) from None
        demands = admin_assignment_demands(self._policy_rules(scope, role, now))
        refused = policy_refusal(demands, resource)
        if refused:
            raise refused
        return f"ok: {definition.role_name}; {describe_demands(demands)}"

    def pim(self) -> PimClient:
        if self._pim is None:
            self._pim = PimClient(self.credential(), base_url=self.endpoint, **self._client_options())
        return self._pim

    def rbac(self) -> RbacClient:
        if self._rbac is None:
            # role_definitions.get addresses the role by scope: the client's subscription id is never used
            self._rbac = RbacClient(
                self.credential(), subscription_id="", base_url=self.endpoint, **self._client_options()
            )
        return self._rbac

    def credential(self) -> TokenCredential:
        if self._credential is None:
            from azure.identity import DefaultAzureCredential

            self._credential = DefaultAzureCredential()
        return self._credential

    def _client_options(self) -> dict[str, Any]:
        # the token's audience is the endpoint's own (sovereign clouds); no retries inside the SDK: it would
        # sleep out a Retry-After in the worker, while a ProviderError with not_before lets the job come back
        return {"credential_scopes": [f"{self.endpoint}/.default"], "retry_total": 0}

    def _remove(self, scope: str, name: str, body: dict[str, Any], too_young: ProviderError, now: datetime) -> None:
        """An AdminRemove, waited on until Revoked; gone already is done, and so is an earlier run's removal."""
        try:
            answer = self._arm(self.pim().role_assignment_schedule_requests.create, scope, name, _json(body))
        except ArmRefusal as refusal:
            if refusal.code == TOO_YOUNG:
                raise too_young from None
            if refusal.status == 404 or refusal.code == ASSIGNMENT_GONE:
                return
            if refusal.code != REQUEST_EXISTS:
                raise provider_error("remove", refusal, scope, now) from None
            answer = self._request(scope, name, now)  # this very removal, made by an earlier run
        self._settle(scope, name, answer, REVOKED, now)

    def _settle(
        self, scope: str, name: str, answer: RoleAssignmentScheduleRequest, wanted: str, now: datetime
    ) -> RoleAssignmentScheduleRequest:
        """Read the request again, backing off, until PIM answers `wanted`; past `poll_timeout` a retryable error."""
        waited, polls = 0.0, 0
        while not is_settled(answer.status, wanted, name):
            if waited >= self.poll_timeout:
                raise ProviderError(
                    f"Azure PIM still answers {answer.status} for schedule request {name} after {waited:.0f} s; "
                    "jitbot asks again.",
                    retryable=True,
                )
            interval = POLL_INTERVALS[min(polls, len(POLL_INTERVALS) - 1)]
            self.sleep(interval)
            waited, polls = waited + interval, polls + 1
            answer = self._request(scope, name, now)
        return answer

    def _request(self, scope: str, name: str, now: datetime) -> RoleAssignmentScheduleRequest:
        """A request ARM said exists (RequestExists, or just accepted): missing now is a hiccup worth a retry."""
        found = self._find_request(scope, name, now)
        if found is None:
            raise ProviderError(f"Azure lost sight of schedule request {name} on {scope}.", retryable=True)
        return found

    def _own_request(
        self, request: AccessRequest, scope: str, name: str, now: datetime
    ) -> RoleAssignmentScheduleRequest:
        """ARM says the assignment exists: ours (a repeated job) if our named request exists, else someone else's."""
        found = self._find_request(scope, name, now)
        if found is None:
            raise ProviderError(
                f"{principal_id(request)} already holds this role on {scope} through another assignment (a standing "
                "one, or another request's); jitbot neither takes it over nor removes it.",
                retryable=False,
            )
        return found

    def _assigned_schedule(self, request: AccessRequest, scope: str, now: datetime) -> str | None:
        """The schedule jitbot's AdminAssign created, for a grant never recorded as such; None if none was made."""
        found = self._find_request(scope, schedule_request_name(request.id, "assign"), now)
        return found.target_role_assignment_schedule_id if found else None

    def _find_request(self, scope: str, name: str, now: datetime) -> RoleAssignmentScheduleRequest | None:
        try:
            found: RoleAssignmentScheduleRequest = self._arm(
                self.pim().role_assignment_schedule_requests.get, scope, name
            )
        except ArmRefusal as refusal:
            if refusal.status == 404:
                return None
            raise provider_error("read schedule request", refusal, scope, now) from None
        return found

    def _instances(self, scope: str, filter: str, now: datetime) -> list[RoleAssignmentScheduleInstance]:
        listing = self.pim().role_assignment_schedule_instances.list_for_scope
        return self._listed(lambda **options: list(listing(scope, filter=filter, **options)), scope, now)

    def _jitbot_schedules(self, scope: str, role: str, now: datetime) -> dict[str, str]:
        """Schedule GUID → ticket (jitbot request id) of the AdminAssign requests jitbot made for `role` at `scope`."""
        listing = self.pim().role_assignment_schedule_requests.list_for_scope
        made = self._listed(lambda **options: list(listing(scope, filter="asRequestor()", **options)), scope, now)
        ours = [r for r in made if is_jitbot_assign(r, scope, role)]
        return {guid_of(r.target_role_assignment_schedule_id): str(r.ticket_info.ticket_number) for r in ours}

    def _policy_rules(self, scope: str, role: str, now: datetime) -> list[RoleManagementPolicyRule]:
        """The effective rules of the policy assigned to `role` at `scope` (the 2020-10-01 list takes no filter)."""
        listing = self.pim().role_management_policy_assignments.list_for_scope
        assigned = self._listed(lambda **options: list(listing(scope, **options)), scope, now)
        mine = next((a for a in assigned if same_guid(a.role_definition_id, role)), None)
        if mine is None:
            raise ProviderError(
                f"Azure PIM has no role management policy for {role} on {scope}: check scope and role_definition_id "
                "in jitbot.yml.",
                retryable=False,
            )
        return list(mine.effective_rules or [])

    def _listed(self, read: Callable[..., list[Any]], scope: str, now: datetime) -> list[Any]:
        """A paged list read to the end (the SDK fetches pages while it is iterated)."""
        try:
            listed: list[Any] = self._arm(read)
        except ArmRefusal as refusal:
            raise provider_error("list", refusal, scope, now) from None
        return listed

    def _arm(self, call: Any, *args: Any) -> Any:
        """One ARM call; its refusal as ArmRefusal, a failure to reach Azure or to sign in as ProviderError."""
        try:
            return call(*args, **self._call_options)
        except ClientAuthenticationError as error:  # no token could be had, or ARM did not accept it
            raise ProviderError(
                f"Azure sign-in failed ({first_line(error)}): check AZURE_TENANT_ID, AZURE_CLIENT_ID and "
                "AZURE_CLIENT_SECRET or the managed identity, and that AZURE_ARM_ENDPOINT belongs to the same cloud "
                "(azure.identity logs each credential it tried).",
                retryable=False,
            ) from None
        except HttpResponseError as error:
            code = error.error.code if error.error and error.error.code else str(error.status_code)
            message = error.error.message if error.error and error.error.message else str(error.reason)
            retry_after = getattr(error.response, "headers", {}).get("Retry-After")  # typed without headers
            raise ArmRefusal(error.status_code or 0, code, message, retry_after) from None
        except AzureError as error:
            raise ProviderError(
                f"Azure Resource Manager at {self.endpoint} could not be reached: {first_line(error)}", retryable=True
            ) from None


def _json(body: dict[str, Any]) -> io.BytesIO:
    """The body exactly as built (the SDK sends bytes as they are; a model it would re-serialize)."""
    return io.BytesIO(json.dumps(body).encode())
