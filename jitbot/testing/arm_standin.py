"""A local stand-in for Azure Resource Manager's PIM and role-definition APIs, with a managed-identity token endpoint.

It answers as Azure does — 201 with the request echoed and a status, PIM's error codes (RoleAssignmentExists,
RoleAssignmentDoesNotExist, ActiveDurationTooShort in an assignment's first five minutes), 401 without a token it
issued — and records every request. Its clock can be moved on (`advance`) so the five-minute rule needs no waiting.
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


def schedule_id(scope: str, request_name: str) -> str:
    """The schedule an AdminAssign request creates (the stand-in names it after the request)."""
    return f"{scope}/providers/Microsoft.Authorization/roleAssignmentSchedules/{request_name}"


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
        version = query.get("api-version")
        if kind.lower() == "roleassignmentschedulerequests" and name and version == SCHEDULE_REQUESTS_API:
            if method == "PUT":
                return self._put_request(scope, name, body)
            return self._get_request(scope, name)
        if kind.lower() == "roledefinitions" and name and method == "GET" and version == ROLE_DEFINITIONS_API:
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
        key = (scope.lower(), role, principal.lower())
        request_type = properties.get("requestType")
        if request_type == "AdminAssign":
            refused, status = self._assign(key, scope, name, properties), "Provisioned"
        elif request_type == "AdminExtend":
            refused, status = self._extend(key, properties), "Provisioned"
        elif request_type == "AdminRemove":
            refused, status = self._remove(key), "Revoked"
        else:
            refused, status = error(400, "InvalidRequestType", f"Request type '{request_type}' is not supported."), ""
        if refused:
            return refused
        answered = self._answered(scope, name, properties, status)
        self._schedule_requests[(scope.lower(), name.lower())] = answered
        return 201, answered, {}

    def _assign(self, key: tuple[str, str, str], scope: str, name: str, properties: dict[str, Any]) -> Answer | None:
        schedule = properties.get("scheduleInfo") or {}
        expiration = schedule.get("expiration") or {}
        duration = parse_duration(expiration.get("duration"))
        if expiration.get("type") != "AfterDuration" or duration is None:
            return error(400, "InvalidScheduleInfo", "expiration must be AfterDuration with an ISO-8601 duration.")
        if duration < self.min_active:
            return error(
                400, "ActiveDurationTooShort", "The Active duration is too short. Minimum Required is 5 minutes."
            )
        if key in self._assignments:
            return error(400, "RoleAssignmentExists", "The Role assignment already exists.")
        start = parse_time(schedule.get("startDateTime")) or self.now()
        self._assignments[key] = Assignment(
            scope, properties["roleDefinitionId"], properties["principalId"], start, start + duration, name
        )
        return None

    def _extend(self, key: tuple[str, str, str], properties: dict[str, Any]) -> Answer | None:
        found = self._assignments.get(key)
        target = str(properties.get("targetRoleAssignmentScheduleId", "")).lower()
        if found is None or target != schedule_id(found.scope, found.request_name).lower():
            return error(400, "RoleAssignmentDoesNotExist", "The Role assignment does not exist.")
        expiration = (properties.get("scheduleInfo") or {}).get("expiration") or {}
        end = parse_time(expiration.get("endDateTime"))
        if expiration.get("type") != "AfterDateTime" or end is None or end <= found.end:
            return error(400, "InvalidScheduleInfo", "expiration must be AfterDateTime, later than the current end.")
        self._assignments[key] = replace(found, end=end)
        return None

    def _remove(self, key: tuple[str, str, str]) -> Answer | None:
        found = self._assignments.get(key)
        if found is None:
            return error(400, "RoleAssignmentDoesNotExist", "The Role assignment does not exist.")
        if self.now() - found.start < self.min_active:
            return error(
                400, "ActiveDurationTooShort", "The Active duration is too short. Minimum Required is 5 minutes."
            )
        del self._assignments[key]
        return None

    def _answered(self, scope: str, name: str, properties: dict[str, Any], status: str) -> dict[str, Any]:
        role_id = properties["roleDefinitionId"]
        schedule = properties.get("targetRoleAssignmentScheduleId") or schedule_id(scope, name)
        expanded = {
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
        answered = {
            **properties,
            "scope": scope,
            "principalType": "User",
            "status": status,
            "targetRoleAssignmentScheduleId": schedule,
            "targetRoleAssignmentScheduleInstanceId": f"{schedule}/instances/{uuid.uuid4()}",
            "createdOn": self.now().strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "requestorId": APP_OBJECT_ID,
            "expandedProperties": expanded,
        }
        return {
            "id": f"{scope}/providers/Microsoft.Authorization/roleAssignmentScheduleRequests/{name}",
            "name": name,
            "type": "Microsoft.Authorization/RoleAssignmentScheduleRequests",
            "properties": answered,
        }

    def _get_request(self, scope: str, name: str) -> Answer:
        found = self._schedule_requests.get((scope.lower(), name.lower()))
        if found is None:
            return error(
                404, "RoleAssignmentScheduleRequestNotFound", f"Role assignment schedule request {name} not found."
            )
        return 200, found, {}

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
