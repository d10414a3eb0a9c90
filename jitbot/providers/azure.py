"""Azure: a PIM active role assignment (AdminAssign) that expires by itself; AdminExtend moves its end, AdminRemove
takes it away early.

Pure builders first (the schedule request's name and body, the DM lines, the error mapping), then the few
Azure Resource Manager calls through the SDK. PIM's own expiration is the backstop if every revocation fails.
"""

from __future__ import annotations

import io
import ipaddress
import json
import math
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

from azure.core.credentials import TokenCredential
from azure.core.exceptions import AzureError, ClientAuthenticationError, HttpResponseError
from azure.mgmt.authorization.v2020_10_01 import AuthorizationManagementClient as PimClient
from azure.mgmt.authorization.v2020_10_01.models import RoleAssignmentScheduleRequest
from azure.mgmt.authorization.v2022_04_01 import AuthorizationManagementClient as RbacClient

from jitbot.catalog import Resource
from jitbot.domain import AccessRequest
from jitbot.errors import ProviderError
from jitbot.providers.base import Issued

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
RETRYABLE_STATUS = {408, 409, 429, 500, 502, 503, 504}
RETRYABLE_CODES = {"PendingRoleAssignmentRequest"}
FAILED_STATUSES = {"Denied", "Failed", "Canceled", "Invalid", "FailedAsResourceIsLocked", "TimedOut", "AdminDenied"}
PERMISSION_HINT = (
    "the identity jitbot signs in as lacks permission on {scope}: give it User Access Administrator or Owner "
    "there, or a role with Microsoft.Authorization/roleAssignmentScheduleRequests/write (PIM role management)"
)
HINTS = {
    "RoleAssignmentRequestPolicyValidationFailed": "PIM's settings for this role refuse it (maximum duration, "
    "justification or ticket rules): check the role's settings in PIM for this scope",
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
    properties = {
        "principalId": principal_id(request),
        "roleDefinitionId": role,
        "requestType": "AdminRemove",
        "justification": f"jitbot: access request {request.id} ended",
        "ticketInfo": {"ticketNumber": request.id, "ticketSystem": "jitbot"},
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
    return ProviderError(
        f"Azure {operation} refused on {scope} ({said}){'; ' + hint if hint else ''}.", retryable=False
    )


def raise_if_failed(status: str | None, name: str) -> None:
    """ARM accepted the request (201) but PIM's status says no access came of it."""
    if status in FAILED_STATUSES:
        raise ProviderError(f"Azure PIM answered {status} for assignment request {name}.", retryable=False)


def too_young_error(request: AccessRequest, now: datetime) -> ProviderError:
    at = max((request.granted_at or now) + PIM_MINIMUM, now) + REMOVE_SLACK
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
    """PIM assignments through ARM; `endpoint` elsewhere for sovereign clouds and local stand-ins."""

    def __init__(self, endpoint: str | None = None, credential: TokenCredential | None = None) -> None:
        self.endpoint = (endpoint or PUBLIC_ARM).rstrip("/")
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
        raise_if_failed(answer.status, name)
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
            if refusal.code != REQUEST_EXISTS:  # else this very extension was accepted by an earlier run
                raise provider_error("extend", refusal, scope, now) from None
        else:
            raise_if_failed(answer.status, name)
        return Issued(dict(request.grant))

    def revoke(self, request: AccessRequest, resource: Resource, now: datetime) -> None:
        scope, _ = target(request, resource)
        name = schedule_request_name(request.id, "remove")
        body = _json(remove_body(request, resource))
        try:
            self._arm(self.pim().role_assignment_schedule_requests.create, scope, name, body)
        except ArmRefusal as refusal:
            if refusal.code == TOO_YOUNG:
                raise too_young_error(request, now) from None
            # gone already, or this very removal was accepted by an earlier run of the job
            if refusal.status != 404 and refusal.code not in (ASSIGNMENT_GONE, REQUEST_EXISTS):
                raise provider_error("remove", refusal, scope, now) from None

    def check(self, resource: Resource) -> str:
        """For `jitbot check --live`: the role definition can be read on the scope with jitbot's sign-in."""
        scope, role = resource.settings["scope"], resource.settings["role_definition_id"]
        now = datetime.now(UTC)
        try:
            definition = self._arm(self.rbac().role_definitions.get, scope, role.rsplit("/", 1)[-1])
        except ArmRefusal as refusal:
            raise provider_error("read role definition", refusal, scope, now) from None
        return f"ok: {definition.role_name}"

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

    def _own_request(
        self, request: AccessRequest, scope: str, name: str, now: datetime
    ) -> RoleAssignmentScheduleRequest:
        """ARM says the assignment exists: ours (a repeated job) if our named request exists, else someone else's."""
        try:
            answer: RoleAssignmentScheduleRequest = self._arm(
                self.pim().role_assignment_schedule_requests.get, scope, name
            )
        except ArmRefusal as refusal:
            if refusal.status != 404:
                raise provider_error("assign", refusal, scope, now) from None
            raise ProviderError(
                f"{principal_id(request)} already holds this role on {scope} through another assignment (a standing "
                "one, or another request's); jitbot neither takes it over nor removes it.",
                retryable=False,
            ) from None
        return answer

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
