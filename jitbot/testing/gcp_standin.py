"""A local stand-in for Cloud Resource Manager v3 IAM policies, and the OAuth token endpoint ADC refreshes at.

It answers as the real services do: `POST /v3/{resource}:getIamPolicy` and `:setIamPolicy` with Google's error
JSON, a stale etag refused with 409 ABORTED, conditions only in version 3 policies, never on basic roles or for
everyone, at most 20 conditional bindings of one role to one member and 1,500 principals (sources beside each),
403 for a resource it does not hold (Google does not say whether it exists), 401 without a bearer token it issued.
With `limits` (benchmarks) every call takes its latency and each resource's policy takes a write rate, a write
beyond it answered 429 RESOURCE_EXHAUSTED. `POST /token` is the OAuth refresh-token grant behind the credentials
file `write_adc` writes: point GOOGLE_APPLICATION_CREDENTIALS at it and Application Default Credentials work in any
process, with no request leaving the machine. What a policy may hold, and how each version shows it, is gcp_policy's.
"""

from __future__ import annotations

import base64
import copy
import json
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from jitbot.providers.limits import Limits, Throttle
from jitbot.testing.gcp_policy import VERSIONS, append_bindings, as_version, binding_problem, has_conditions, new_etag
from jitbot.testing.loopback import Answer, JsonHandler, LoopbackServer, StandInServer

API_METHODS = ("getIamPolicy", "setIamPolicy")
STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}
MASKABLE = {"bindings", "etag", "auditConfigs"}
# A write refused for quota: 429 RESOURCE_EXHAUSTED with this message (the form Resource Manager answers a read over
# quota with: "Quota exceeded for quota metric 'Read requests' and limit 'Read requests per minute' of service
# 'cloudresourcemanager.googleapis.com'", status RESOURCE_EXHAUSTED, reason RATE_LIMIT_EXCEEDED). Google publishes
# the write quota per consumer project ("Resource Manager limits": writing projects, up to 10 writes per second;
# IAM "Quotas and limits": write requests, 600 per project per minute) and sends no Retry-After; the stand-in
# counts it per policy written, so that a test can throttle one hot project and not the others. Two writers of
# one policy at once meet the etag check instead: 409 ABORTED (below).
QUOTA_EXCEEDED = "Quota exceeded for quota metric 'Write requests' of service 'cloudresourcemanager.googleapis.com'."
TOKEN_SECONDS = 3599


@dataclass(frozen=True)
class Call:
    """One request as the stand-in received it: `method` is getIamPolicy, setIamPolicy, token, or the path."""

    method: str
    resource: str
    body: dict[str, Any]
    token: str | None  # the bearer token it carried
    answered: int


@dataclass
class _Failure:
    status: int
    times: int
    retry_after: int | None
    resource: str | None  # only calls on this resource fail; None: any


def google_error(status: int, message: str, headers: dict[str, str] | None = None) -> Answer:
    body = {"error": {"code": status, "message": message, "status": STATUS_NAMES.get(status, "UNKNOWN")}}
    return status, body, headers or {}


class GcpStandIn(LoopbackServer):
    """A `ThreadingHTTPServer` on 127.0.0.1 that answers Resource Manager v3 IAM calls and records each request.

    `policies` maps a resource name (`projects/acme`, `folders/123`) to its policy; only resources in it exist.
    Seed it with other people's bindings before a test; an etag and version are added on the first read.
    """

    def __init__(self, port: int = 0, limits: Limits | None = None) -> None:
        self.policies: dict[str, dict[str, Any]] = {}
        self.throttle = Throttle(limits) if limits else None
        self.client_id = "standin-client-" + secrets.token_hex(4) + ".apps.googleusercontent.com"
        self.client_secret = secrets.token_urlsafe(18)
        self.refresh_token = "1//standin-" + secrets.token_urlsafe(24)
        self._tokens: set[str] = set()
        self._lock = threading.Lock()
        self._calls: list[Call] = []
        self._failures: dict[str, _Failure] = {}
        self._conflicts = 0
        self._put_back: dict[str, tuple[dict[str, Any], int]] = {}  # resource → (binding, writes left)
        super().__init__(port, _Handler, "gcp-standin")

    @property
    def url(self) -> str:
        """Base URL for `client_options={"api_endpoint": ...}` (and GCP_RESOURCEMANAGER_ENDPOINT)."""
        return f"http://127.0.0.1:{self.port}/"

    # --- inspection and knobs ---------------------------------------------------------------------

    @property
    def requests(self) -> list[Call]:
        """Every request so far, in order (a copy)."""
        with self._lock:
            return list(self._calls)

    def requests_to(self, method: str) -> list[Call]:
        return [call for call in self.requests if call.method == method]

    @property
    def tokens(self) -> set[str]:
        """The access tokens `/token` has issued (a copy)."""
        with self._lock:
            return set(self._tokens)

    def write_adc(self, directory: Path) -> Path:
        """A credentials file for GOOGLE_APPLICATION_CREDENTIALS whose tokens come from this stand-in's `/token`.

        Its type is `external_account_authorized_user` (a refresh token, like `authorized_user`), because
        google-auth always sends an `authorized_user` refresh to Google's own token endpoint, whatever its
        token_uri says. It has no `audience`: with one, google-auth would also look up the workforce pool's
        regional access boundary at iamcredentials.googleapis.com.
        """
        info = {
            "type": "external_account_authorized_user",
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "refresh_token": self.refresh_token,
            "token_url": self.url + "token",
        }
        path = directory / "gcp-standin-adc.json"
        path.write_text(json.dumps(info))
        return path

    def add_bindings(self, resource: str, *bindings: dict[str, Any]) -> None:
        """Someone else writes `resource`'s policy behind jitbot's back (the console, Terraform, a restored backup):
        `bindings` join it, and its etag changes as with any write."""
        with self._lock:
            append_bindings(self.policies.setdefault(resource, {}), bindings)

    def put_back(self, resource: str, binding: dict[str, Any], times: int) -> None:
        """After each of the next `times` writes of `resource`'s policy that drop `binding`, another writer puts it
        back at once (a config-management tool applying an old state): a read-back finds it still there."""
        with self._lock:
            self._put_back[resource] = (copy.deepcopy(binding), times)

    def conflict(self, times: int = 1) -> None:
        """The next `times` setIamPolicy calls find that someone else wrote the policy since it was read: that
        writer's binding (roles/viewer for user:concurrent-writer-N@example.com) goes in, the etag changes, and the
        call answers 409 ABORTED."""
        with self._lock:
            self._conflicts = times

    def fail(
        self, method: str, *, status: int, times: int = 1, retry_after: int | None = None, resource: str | None = None
    ) -> None:
        """Make the next `times` calls to getIamPolicy or setIamPolicy (on `resource` only, if given) answer HTTP
        `status` (403, 404, 429, 503…)."""
        if method not in API_METHODS:
            raise ValueError(f"method must be one of {API_METHODS}")
        with self._lock:
            self._failures[method] = _Failure(status, times, retry_after, resource)

    # --- serving ----------------------------------------------------------------------------------

    def handle(self, path: str, body: dict[str, Any], authorization: str) -> Answer:
        """Answer one request and record it; the server thread calls this."""
        resource, _, method = path.removeprefix("/v3/").rpartition(":")
        token = authorization.removeprefix("Bearer ") if authorization.startswith("Bearer ") else None
        if self.throttle and path.startswith("/v3/"):
            self.throttle.wait()  # outside the lock: calls overlap, as on the network
        with self._lock:
            if path == "/token":
                method, resource, answer = "token", "", self._token(body, authorization)
            elif path.startswith("/v3/") and method in API_METHODS:
                answer = self._api(method, resource, body, token)
            else:
                method, resource, answer = path, "", google_error(404, f"The requested URL {path} was not found.")
            self._calls.append(Call(method, resource, body, token, answer[0]))
        return answer

    def _token(self, form: dict[str, Any], authorization: str) -> Answer:
        """The refresh-token grant (RFC 6749 §6), the client authenticated by HTTP Basic or in the form."""
        client = (form.get("client_id"), form.get("client_secret"))
        if authorization.startswith("Basic "):
            user, _, password = base64.b64decode(authorization.removeprefix("Basic ")).decode().partition(":")
            client = (user, password)
        if form.get("grant_type") != "refresh_token":
            return 400, {"error": "unsupported_grant_type", "error_description": "Invalid grant_type"}, {}
        if client != (self.client_id, self.client_secret):
            return 401, {"error": "invalid_client", "error_description": "The OAuth client was not found."}, {}
        if form.get("refresh_token") != self.refresh_token:
            return 400, {"error": "invalid_grant", "error_description": "Bad Request"}, {}
        token = "ya29.standin-" + secrets.token_urlsafe(32)
        self._tokens.add(token)
        return 200, {"access_token": token, "expires_in": TOKEN_SECONDS, "token_type": "Bearer"}, {}

    def _api(self, method: str, resource: str, body: dict[str, Any], token: str | None) -> Answer:
        if token not in self._tokens:
            message = "Request had invalid authentication credentials. Expected OAuth 2 access token."
            return google_error(401, message, {"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'})
        failure = self._failure_answer(method, resource)
        if failure is not None:
            return failure
        if method == "setIamPolicy" and self.throttle and self.throttle.take(resource) is not None:
            return google_error(429, QUOTA_EXCEEDED)
        if resource not in self.policies:
            kind = resource.partition("/")[0] or "resource"
            message = (
                f"Permission 'resourcemanager.{kind}.{method}' denied on resource "
                f"'//cloudresourcemanager.googleapis.com/{resource}' (or it may not exist)."
            )
            return google_error(403, message)
        stored = self.policies[resource]
        stored.setdefault("etag", new_etag())
        stored.setdefault("version", 3 if has_conditions(stored) else 1)
        if method == "getIamPolicy":
            return self._get(stored, body)
        return self._set(resource, stored, body)

    def _failure_answer(self, method: str, resource: str) -> Answer | None:
        failure = self._failures.get(method)
        if failure is None or failure.resource not in (None, resource):
            return None
        failure.times -= 1
        if failure.times <= 0:
            del self._failures[method]
        headers = {} if failure.retry_after is None else {"Retry-After": str(failure.retry_after)}
        messages = {
            403: "The caller does not have permission",
            404: f"Requested entity was not found: {resource}.",
            429: QUOTA_EXCEEDED,
            503: "The service is currently unavailable.",
        }
        return google_error(failure.status, messages.get(failure.status, "Internal error encountered."), headers)

    def _get(self, stored: dict[str, Any], body: dict[str, Any]) -> Answer:
        requested = (body.get("options") or {}).get("requestedPolicyVersion", 0)
        if requested not in VERSIONS:
            return google_error(400, f"Invalid requested policy version {requested}; valid versions are 0, 1 and 3.")
        return 200, as_version(stored, requested), {}

    def _set(self, resource: str, stored: dict[str, Any], body: dict[str, Any]) -> Answer:
        policy = body.get("policy")
        mask = {field.strip() for field in str(body.get("updateMask") or "bindings,etag").split(",")}
        if not isinstance(policy, dict) or not mask <= MASKABLE:
            return google_error(400, "Request contains an invalid argument.")
        if self._conflicts > 0:
            self._conflicts -= 1
            self._write_as_someone_else(stored)
        if policy.get("etag") and policy["etag"] != stored["etag"]:
            message = (
                "There were concurrent policy changes. Please retry the whole read-modify-write with exponential "
                f"backoff. The request's ETag '{policy['etag']}' did not match the current policy's ETag "
                f"'{stored['etag']}'."
            )
            return google_error(409, message)
        problem = binding_problem(policy)
        if problem is not None:
            return google_error(400, problem)
        bindings = policy.get("bindings", []) if "bindings" in mask else stored.get("bindings", [])
        audit = policy.get("auditConfigs") if "auditConfigs" in mask else stored.get("auditConfigs")
        written: dict[str, Any] = {"bindings": copy.deepcopy(bindings), "etag": new_etag()}
        if audit:
            written["auditConfigs"] = copy.deepcopy(audit)
        written["version"] = 3 if has_conditions(written) else 1
        self.policies[resource] = written
        answer = as_version(written, 3)
        self._write_back(resource, written)
        return 200, answer, {}

    def _write_back(self, resource: str, written: dict[str, Any]) -> None:
        binding, times = self._put_back.get(resource, ({}, 0))
        if times > 0 and binding not in written["bindings"]:
            append_bindings(written, [binding])
            self._put_back[resource] = (binding, times - 1)

    def _write_as_someone_else(self, stored: dict[str, Any]) -> None:
        writer = sum(1 for call in self._calls if call.answered == 409) + 1
        append_bindings(stored, [{"role": "roles/viewer", "members": [f"user:concurrent-writer-{writer}@example.com"]}])


class _Handler(JsonHandler):
    server: StandInServer[GcpStandIn]

    def do_POST(self) -> None:
        self._serve()

    def do_GET(self) -> None:
        self._serve()

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = self._parse(raw)
        except ValueError:
            self._reply(google_error(400, "Invalid JSON payload received."))
            return
        authorization = self.headers.get("Authorization", "")
        self._reply(self.server.standin.handle(urlsplit(self.path).path, body, authorization))

    def _parse(self, raw: bytes) -> dict[str, Any]:
        if "json" in self.headers.get("Content-Type", ""):
            parsed = json.loads(raw) if raw else {}
            return parsed if isinstance(parsed, dict) else {}
        return {key: values[-1] for key, values in parse_qs(raw.decode("utf-8")).items()}
