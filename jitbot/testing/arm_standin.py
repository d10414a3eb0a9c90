"""A local stand-in for Azure Resource Manager's PIM and role-definition APIs, with a managed-identity token endpoint.

It answers as Azure does — 201 with the request echoed and a status, PIM's error codes (RoleAssignmentExists,
RoleAssignmentDoesNotExist, ActiveDurationTooShort in an assignment's first five minutes), 401 without a token it
issued — and records every request. Its clock can be moved on (`advance`) so the five-minute rule needs no waiting.
Each (scope, role) has a role management policy (`set_policy`, else PIM's defaults) that an AdminAssign must meet;
`pending` makes the next schedule request answer a non-final status that settles on a later GET; `standing` adds
an assignment someone else made. It lists schedule requests, schedule instances and policy assignments as the
2020-10-01 examples in azure-rest-api-specs show them.
A real `DefaultAzureCredential`, in this process or another, gets its token here through the App Service managed
identity protocol: IDENTITY_ENDPOINT=`<standin>.identity_endpoint`, IDENTITY_HEADER=`<standin>.identity_header`.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from jitbot.testing.loopback import LoopbackServer, StandInServer

BUILTIN_ROLES = {
    "acdd72a7-3385-48ef-bd42-f606fba81ae7": "Reader",
    "b24988ac-6180-42a0-ab88-20f7382dd24c": "Contributor",
    "8e3af657-a8ff-443c-a75c-2fe8c4bcb635": "Owner",
    "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9": "User Access Administrator",
    "9980e02c-c2be-4d73-94e8-173b1dc7cf3c": "Virtual Machine Contributor",
}
SCHEDULE_REQUESTS_API = "2020-10-01"  # what azure.mgmt.authorization.v2020_10_01 sends
ROLE_DEFINITIONS_API = "2022-04-01"  # what azure.mgmt.authorization.v2022_04_01 sends
MANAGED_IDENTITY_API = "2019-08-01"  # App Service's token protocol, as azure-identity (through MSAL) speaks it
APP_OBJECT_ID = "0b5e6a4d-2c1f-4e3a-9d8b-7f6e5d4c3b2a"  # the principal every issued token stands for
AUTHORIZATION = "/providers/microsoft.authorization/"
OTHER_ADMIN = "5d6e7f80-9a1b-4c2d-8e3f-405162738495"  # who made the `standing` assignments, through the portal
POLICY_FAILED = "RoleAssignmentRequestPolicyValidationFailed"
SETTLED = {"AdminAssign": "Provisioned", "AdminExtend": "Provisioned", "AdminRemove": "Revoked"}
# the $filter values the 2020-10-01 list operations document (SDK docstrings of list_for_scope); others are refused
FILTER = re.compile(r"^(?:(atScope|asRequestor)\(\)|principalId eq '?([0-9a-f-]{36})'?)$", re.IGNORECASE)
GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)
DURATION = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$")
DEFAULT_CODES = {
    403: "AuthorizationFailed",
    409: "Conflict",
    429: "TooManyRequests",
    500: "InternalServerError",
    503: "ServiceUnavailable",
}

Answer = tuple[int, dict[str, Any], dict[str, str]]


@dataclass(frozen=True)
class Recorded:
    """One request as the stand-in received it: `token` is the bearer token it carried, `answered` the status."""

    method: str
    path: str
    query: dict[str, str]
    body: Any
    token: str | None
    answered: int


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


@dataclass(frozen=True)
class Change:
    """What an accepted schedule request does: `after` becomes the assignment at `key`; None removes it."""

    key: Key
    after: Assignment | None


@dataclass
class _Deferred:
    """A schedule request answered with a non-final status: after `gets` more GETs it answers `final`."""

    gets: int
    final: str
    change: Change


@dataclass
class _Failure:
    status: int
    code: str
    message: str
    times: int
    retry_after: int | None


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


class ArmStandIn(LoopbackServer):
    """A `ThreadingHTTPServer` on 127.0.0.1 answering like ARM (PIM, role definitions) and a managed identity."""

    def __init__(self, port: int = 0, *, min_active: timedelta = timedelta(minutes=5)) -> None:
        self.min_active = min_active  # PIM refuses to remove an assignment younger than this
        self.identity_header = "standin-" + secrets.token_hex(8)
        self.role_definitions: dict[str, str] = dict(BUILTIN_ROLES)  # GUID → role name
        self.principal_names: dict[str, str] = {}  # object id → the display name Entra ID knows it by
        self._lock = threading.Lock()
        self._requests: list[Recorded] = []
        self._assignments: dict[tuple[str, str, str], Assignment] = {}
        self._schedule_requests: dict[tuple[str, str], dict[str, Any]] = {}
        self._tokens: list[str] = []  # every token issued; ARM calls must carry one of them
        self._failures: list[_Failure] = []  # served in the order `fail` queued them
        self._policies: dict[tuple[str, str], PimPolicy] = {}  # (scope, role GUID), lower case
        self._next_pending: tuple[str, int, str | None] | None = None
        self._deferred: dict[tuple[str, str], _Deferred] = {}  # schedule requests still settling
        self._offset = timedelta(0)
        super().__init__(port, _Handler, "arm-standin")

    @property
    def url(self) -> str:
        """The ARM endpoint (no trailing slash), for `AzureProvider(endpoint=...)` / AZURE_ARM_ENDPOINT."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def identity_endpoint(self) -> str:
        """IDENTITY_ENDPOINT for azure-identity's App Service managed identity."""
        return self.url + "/msi/token"

    # --- inspection and knobs ---------------------------------------------------------------------

    def now(self) -> datetime:
        """The stand-in's clock: real UTC time plus whatever `advance` added."""
        return datetime.now(UTC) + self._offset

    def advance(self, delta: timedelta) -> None:
        """Move the stand-in's clock on: assignments age (and expire) without waiting."""
        with self._lock:
            self._offset += delta

    @property
    def requests(self) -> list[Recorded]:
        """Every request so far, token requests included, in order (a copy)."""
        with self._lock:
            return list(self._requests)

    def arm_requests(self, method: str | None = None) -> list[Recorded]:
        """The ARM requests (not token requests), optionally of one HTTP method."""
        return [r for r in self.requests if r.path != "/msi/token" and method in (None, r.method)]

    @property
    def assignments(self) -> list[Assignment]:
        """The assignments active now (by the stand-in's clock)."""
        with self._lock:
            self._expire()
            return list(self._assignments.values())

    @property
    def tokens(self) -> list[str]:
        """Every token issued so far."""
        with self._lock:
            return list(self._tokens)

    def fail(
        self,
        status: int,
        *,
        code: str | None = None,
        message: str = "The stand-in was told to fail this call.",
        times: int = 1,
        retry_after: int | None = None,
    ) -> None:
        """Make the next `times` ARM calls (authenticated ones; token requests are spared) answer `status`.

        Failures queue: `fail(409, code=…)` then `fail(503)` fails the next call with 409, the one after with 503.
        """
        chosen = code or DEFAULT_CODES.get(status, "BadRequest")
        with self._lock:
            self._failures.append(_Failure(status, chosen, message, times, retry_after))

    def set_policy(self, scope: str, role_definition_id: str, policy: PimPolicy) -> None:
        """The role management policy for this role at this scope (PIM keeps one per scope and role)."""
        with self._lock:
            self._policies[key_of(scope, role_definition_id, "")[:2]] = policy

    def pending(self, status: str, *, gets: int = 1, final: str | None = None) -> None:
        """The next schedule request that ARM accepts answers `status` and takes effect only when, `gets` GETs later,
        it answers `final` (Provisioned for an assign or extend, Revoked for a remove; a failure: no effect)."""
        with self._lock:
            self._next_pending = (status, gets, final)

    def standing(self, scope: str, role_definition_id: str, principal_id: str, duration: timedelta) -> Assignment:
        """An active assignment another admin made in the portal: no ticket, not jitbot's request."""
        name, schedule = str(uuid.uuid4()), str(uuid.uuid4())
        properties = {"principalId": principal_id, "roleDefinitionId": role_definition_id, "requestType": "AdminAssign"}
        with self._lock:
            now = self.now()
            made = Assignment(scope, role_definition_id, principal_id, now, now + duration, name, schedule)
            self._assignments[key_of(scope, role_definition_id, principal_id)] = made
            answered = self._answered(scope, name, properties, "Provisioned", schedule)
            answered["properties"]["requestorId"] = OTHER_ADMIN
            self._schedule_requests[(scope.lower(), name)] = answered
        return made

    # --- serving ----------------------------------------------------------------------------------

    def handle(self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: Any) -> Answer:
        """Answer one request and record it; the server thread calls this."""
        bearer = headers.get("authorization", "")
        token = bearer[7:] if bearer.lower().startswith("bearer ") else None
        with self._lock:
            self._expire()
            if path == "/msi/token":
                answer = self._issue_token(method, query, headers)
            else:
                answer = self._authenticate(token) or self._failure_answer() or self._route(method, path, query, body)
            self._requests.append(Recorded(method, path, query, body, token, answer[0]))
        return answer

    def _expire(self) -> None:
        now = self.now()
        for key in [key for key, found in self._assignments.items() if found.end <= now]:
            del self._assignments[key]

    def _issue_token(self, method: str, query: dict[str, str], headers: dict[str, str]) -> Answer:
        if headers.get("x-identity-header") != self.identity_header:
            return 401, {"statusCode": 401, "message": "Unauthorized request: X-IDENTITY-HEADER is wrong."}, {}
        if method != "GET" or query.get("api-version") != MANAGED_IDENTITY_API or not query.get("resource"):
            return 400, {"statusCode": 400, "message": "api-version 2019-08-01 and resource are required."}, {}
        token = "standin-" + secrets.token_urlsafe(32)
        self._tokens.append(token)
        expires_on = str(int(time.time()) + 3600)
        payload = {"access_token": token, "expires_on": expires_on, "resource": query["resource"]}
        return 200, {**payload, "token_type": "Bearer", "client_id": APP_OBJECT_ID}, {}

    def _authenticate(self, token: str | None) -> Answer | None:
        if token in self._tokens:
            return None
        code, said = ("AuthenticationFailed", "missing") if token is None else ("InvalidAuthenticationToken", "invalid")
        challenge = 'Bearer authorization_uri="https://login.microsoftonline.com/", error="invalid_token"'
        return error(401, code, f"The access token is {said}.", {"WWW-Authenticate": challenge})

    def _failure_answer(self) -> Answer | None:
        if not self._failures:
            return None
        failure = self._failures[0]
        failure.times -= 1
        if failure.times <= 0:
            self._failures.pop(0)
        headers = {} if failure.retry_after is None else {"Retry-After": str(failure.retry_after)}
        return error(failure.status, failure.code, failure.message, headers)

    def _route(self, method: str, path: str, query: dict[str, str], body: Any) -> Answer:
        index = path.lower().find(AUTHORIZATION)  # ARM matches paths without regard to case
        scope, rest = (path[:index], path[index + len(AUTHORIZATION) :]) if index >= 0 else (path, "")
        kind, _, name = rest.partition("/")
        kind, version = kind.lower(), query.get("api-version")
        listing = method == "GET" and not name and version == SCHEDULE_REQUESTS_API
        if kind == "roleassignmentschedulerequests" and name and version == SCHEDULE_REQUESTS_API:
            if method == "PUT":
                return self._put_request(scope, name, body)
            return self._get_request(scope, name)
        if listing and kind == "roleassignmentschedulerequests":
            return self._list(scope, query, list(self._schedule_requests.values()), ("atscope", "asrequestor", ""))
        if listing and kind == "roleassignmentscheduleinstances":
            return self._list(
                scope, query, [self._instance(found) for found in self._assignments.values()], ("atscope", "")
            )
        if listing and kind == "rolemanagementpolicyassignments":
            return 200, {"value": [self._policy_assignment(scope, guid) for guid in self.role_definitions]}, {}
        if kind == "roledefinitions" and name and method == "GET" and version == ROLE_DEFINITIONS_API:
            return self._role_definition(scope, name)
        said = f"No registered resource provider found for {method} {path} and API version '{version}'."
        return error(400, "NoRegisteredProviderFound", said)

    def _put_request(self, scope: str, name: str, body: Any) -> Answer:
        properties = body.get("properties") if isinstance(body, dict) else None
        if not GUID.match(name) or not isinstance(properties, dict):
            return error(400, "BadRequest", "The request name must be a GUID and the body must have properties.")
        if (scope.lower(), name.lower()) in self._schedule_requests:
            return error(
                400, "RoleAssignmentRequestExists", f"A role assignment request with Id: {name} already exists"
            )
        role = str(properties.get("roleDefinitionId", "")).rsplit("/", 1)[-1].lower()
        if role not in self.role_definitions:
            return error(
                400, "RoleDefinitionDoesNotExist", f"The specified role definition with ID '{role}' does not exist."
            )
        principal = str(properties.get("principalId", ""))
        if not GUID.match(principal):
            return error(400, "InvalidPrincipalId", f"The principal ID '{principal}' is not a valid GUID.")
        key = key_of(scope, role, principal)
        request_type = str(properties.get("requestType"))
        found = self._assignments.get(key)
        schedule = found.schedule if found else str(uuid.uuid4())
        if request_type == "AdminAssign":
            outcome = self._assign(key, scope, name, schedule, properties)
        elif request_type == "AdminExtend":
            outcome = self._extend(key, properties)
        elif request_type == "AdminRemove":
            outcome = self._remove(key)
        else:
            outcome = error(400, "InvalidRequestType", f"Request type '{request_type}' is not supported.")
        if not isinstance(outcome, Change):
            return outcome
        return 201, self._accept(scope, name, properties, schedule, outcome), {}

    def _accept(
        self, scope: str, name: str, properties: dict[str, Any], schedule: str, change: Change
    ) -> dict[str, Any]:
        """Record the accepted request; its change now, or deferred when `pending` asked for a non-final answer."""
        settled = SETTLED[properties["requestType"]]
        pending, self._next_pending = self._next_pending, None
        if pending is None:
            self._apply(change)
        else:
            self._deferred[(scope.lower(), name.lower())] = _Deferred(pending[1], pending[2] or settled, change)
        answered = self._answered(scope, name, properties, pending[0] if pending else settled, schedule)
        self._schedule_requests[(scope.lower(), name.lower())] = answered
        return answered

    def _assign(self, key: Key, scope: str, name: str, schedule: str, properties: dict[str, Any]) -> Answer | Change:
        expiration = (properties.get("scheduleInfo") or {}).get("expiration") or {}
        duration = parse_duration(expiration.get("duration"))
        if expiration.get("type") != "AfterDuration" or duration is None:
            return error(400, "InvalidScheduleInfo", "expiration must be AfterDuration with an ISO-8601 duration.")
        if duration < self.min_active:
            return error(
                400, "ActiveDurationTooShort", "The Active duration is too short. Minimum Required is 5 minutes."
            )
        if key in self._assignments:
            return error(400, "RoleAssignmentExists", "The Role assignment already exists.")
        refused = self._policy_refusal(key, properties, duration)
        if refused:
            return refused
        start = parse_time((properties.get("scheduleInfo") or {}).get("startDateTime")) or self.now()
        made = Assignment(
            scope, properties["roleDefinitionId"], properties["principalId"], start, start + duration, name, schedule
        )
        return Change(key, made)

    def _policy_refusal(self, key: Key, properties: dict[str, Any], duration: timedelta | None) -> Answer | None:
        broken = broken_rules(self._policies.get(key[:2], PimPolicy()), properties, duration)
        if not broken:
            return None
        # the message as ARM writes it: The following policy rules failed: ["EligibilityRule","ExpirationRule"]
        return error(
            400, POLICY_FAILED, f"The following policy rules failed: {json.dumps(broken, separators=(',', ':'))}"
        )

    def _extend(self, key: Key, properties: dict[str, Any]) -> Answer | Change:
        found = self._assignments.get(key)
        target = str(properties.get("targetRoleAssignmentScheduleId", "")).rsplit("/", 1)[-1].lower()
        if found is None or target != found.schedule.lower():  # the schedule's GUID, or its full id
            return error(400, "RoleAssignmentDoesNotExist", "The Role assignment does not exist.")
        expiration = (properties.get("scheduleInfo") or {}).get("expiration") or {}
        end = parse_time(expiration.get("endDateTime"))
        if expiration.get("type") != "AfterDateTime" or end is None or end <= found.end:
            return error(400, "InvalidScheduleInfo", "expiration must be AfterDateTime, later than the current end.")
        refused = self._policy_refusal(key, properties, end - found.start)
        if refused:
            return refused
        return Change(key, replace(found, end=end))

    def _remove(self, key: Key) -> Answer | Change:
        found = self._assignments.get(key)
        if found is None:
            return error(400, "RoleAssignmentDoesNotExist", "The Role assignment does not exist.")
        if self.now() - found.start < self.min_active:
            return error(
                400, "ActiveDurationTooShort", "The Active duration is too short. Minimum Required is 5 minutes."
            )
        return Change(key, None)

    def _apply(self, change: Change) -> None:
        if change.after is None:
            self._assignments.pop(change.key, None)
        else:
            self._assignments[change.key] = change.after

    def _answered(
        self, scope: str, name: str, properties: dict[str, Any], status: str, schedule: str
    ) -> dict[str, Any]:
        answered = {
            **properties,
            "scope": scope,
            "principalType": "User",
            "status": status,
            "targetRoleAssignmentScheduleId": schedule,  # a bare GUID, as in PutRoleAssignmentScheduleRequest.json
            "targetRoleAssignmentScheduleInstanceId": None,
            "createdOn": self.now().strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "requestorId": APP_OBJECT_ID,
            "expandedProperties": self._expanded(scope, properties),
        }
        return {
            "id": f"{scope}/providers/Microsoft.Authorization/roleAssignmentScheduleRequests/{name}",
            "name": name,
            "type": "Microsoft.Authorization/RoleAssignmentScheduleRequests",
            "properties": answered,
        }

    def _expanded(self, scope: str, properties: dict[str, Any]) -> dict[str, Any]:
        role_id = properties["roleDefinitionId"]
        return {
            # as ARM expands it: the display name of a principal the directory knows (azure-mgmt-authorization
            # 2020-10-01 model ExpandedPropertiesPrincipal: id, displayName, email, type)
            "principal": {
                "id": properties["principalId"],
                "type": "User",
                **({"displayName": known} if (known := self.principal_names.get(properties["principalId"])) else {}),
            },
            "roleDefinition": {
                "id": role_id,
                "displayName": self.role_definitions[role_id.rsplit("/", 1)[-1].lower()],
                "type": "BuiltInRole",
            },
            "scope": {"id": scope, "displayName": scope.rsplit("/", 1)[-1], "type": "resourcegroup"},
        }

    def _get_request(self, scope: str, name: str) -> Answer:
        found = self._schedule_requests.get((scope.lower(), name.lower()))
        if found is None:
            return error(
                404, "RoleAssignmentScheduleRequestNotFound", f"Role assignment schedule request {name} not found."
            )
        deferred = self._deferred.get((scope.lower(), name.lower()))
        if deferred is not None:
            deferred.gets -= 1
            if deferred.gets <= 0:
                del self._deferred[(scope.lower(), name.lower())]
                found["properties"]["status"] = deferred.final
                if deferred.final in SETTLED.values():
                    self._apply(deferred.change)
        return 200, found, {}

    def _list(self, scope: str, query: dict[str, str], items: list[dict[str, Any]], kinds: tuple[str, ...]) -> Answer:
        chosen = FILTER.match(query.get("$filter", "")) if query.get("$filter") else None
        kind, argument = (chosen.group(1) or "", chosen.group(2) or "") if chosen else ("", "")
        if query.get("$filter") and (chosen is None or (kind.lower() not in kinds)):
            return error(400, "BadRequest", f"The filter '{query['$filter']}' is not supported.")
        return 200, {"value": [item for item in items if is_listed(kind, argument, scope, item["properties"])]}, {}

    def _instance(self, found: Assignment) -> dict[str, Any]:
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
            "expandedProperties": self._expanded(
                found.scope,
                {"roleDefinitionId": found.role_definition_id, "principalId": found.principal_id},
            ),
        }
        return {
            "id": f"{found.scope}/providers/Microsoft.Authorization/RoleAssignmentScheduleInstances/{name}",
            "name": name,
            "type": "Microsoft.Authorization/RoleAssignmentScheduleInstances",
            "properties": properties,
        }

    def _policy_assignment(self, scope: str, guid: str) -> dict[str, Any]:
        """The policy that applies to one role at `scope`, as GetRoleManagementPolicyAssignmentByScope.json shows it."""
        policy = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{scope.lower()}/{guid}"))
        subscription = "/".join(scope.split("/")[:3])
        properties = {
            "scope": scope,
            "roleDefinitionId": f"{subscription}/providers/Microsoft.Authorization/roleDefinitions/{guid}",
            "policyId": f"{scope}/providers/Microsoft.Authorization/roleManagementPolicies/{policy}",
            "effectiveRules": policy_rules(self._policies.get((scope.lower(), guid), PimPolicy())),
        }
        return {
            "id": f"{scope}/providers/Microsoft.Authorization/roleManagementPolicyAssignment/{policy}_{guid}",
            "name": f"{policy}_{guid}",
            "type": "Microsoft.Authorization/RoleManagementPolicyAssignment",
            "properties": properties,
        }

    def _role_definition(self, scope: str, guid: str) -> Answer:
        name = self.role_definitions.get(guid.lower())
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


class _Handler(BaseHTTPRequestHandler):
    server: StandInServer[ArmStandIn]
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def _serve(self) -> None:
        parts = urlsplit(self.path)
        path = re.sub("/+", "/", parts.path).rstrip("/")  # ARM takes `//subscriptions/…` as `/subscriptions/…`
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            self._reply(error(400, "InvalidRequestContent", "The request content was invalid and could not be parsed."))
            return
        headers = {name.lower(): value for name, value in self.headers.items()}
        self._reply(self.server.standin.handle(self.command, path, query, headers, body))

    def _reply(self, answer: Answer) -> None:
        status, payload, headers = answer
        data = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-ms-request-id", str(uuid.uuid4()))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default per-request logging."""
