"""A local stand-in for Azure Resource Manager's PIM and role-definition APIs, with a managed-identity token endpoint.

It answers as Azure does — 201 with the request echoed and a status, PIM's error codes (RoleAssignmentExists,
RoleAssignmentDoesNotExist, ActiveDurationTooShort in an assignment's first five minutes), 401 without a token it
issued — and records every request. Its clock can be moved on (`advance`) so the five-minute rule needs no waiting.
Each (scope, role) has a role management policy (`pim.set_policy`, else PIM's defaults) that an AdminAssign must
meet; `pim.pending` makes the next schedule request answer a non-final status that settles on a later GET;
`pim.standing` adds an assignment someone else made (`pim`: jitbot.testing.pim_knobs). It lists schedule requests,
schedule instances and policy assignments as the 2020-10-01 examples in azure-rest-api-specs show them.
With `limits` (benchmarks, throttling tests) every ARM call takes its latency and ARM's own throttle applies: a write
takes a token from the bucket of the caller's principal and subscription (`limits`' rate), a read from ARM's read
bucket; past it, 429 SubscriptionRequestsThrottled with Retry-After, and every answer says what is left of its bucket
(x-ms-ratelimit-remaining-subscription-writes or -reads). Tokens come back by the stand-in's clock: `advance` refills.
A real `DefaultAzureCredential`, in this process or another, gets its token here through the App Service managed
identity protocol: IDENTITY_ENDPOINT=`<standin>.identity_endpoint`, IDENTITY_HEADER=`<standin>.identity_header`.
"""

from __future__ import annotations

import json
import math
import re
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

from jitbot.providers.limits import Limits, Throttle
from jitbot.testing.loopback import Answer, JsonHandler, LoopbackServer, StandInServer
from jitbot.testing.pim import Pim
from jitbot.testing.pim_knobs import PimKnobs
from jitbot.testing.role_management import APP_OBJECT_ID, Assignment, error, role_definition

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
AUTHORIZATION = "/providers/microsoft.authorization/"
DEFAULT_CODES = {
    403: "AuthorizationFailed",
    409: "Conflict",
    429: "TooManyRequests",
    500: "InternalServerError",
    503: "ServiceUnavailable",
}
# ARM's own throttle, before any resource provider sees a call ("Understand how Azure Resource Manager throttles
# requests", learn.microsoft.com/azure/azure-resource-manager/management/request-limits-and-throttling): since 2024 a
# token bucket per subscription, per security principal and per operation type, applied per region — writes 200
# refilled 10 a second, reads 250 refilled 25 a second (before: 1,200 writes and 12,000 reads an hour per principal
# and subscription, per ARM instance). Writes take `limits`' bucket, so that a test can make it small; reads ARM's.
# Past it: "HTTP status code 429 Too many requests", with "a Retry-After value, which specifies the number of seconds
# your application should wait". Each answer reports what is left: x-ms-ratelimit-remaining-subscription-reads "on
# read operations", -writes "on write operations" (x-ms-ratelimit-remaining-tenant-… for a request without a
# subscription).
ARM_READ_BUCKET, ARM_READS_PER_S = 250, 25.0
SUBSCRIPTION = re.compile(r"^/subscriptions/([^/]+)", re.IGNORECASE)
# The refusal as ARM words it: code SubscriptionRequestsThrottled (Learn, "Troubleshoot the
# SubscriptionRequestsThrottled error code (429)"; MicrosoftDocs/azure-docs#105248), message "Number of 'read'
# requests for subscription '<id>' actor '<principal>' exceeded. Please try again after '10' seconds." (as a
# client's logs quote it; the tenant's code and message are assumed to follow the subscription's).
THROTTLED = "SubscriptionRequestsThrottled"


@dataclass(frozen=True)
class Recorded:
    """One request as the stand-in received it: `token` is the bearer token it carried, `answered` the status, `at`
    when it was answered (time.monotonic(), as the Slack stand-in stamps its calls: the two can be ordered)."""

    method: str
    path: str
    query: dict[str, str]
    body: Any
    token: str | None
    answered: int
    at: float


@dataclass
class _Failure:
    status: int
    code: str
    message: str
    times: int
    retry_after: int | None


class ArmStandIn(LoopbackServer):
    """A `ThreadingHTTPServer` on 127.0.0.1 answering like ARM (PIM, role definitions) and a managed identity."""

    def __init__(
        self, port: int = 0, *, min_active: timedelta = timedelta(minutes=5), limits: Limits | None = None
    ) -> None:
        self.identity_header = "standin-" + secrets.token_hex(8)
        self._lock = threading.Lock()
        self._requests: list[Recorded] = []
        self._tokens: list[str] = []  # every token issued; ARM calls must carry one of them
        self._failures: list[_Failure] = []  # served in the order `fail` queued them
        self._offset = timedelta(0)
        self._pim = Pim(self.now, dict(BUILTIN_ROLES), min_active)
        self.pim = PimKnobs(self._pim, self._lock)  # its policies, its five-minute rule, what it answers next
        # ARM's throttle (None: off): `throttle` the latency and the write buckets, `_reads` the read buckets
        self.throttle = Throttle(limits, clock=self._seconds) if limits else None
        self._reads = Throttle(Limits(writes_per_s=ARM_READS_PER_S, burst=ARM_READ_BUCKET), clock=self._seconds)
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
        """Move the stand-in's clock on: assignments age (and expire), and throttled buckets refill, without waiting."""
        with self._lock:
            self._offset += delta

    def _seconds(self) -> float:
        """The throttle's clock: monotonic seconds, moved on by `advance` as `now` is."""
        return time.monotonic() + self._offset.total_seconds()

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
            self._pim.expire()
            return list(self._pim.assignments.values())

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
        if self.throttle and path != "/msi/token":
            self.throttle.wait()  # outside the lock: calls overlap, as on the network
        with self._lock:
            self._pim.expire()
            if path == "/msi/token":
                answer = self._issue_token(method, query, headers)
            else:
                answer = self._authenticate(token) or self._serve(method, path, query, body)
            self._requests.append(Recorded(method, path, query, body, token, answer[0], time.monotonic()))
        return answer

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

    def _serve(self, method: str, path: str, query: dict[str, str], body: Any) -> Answer:
        """An authenticated ARM call: ARM's throttle first, then the knobs' failures, then the resource provider."""
        refused, left = self._take(method, path)
        status, payload, headers = refused or self._failure_answer() or self._route(method, path, query, body)
        return status, payload, {**left, **headers}

    def _take(self, method: str, path: str) -> tuple[Answer | None, dict[str, str]]:
        """ARM's throttle: a token from the bucket of this principal (every token here stands for APP_OBJECT_ID),
        subscription and kind of call; the 429 when there is none, and the header that says what is left."""
        if self.throttle is None:
            return None, {}
        kind, buckets = ("read", self._reads) if method == "GET" else ("write", self.throttle)
        subscription = SUBSCRIPTION.match(path)
        level, name = ("subscription", subscription[1]) if subscription else ("tenant", "")
        key = f"{APP_OBJECT_ID}/{level}/{name}"
        wait = buckets.take(key)
        left = buckets.remaining(key)
        headers = {} if left is None else {f"x-ms-ratelimit-remaining-{level}-{kind}s": str(left)}
        if wait is None:
            return None, headers
        seconds = math.ceil(wait)
        said = (
            f"Number of '{kind}' requests for {level} '{name}' actor '{APP_OBJECT_ID}' exceeded. "
            f"Please try again after '{seconds}' seconds."
        )
        return error(429, THROTTLED, said, {**headers, "Retry-After": str(seconds)}), headers

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
                return self._pim.put(scope, name, body)
            return self._pim.get(scope, name)
        if listing and kind == "roleassignmentschedulerequests":
            return self._pim.list_requests(scope, query)
        if listing and kind == "roleassignmentscheduleinstances":
            return self._pim.list_instances(scope, query)
        if listing and kind == "rolemanagementpolicyassignments":
            return self._pim.list_policies(scope)
        if kind == "roledefinitions" and name and method == "GET" and version == ROLE_DEFINITIONS_API:
            return role_definition(scope, name, self._pim.role_definitions.get(name.lower()))
        said = f"No registered resource provider found for {method} {path} and API version '{version}'."
        return error(400, "NoRegisteredProviderFound", said)


class _Handler(JsonHandler):
    server: StandInServer[ArmStandIn]

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
