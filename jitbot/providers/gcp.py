"""GCP: a conditional IAM binding that ends by itself, added and removed by a read-modify-write of the policy.

The policy edits (add, remove, prune) are pure, in gcp_policy.py; here are the few Cloud Resource Manager v3 calls,
retried from the read when another writer changed the policy in between. Google's libraries are imported only
here: only a worker that grants on GCP loads them.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import google.auth
import httplib2  # type: ignore[import-untyped]
from google.auth.credentials import Credentials as GoogleCredentials
from google.auth.exceptions import GoogleAuthError, TransportError
from google_auth_httplib2 import AuthorizedHttp  # type: ignore[import-untyped]
from googleapiclient.discovery import build  # type: ignore[import-untyped]
from googleapiclient.errors import HttpError  # type: ignore[import-untyped]

from jitbot.core.catalog import Resource
from jitbot.core.domain import AccessRequest
from jitbot.core.durations import retry_after
from jitbot.core.errors import ProviderError
from jitbot.providers.base import CONNECT_S, READ_S, Ending, Held, Issued, Outcome
from jitbot.providers.gcp_policy import (
    POLICY_VERSION,
    Policy,
    add_binding,
    condition_title,
    console_url,
    held_bindings,
    member_for,
    prune_expired,
    read_back,
    remove_binding,
    remove_bindings,
    resource_kind,
    rfc3339,
)
from jitbot.providers.gcp_settings import GcpSettings

SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]
GET_POLICY = {"options": {"requestedPolicyVersion": POLICY_VERSION}}
CONFLICT_STATUSES = {409, 412}  # ABORTED / FAILED_PRECONDITION: someone else wrote the policy since we read it
ATTEMPTS = 5
BACKOFF_BASE = 0.5  # seconds before the second attempt, doubling after
ADMIN_ROLES = {
    "project": "roles/resourcemanager.projectIamAdmin",
    "folder": "roles/resourcemanager.folderIamAdmin",
    "organization": "roles/resourcemanager.organizationAdmin",
}
Edit = Callable[[Policy], Policy]


class _Conflict(Exception):
    """Someone else changed the policy between our read and our write: read again."""


class GcpProvider:
    merges_ends = False

    def __init__(
        self,
        endpoint: str | None = None,
        credentials: GoogleCredentials | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.endpoint = endpoint
        self._credentials = credentials
        self._sleep = sleep
        self._service: Any = None
        self._credentials_in_use: GoogleCredentials | None = None
        self._per_thread = threading.local()

    def grant(self, request: AccessRequest, resource: Resource, now: datetime) -> Issued:
        return self._bind(request, resource, now, now + request.duration, lambda policy: policy)

    def extend(self, request: AccessRequest, resource: Resource, now: datetime) -> Issued:
        """The binding is replaced, in one write, by one whose condition ends at the new expiry."""
        expires_at = request.expires_at or now
        return self._bind(request, resource, now, expires_at, lambda policy: remove_binding(policy, request.id))

    def _bind(
        self, request: AccessRequest, resource: Resource, now: datetime, expires_at: datetime, first: Edit
    ) -> Issued:
        settings = resource.settings_as(GcpSettings)
        target, role, member = settings.resource, settings.role, member_for(request)
        self._edit(
            target, lambda p: prune_expired(add_binding(first(p), role, member, request.id, expires_at), now), now
        )
        until = rfc3339(expires_at)
        handle = {
            "condition_title": condition_title(request.id),
            "member": member,
            "role": role,
            "resource": target,
            "expires_at": until,
        }
        access = {
            "Role": role,
            "Resource": target,
            "Identity": member.removeprefix("user:"),
            "Until": until,
            "Console": console_url(target),
        }
        return Issued(handle, access=access)

    def revoke(self, request: AccessRequest, resource: Resource, now: datetime) -> None:
        self._unbind(resource.settings_as(GcpSettings).resource, request.id, now)

    def verify_revoked(self, request: AccessRequest, resource: Resource, now: datetime) -> str:
        """Read the policy back: a revoke that wrote nothing, or a restore of an old policy since, shows here."""
        target = resource.settings_as(GcpSettings).resource
        outcome = read_back(self._read(target, now), target, request.id)
        if isinstance(outcome, ProviderError):
            raise outcome
        return outcome

    def shared_policy(self, request: AccessRequest, resource: Resource) -> str:
        """The resource's one IAM policy: every grant on a project is a read-modify-write of it."""
        return resource.settings_as(GcpSettings).resource

    def revoke_many(self, grants: Sequence[Ending], now: datetime) -> dict[str, Outcome]:
        """One read-modify-write takes every grant's binding out of the resource's policy (one setIamPolicy, not
        one per grant colliding on the etag), then one read shows each gone. A refused write fails them all."""
        target, ids = grants[0][1].settings_as(GcpSettings).resource, {request.id for request, _ in grants}
        try:
            self._edit(target, lambda policy: prune_expired(remove_bindings(policy, ids), now), now)
            policy = self._read(target, now)
        except ProviderError as error:
            return dict.fromkeys(ids, error)
        return {request_id: read_back(policy, target, request_id) for request_id in ids}

    def held(self, resource: Resource, now: datetime) -> list[Held]:
        """jitbot's live bindings of the resource's role: one read of the policy."""
        settings = resource.settings_as(GcpSettings)
        return held_bindings(self._read(settings.resource, now), settings.resource, settings.role, now)

    def remove(self, held: Held, resource: Resource, now: datetime) -> bool:
        """The binding `held` found goes as a revoke's would: one read-modify-write, nothing written if it is gone."""
        return self._unbind(held.ref["resource"], held.ref["request_id"], now)

    def check(self, resource: Resource) -> str:
        """For `jitbot check --live`: can jitbot read the resource's policy?"""
        policy = self._read(resource.settings_as(GcpSettings).resource, datetime.now(UTC))
        return f"ok: {len(policy.get('bindings', []))} bindings"

    def _unbind(self, resource: str, request_id: str, now: datetime) -> bool:
        return self._edit(resource, lambda policy: prune_expired(remove_binding(policy, request_id), now), now)

    def _read(self, resource: str, now: datetime) -> Policy:
        """The policy at version 3: below it, conditional bindings show without their condition (and marks)."""
        return self._run("getIamPolicy", resource, GET_POLICY, now)

    def _edit(self, resource: str, edit: Callable[[Policy], Policy], now: datetime) -> bool:
        """Read, edit, write with the etag read; on a concurrent change, back off and start again from the read.
        False when the edit changed nothing (nothing was written)."""
        for attempt in range(ATTEMPTS):
            policy = self._read(resource, now)
            edited = edit(policy)
            if edited == policy:
                return False
            try:
                self._run("setIamPolicy", resource, {"policy": edited}, now)  # default updateMask: bindings, etag
                return True
            except _Conflict:
                if attempt + 1 < ATTEMPTS:
                    self._sleep(BACKOFF_BASE * 2**attempt * random.uniform(0.5, 1.0))  # jitter: writers part ways
        raise ProviderError(
            f"GCP setIamPolicy on {resource} kept conflicting with other changes to its policy "
            f"({ATTEMPTS} attempts); will try again",
            retryable=True,
        )

    def _client(self) -> Any:
        if self._service is None:
            self._credentials_in_use = self._credentials or google.auth.default(scopes=SCOPES)[0]
            options = {"api_endpoint": self.endpoint} if self.endpoint else None
            self._service = build(
                "cloudresourcemanager",
                "v3",
                http=self._http(),
                client_options=options,
                static_discovery=True,  # the discovery document ships in the package: no network to build
                cache_discovery=False,
            )
        return self._service

    def _http(self) -> AuthorizedHttp:
        """This thread's own connection: httplib2.Http is not thread-safe, and the sweeper revokes from many
        threads at once (google-api-python-client, docs/thread_safety.md: "each thread that you are making
        requests from must have its own instance of httplib2.Http()"; shared, concurrent revocations failed with
        ResponseNotReady and AttributeError). httplib2's one timeout covers connecting and each read (its default:
        60 s)."""
        http: AuthorizedHttp | None = getattr(self._per_thread, "http", None)
        if http is None:
            http = AuthorizedHttp(self._credentials_in_use, http=httplib2.Http(timeout=CONNECT_S + READ_S))
            self._per_thread.http = http
        return http

    def _run(self, method: str, resource: str, body: dict[str, Any], now: datetime) -> Policy:
        """One getIamPolicy/setIamPolicy call; SDK errors become ProviderError, a concurrent change _Conflict."""
        kind = resource_kind(resource)
        try:
            collection = getattr(self._client(), resource.partition("/")[0])()
            result: Policy = getattr(collection, method)(resource=resource, body=body).execute(http=self._http())
            return result
        except HttpError as error:
            if error.status_code in CONFLICT_STATUSES:
                raise _Conflict from None
            raise _http_error(method, resource, kind, error, now) from None
        except TransportError as error:
            raise ProviderError(
                f"GCP sign-in could not be reached: {_first_line(error)}", retryable=True, unanswered=True
            ) from None
        except GoogleAuthError as error:
            raise ProviderError(
                f"GCP credentials failed ({type(error).__name__}): {_first_line(error)}", retryable=error.retryable
            ) from None
        except (httplib2.HttpLib2Error, OSError) as error:
            raise ProviderError(
                f"GCP {method} could not be reached: {type(error).__name__}", retryable=True, unanswered=True
            ) from None


def _http_error(method: str, resource: str, kind: str, error: Any, now: datetime) -> ProviderError:
    """A message a person can act on, from an HTTP error of Cloud Resource Manager."""
    status, reason = error.status_code, error.reason
    if status == 403:
        return ProviderError(
            f"GCP refused {method} on {resource}: {reason}. The account jitbot runs as needs "
            f"resourcemanager.{kind}s.getIamPolicy and resourcemanager.{kind}s.setIamPolicy there "
            f"(e.g. {ADMIN_ROLES[kind]}), and the {kind} must exist",
            retryable=False,
        )
    if status == 404:
        return ProviderError(f"GCP has no such {kind}: {resource} ({reason})", retryable=False)
    retryable = status == 429 or status >= 500
    when = retry_after(error.resp.get("retry-after"), now) if retryable else None
    return ProviderError(
        f"GCP {method} on {resource} failed: HTTP {status}: {reason}",
        retryable=retryable,
        not_before=when,
        throttled=status == 429,
    )


def _first_line(error: Exception) -> str:
    """The readable part of a google-auth error (its other arguments hold the raw token-endpoint response)."""
    return str(error.args[0]).splitlines()[0] if error.args else type(error).__name__
