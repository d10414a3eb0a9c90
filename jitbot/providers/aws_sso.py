"""AWS Identity Center (`mode: sso`): a grant is an account assignment of a permission set to the user.

Pure builders first (the assignment's parameters, the DM lines), then the few network calls. Identity Center
applies assignments asynchronously: create and delete return a request id whose status is polled until it
settles. Errors go through aws.py's `_call`.

What revocation does and does not do: deleting the assignment removes the account from the user's access
portal and stops new role credentials from being issued. Role sessions already obtained through the portal
(console sign-ins, CLI credentials) are not cut: they stay valid up to the permission set's SessionDuration.
The DM says so, with the latest time such a session can last.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import boto3

from jitbot.catalog import Resource
from jitbot.domain import AccessRequest
from jitbot.durations import format_duration
from jitbot.errors import ProviderError
from jitbot.providers.aws import _call
from jitbot.providers.base import Issued

POLL_INTERVAL = 2.0  # seconds; AWS settles most assignments within a few seconds
POLL_TIMEOUT = 60.0  # then a retryable error: the job runs again and finds the assignment, or waits more
DEFAULT_SESSION_DURATION = "PT1H"  # Identity Center's default when a permission set names none
ISO_DURATION = re.compile(r"PT(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?")
HANDLE_KEYS = {"instance_arn": "InstanceArn", "account_id": "TargetId", "permission_set_arn": "PermissionSetArn"}


def assignment_params(request: AccessRequest, resource: Resource, principal_id: str) -> dict[str, str]:
    """The assignment as AWS names it; the handle's values win, so a revoke removes what was granted even
    if the catalog has changed since."""
    params = {"TargetType": "AWS_ACCOUNT", "PrincipalType": "USER", "PrincipalId": principal_id}
    for key, name in HANDLE_KEYS.items():
        params[name] = request.grant.get(key) or str(resource.settings[key])
    return params


def session_length(iso_duration: str) -> timedelta | None:
    """Permission sets state their session duration in ISO 8601 (`PT1H`, `PT1H30M`); None if not of that form."""
    match = ISO_DURATION.fullmatch(iso_duration)
    if not match or not any(match.groups()):
        return None
    hours, minutes, seconds = (int(part or 0) for part in match.groups())
    return timedelta(hours=hours, minutes=minutes, seconds=seconds)


def access_lines(
    request: AccessRequest, resource: Resource, permission_set: dict[str, Any], principal_id: str, until: datetime
) -> dict[str, str]:
    """What the requester's DM shows: where to go and for how long; no keys, the portal issues those."""
    raw = permission_set.get("SessionDuration", DEFAULT_SESSION_DURATION)
    length = session_length(raw)
    sessions = (
        f"{(until + length).isoformat()} at the latest (a session lasts {format_duration(length)})"
        if length
        else f"up to {raw} after they were opened"
    )
    return {
        "Account": str(resource.settings["account_id"]),
        "Permission set": permission_set["Name"],
        "Identity": request.identity.get("email", principal_id),
        "Until": until.isoformat(),
        "Sessions already open last until": sessions,
        "Portal": resource.settings.get("portal_url", "your AWS access portal"),
    }


class AwsSsoProvider:
    """Grants by account assignment in IAM Identity Center; `sleep` and `poll_timeout` pace the status polls."""

    def __init__(self, sleep: Callable[[float], None] = time.sleep, poll_timeout: float = POLL_TIMEOUT) -> None:
        self.sleep = sleep
        self.poll_timeout = poll_timeout
        # as AwsProvider does: load the models at start, so each job's clients come cheap
        for service in ("sso-admin", "identitystore"):
            boto3.client(service, region_name="us-east-1")

    def grant(self, request: AccessRequest, resource: Resource, now: datetime) -> Issued:
        sso, store = _clients(resource)
        principal_id = _principal_id(request, resource, sso, store)
        params = assignment_params(request, resource, principal_id)
        handle = {"principal_id": principal_id} | {key: params[name] for key, name in HANDLE_KEYS.items()}
        if not _is_assigned(sso, params):
            created = _call("CreateAccountAssignment", sso.create_account_assignment, **params)
            status = self._settle(sso, "Creation", params["InstanceArn"], created["AccountAssignmentCreationStatus"])
            handle["creation_request_id"] = status["RequestId"]
        described = _call(
            "DescribePermissionSet",
            sso.describe_permission_set,
            InstanceArn=params["InstanceArn"],
            PermissionSetArn=params["PermissionSetArn"],
        )
        access = access_lines(request, resource, described["PermissionSet"], principal_id, now + request.duration)
        return Issued(handle, access=access)

    def extend(self, request: AccessRequest, resource: Resource, now: datetime) -> Issued:
        """An assignment has no end in AWS (jitbot removes it): the same assignment, with the DM's new end."""
        return self.grant(replace(request, duration=(request.expires_at or now) - now), resource, now)

    def revoke(self, request: AccessRequest, resource: Resource, now: datetime) -> None:
        """Delete the assignment; portal sessions already open run out on their own (see the module docstring)."""
        sso, store = _clients(resource)
        principal_id = request.grant.get("principal_id") or _principal_id(request, resource, sso, store)
        params = assignment_params(request, resource, principal_id)
        if _is_assigned(sso, params):
            deleted = _call("DeleteAccountAssignment", sso.delete_account_assignment, **params)
            self._settle(sso, "Deletion", params["InstanceArn"], deleted["AccountAssignmentDeletionStatus"])

    def check(self, resource: Resource) -> str:
        """For `jitbot check --live`: the instance is in the region, its identity store known, the permission set
        readable (the same sso-admin access a grant needs)."""
        sso, _ = _clients(resource)
        instance_arn = resource.settings["instance_arn"]
        store_id = _identity_store_id(sso, resource)
        described = _call(
            "DescribePermissionSet",
            sso.describe_permission_set,
            InstanceArn=instance_arn,
            PermissionSetArn=resource.settings["permission_set_arn"],
        )
        name = described["PermissionSet"]["Name"]
        return f"ok: permission set {name} in {instance_arn}, identity store {store_id}"

    def _settle(self, sso: Any, kind: str, instance_arn: str, status: dict[str, Any]) -> dict[str, Any]:
        """Poll an assignment's `Creation` or `Deletion` request until AWS says SUCCEEDED; FAILED carries why."""
        operation = f"DescribeAccountAssignment{kind}Status"
        describe = getattr(sso, f"describe_account_assignment_{kind.lower()}_status")
        waited = 0.0
        while status["Status"] == "IN_PROGRESS":
            if waited >= self.poll_timeout:
                raise ProviderError(
                    f"AWS Identity Center account assignment {kind.lower()} {status['RequestId']} is still in "
                    f"progress after {waited:.0f} s",
                    retryable=True,
                )
            self.sleep(POLL_INTERVAL)
            waited += POLL_INTERVAL
            answer = _call(
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
    user_id = _call("GetUserId", _user_id_by_email, store, store_id, email)
    if user_id is None:
        raise ProviderError(
            f"No Identity Center user with email {email} in identity store {store_id}: add them to Identity "
            "Center or set aws_sso_user_id under identities: in jitbot.yml",
            retryable=False,
        )
    return str(user_id)


def _clients(resource: Resource) -> tuple[Any, Any]:
    """Identity Center lives in one region, which the catalog must name; any other answers as if it had none."""
    region = resource.settings["region"]
    return boto3.client("sso-admin", region_name=region), boto3.client("identitystore", region_name=region)


def _identity_store_id(sso: Any, resource: Resource) -> str:
    """The catalog's `identity_store_id`, or else the instance's own: ListInstances names it."""
    if "identity_store_id" in resource.settings:
        return str(resource.settings["identity_store_id"])
    instance_arn = resource.settings["instance_arn"]
    store_id = _call("ListInstances", _instance_store, sso, instance_arn)
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
    return bool(_call("ListAccountAssignments", _holds, sso, params))


def _holds(sso: Any, params: dict[str, str]) -> bool:
    pages = sso.get_paginator("list_account_assignments").paginate(
        InstanceArn=params["InstanceArn"], AccountId=params["TargetId"], PermissionSetArn=params["PermissionSetArn"]
    )
    return any(
        item["PrincipalType"] == "USER" and item["PrincipalId"] == params["PrincipalId"]
        for page in pages
        for item in page["AccountAssignments"]
    )
