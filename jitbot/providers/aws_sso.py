"""AWS Identity Center (`mode: sso`): a grant is an account assignment of a permission set to the user.

The assignment's parameters, its ledger and the DM lines are built without calling AWS (aws_sso_assignment.py);
here are the few network calls. Identity Center applies assignments asynchronously: create and delete return a
request id whose status is polled until it settles. Errors go through aws_client.py's `call`.

Identity Center has one assignment per (user, permission set, account), whoever made it. jitbot deletes only an
assignment it created, and only when the last of its grants sharing it ends: a standing assignment it found is
never deleted, and two overlapping grants share one. Who holds what is kept in Redis (`Ledger`), changed under
a lock per assignment.

What revocation does and does not do: deleting the assignment removes the account from the user's access
portal and stops new role credentials from being issued. Role sessions already obtained through the portal
(console sign-ins, CLI credentials) are not cut: they stay valid up to the permission set's SessionDuration.
The DM says so, with the latest time such a session can last.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

import boto3

from jitbot.core.catalog import Resource
from jitbot.core.domain import AccessRequest
from jitbot.core.errors import ProviderError
from jitbot.providers.aws_client import Serial, call, client, in_process
from jitbot.providers.aws_sso_assignment import (
    HANDLE_KEYS,
    STANDING,
    Ledger,
    MemoryLedger,
    access_lines,
    assignment_key,
    assignment_params,
    held_assignment,
    revoked_state,
    target_params,
)
from jitbot.providers.aws_sso_settings import SsoSettings
from jitbot.providers.base import Ending, Held, Issued, Outcome, revoke_each

POLL_INTERVALS = (0.5, 1.0, 2.0)  # seconds between status polls, the last repeated: most settle within seconds
POLL_TIMEOUT = 60.0  # then a retryable error: the job runs again and finds the assignment, or waits more


class AwsSsoProvider:
    """Grants by account assignment in IAM Identity Center; `sleep` and `poll_timeout` pace the status polls."""

    merges_ends = False

    def __init__(
        self,
        sleep: Callable[[float], None] = time.sleep,
        poll_timeout: float = POLL_TIMEOUT,
        ledger: Ledger | None = None,
        serial: Serial | None = None,
    ) -> None:
        self.sleep = sleep
        self.poll_timeout = poll_timeout
        self.ledger: Ledger = ledger or MemoryLedger()
        self._serial = serial or in_process()
        # as AwsProvider does: load the models at start, so each job's clients come cheap
        for service in ("sso-admin", "identitystore"):
            boto3.client(service, region_name="us-east-1")

    def grant(self, request: AccessRequest, resource: Resource, now: datetime) -> Issued:
        sso, store = _clients(resource)
        principal_id = _principal_id(request, resource, sso, store)
        params = assignment_params(request, resource, principal_id)
        handle = {"principal_id": principal_id} | {key: params[name] for key, name in HANDLE_KEYS.items()}
        key = assignment_key(params)
        with self._serial(key):
            handle |= self._assign(sso, params, key, request.id)
        described = call(
            "DescribePermissionSet",
            sso.describe_permission_set,
            InstanceArn=params["InstanceArn"],
            PermissionSetArn=params["PermissionSetArn"],
        )
        access = access_lines(request, resource, described["PermissionSet"], principal_id, now + request.duration)
        return Issued(handle, access=access | ({"Note": STANDING} if "standing" in handle else {}))

    def _assign(self, sso: Any, params: dict[str, str], key: str, request_id: str) -> dict[str, str]:
        """Create the assignment, or share the one jitbot made for another grant, or note a standing one.

        jitbot's claim goes into the ledger before CreateAccountAssignment: a job that dies or times out after the
        call leaves an assignment that its retry, the revocation and the drift scan all know as jitbot's (written
        after, the retry took it for a standing one and nobody ever deleted it)."""
        held = self.ledger.shared(key)
        assigned = _is_assigned(sso, params)
        if held is not None and request_id in held[1] and (assigned or not held[0]):
            return {} if held[0] else {"standing": "1"}  # this grant again (a retried job): as recorded
        if not assigned:
            self.ledger.hold_shared(key, request_id, created=True)
            try:
                created = call("CreateAccountAssignment", sso.create_account_assignment, **params)
                creation = created["AccountAssignmentCreationStatus"]
                status = self._settle(sso, "Creation", params["InstanceArn"], creation)
            except ProviderError as error:
                if not error.retryable:  # AWS made nothing and will not: the claim goes
                    self.ledger.release_shared(key, request_id)
                raise
            return {"creation_request_id": status["RequestId"]}
        if held is not None:  # made by jitbot for a grant still running: shared
            self.ledger.hold_shared(key, request_id, created=None)
            return {} if held[0] else {"standing": "1"}
        self.ledger.hold_shared(key, request_id, created=False)
        return {"standing": "1"}

    def extend(self, request: AccessRequest, resource: Resource, now: datetime) -> Issued:
        """An assignment has no end in AWS (jitbot removes it): the same assignment, with the DM's new end."""
        return self.grant(replace(request, duration=(request.expires_at or now) - now), resource, now)

    def revoke(self, request: AccessRequest, resource: Resource, now: datetime) -> None:
        """Delete the assignment; portal sessions already open run out on their own (see the module docstring)."""
        sso, params, key = self._assignment(request, resource)
        with self._serial(key):
            # a grant from before the ledger (or never issued) decides by its own handle: did it create it
            self._let_go(sso, params, key, {request.id}, "creation_request_id" in request.grant)

    def verify_revoked(self, request: AccessRequest, resource: Resource, now: datetime) -> str:
        """The ledger has let go of the grant, and an assignment jitbot made that nothing else holds is gone from AWS.

        A grant whose ledger entry is gone decides by its handle: "standing" means it found the assignment there."""
        sso, params, key = self._assignment(request, resource)
        entry = self.ledger.shared(key)
        if entry is not None and request.id in entry[1]:
            raise ProviderError(f"jitbot's ledger still lists {request.id} as holding its assignment", retryable=True)
        state = revoked_state(entry, request.grant)
        if state is not None:
            return state
        if _is_assigned(sso, params):
            raise ProviderError(
                f"AWS Identity Center still assigns {params['PermissionSetArn']} to user {params['PrincipalId']} on "
                f"account {params['TargetId']}",
                retryable=True,
            )
        return "assignment deleted"

    def shared_policy(self, request: AccessRequest, resource: Resource) -> str:
        """The request itself: each Identity Center assignment is deleted by a request of its own, so no batch."""
        return request.id

    def revoke_many(self, grants: Sequence[Ending], now: datetime) -> dict[str, Outcome]:
        return revoke_each(self, grants, now)

    def held(self, resource: Resource, now: datetime) -> list[Held]:
        """The account assignments of the resource's permission set that the ledger says jitbot created."""
        sso, _ = _clients(resource)
        target = target_params(resource) | {"PrincipalType": "USER"}
        listed = call("ListAccountAssignments", _assignments, sso, target)
        users = [target | {"PrincipalId": item["PrincipalId"]} for item in listed if item["PrincipalType"] == "USER"]
        found = [held_assignment(params, self.ledger.shared(assignment_key(params))) for params in users]
        return [held for held in found if held is not None]

    def remove(self, held: Held, resource: Resource, now: datetime) -> bool:
        """Delete the assignment `held` found, unless a grant it did not list has taken it up since; its holders
        are let go of either way."""
        sso, _ = _clients(resource)
        params = dict(held.ref)
        key = assignment_key(params)
        with self._serial(key):
            return self._let_go(sso, params, key, set(held.holders), created=False)

    def _assignment(self, request: AccessRequest, resource: Resource) -> tuple[Any, dict[str, str], str]:
        """The sso-admin client, the request's assignment and its ledger key (the user looked up if need be)."""
        sso, store = _clients(resource)
        principal_id = request.grant.get("principal_id") or _principal_id(request, resource, sso, store)
        params = assignment_params(request, resource, principal_id)
        return sso, params, assignment_key(params)

    def _let_go(self, sso: Any, params: dict[str, str], key: str, holders: set[str], created: bool) -> bool:
        """Under the assignment's lock: delete it when jitbot created it and only `holders` hold it, then release
        them; whether it was deleted. `created` is what to assume when the ledger has no entry."""
        entry = self.ledger.shared(key)
        made, others = entry if entry is not None else (created, set())
        deleting = made and not others - holders and _is_assigned(sso, params)
        if deleting:
            deleted = call("DeleteAccountAssignment", sso.delete_account_assignment, **params)
            self._settle(sso, "Deletion", params["InstanceArn"], deleted["AccountAssignmentDeletionStatus"])
        for holder in holders:
            self.ledger.release_shared(key, holder)
        return deleting

    def check(self, resource: Resource) -> str:
        """For `jitbot check --live`: the instance is in the region, its identity store known, the permission set
        readable (the same sso-admin access a grant needs)."""
        sso, _ = _clients(resource)
        settings = resource.settings_as(SsoSettings)
        instance_arn = settings.instance_arn
        store_id = _identity_store_id(sso, resource)
        described = call(
            "DescribePermissionSet",
            sso.describe_permission_set,
            InstanceArn=instance_arn,
            PermissionSetArn=settings.permission_set_arn,
        )
        name = described["PermissionSet"]["Name"]
        return f"ok: permission set {name} in {instance_arn}, identity store {store_id}"

    def _settle(self, sso: Any, kind: str, instance_arn: str, status: dict[str, Any]) -> dict[str, Any]:
        """Poll an assignment's `Creation` or `Deletion` request until AWS says SUCCEEDED; FAILED carries why."""
        operation = f"DescribeAccountAssignment{kind}Status"
        describe = getattr(sso, f"describe_account_assignment_{kind.lower()}_status")
        waited, polls = 0.0, 0
        while status["Status"] == "IN_PROGRESS":
            if waited >= self.poll_timeout:
                raise ProviderError(
                    f"AWS Identity Center account assignment {kind.lower()} {status['RequestId']} is still in "
                    f"progress after {waited:.0f} s",
                    retryable=True,
                )
            interval = POLL_INTERVALS[min(polls, len(POLL_INTERVALS) - 1)]
            self.sleep(interval)
            waited, polls = waited + interval, polls + 1
            answer = call(
                operation,
                describe,
                InstanceArn=instance_arn,
                **{f"AccountAssignment{kind}RequestId": status["RequestId"]},
            )
            status = answer[f"AccountAssignment{kind}Status"]
        if status["Status"] == "FAILED":
            reason = status.get("FailureReason", "no reason given")
            raise ProviderError(
                f"AWS Identity Center account assignment {kind.lower()} failed: {reason}", retryable=False
            )
        return status


def _principal_id(request: AccessRequest, resource: Resource, sso: Any, store: Any) -> str:
    """The Identity Center user: named in `identities:`, or found by the email the request was made with."""
    if "aws_sso_user_id" in request.identity:
        return request.identity["aws_sso_user_id"]
    email = request.identity.get("email")
    if not email:
        raise ProviderError(
            f"No email known for <@{request.requester}>: set email or aws_sso_user_id under identities: in jitbot.yml",
            retryable=False,
        )
    store_id = _identity_store_id(sso, resource)
    user_id = call("GetUserId", _user_id_by_email, store, store_id, email)
    if user_id is None:
        raise ProviderError(
            f"No Identity Center user with email {email} in identity store {store_id}: add them to Identity "
            "Center or set aws_sso_user_id under identities: in jitbot.yml",
            retryable=False,
        )
    return str(user_id)


def _clients(resource: Resource) -> tuple[Any, Any]:
    """Identity Center lives in one region, which the catalog must name; any other answers as if it had none."""
    region = resource.settings_as(SsoSettings).region
    return client("sso-admin", region), client("identitystore", region)


def _identity_store_id(sso: Any, resource: Resource) -> str:
    """The catalog's `identity_store_id`, or else the instance's own: ListInstances names it."""
    settings = resource.settings_as(SsoSettings)
    if settings.identity_store_id is not None:
        return settings.identity_store_id
    instance_arn = settings.instance_arn
    store_id = call("ListInstances", _instance_store, sso, instance_arn)
    if store_id is None:
        raise ProviderError(
            f"No Identity Center instance {instance_arn} in region {sso.meta.region_name}: check instance_arn and "
            "region",
            retryable=False,
        )
    return str(store_id)


def _instance_store(sso: Any, instance_arn: str) -> str | None:
    for page in sso.get_paginator("list_instances").paginate():
        for instance in page["Instances"]:
            if instance["InstanceArn"] == instance_arn:
                return str(instance["IdentityStoreId"])
    return None


def _user_id_by_email(store: Any, store_id: str, email: str) -> str | None:
    """GetUserId on emails.value (AWS's advice; ListUsers' UserName filter is deprecated); None if no such user."""
    unique = {"UniqueAttribute": {"AttributePath": "emails.value", "AttributeValue": email}}
    try:
        return str(store.get_user_id(IdentityStoreId=store_id, AlternateIdentifier=unique)["UserId"])
    except store.exceptions.ResourceNotFoundException as error:
        if error.response.get("ResourceType", "USER") != "USER":  # the identity store itself is missing
            raise
        return None


def _is_assigned(sso: Any, params: dict[str, str]) -> bool:
    """Whether the user already holds this permission set on this account: what makes grant and revoke repeatable."""
    return bool(call("ListAccountAssignments", _holds, sso, params))


def _holds(sso: Any, params: dict[str, str]) -> bool:
    return any(
        item["PrincipalType"] == "USER" and item["PrincipalId"] == params["PrincipalId"]
        for item in _assignments(sso, params)
    )


def _assignments(sso: Any, params: dict[str, str]) -> list[dict[str, Any]]:
    """Every account assignment of the permission set on the account, all pages."""
    pages = sso.get_paginator("list_account_assignments").paginate(
        InstanceArn=params["InstanceArn"], AccountId=params["TargetId"], PermissionSetArn=params["PermissionSetArn"]
    )
    return [item for page in pages for item in page["AccountAssignments"]]
