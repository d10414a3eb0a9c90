"""AWS: STS AssumeRole with a session policy; early revocation by a deny on that one role session.

Pure builders first (the AssumeRole parameters, the deny document), then the few network calls.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from jitbot.catalog import Resource
from jitbot.domain import AccessRequest, session_name
from jitbot.errors import ProviderError
from jitbot.providers.base import Issued
from jitbot.redaction import Credentials

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient

STS_MIN_SECONDS = 900  # STS issues credentials for at least 15 minutes; jitbot ends shorter grants itself
STS_MAX_SECONDS = 43200
DENY_PREFIX = "jitbot-deny-"
PRUNE_SLACK = timedelta(minutes=5)  # keep a deny a little past the credentials' expiry: clocks differ
RETRYABLE_CODES = {
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
    "ServiceUnavailable",
    "InternalFailure",
    "InternalError",
    "IDPCommunicationError",
    "ConcurrentModification",
    # Identity Center: a previous write not yet propagated (AWS advises retrying with backoff), and its 5xx
    "ConflictException",
    "InternalServerException",
}


def assume_role_params(request: AccessRequest, resource: Resource) -> dict[str, Any]:
    seconds = min(max(math.ceil(request.duration.total_seconds()), STS_MIN_SECONDS), STS_MAX_SECONDS)
    params: dict[str, Any] = {
        "RoleArn": resource.settings["role_arn"],
        "RoleSessionName": session_name(request),
        "DurationSeconds": seconds,
        "SourceIdentity": request.requester,  # sticks to the session, even through role chaining
    }
    if "session_policy" in resource.settings:
        params["Policy"] = json.dumps(resource.settings["session_policy"], separators=(",", ":"))
    return params


def deny_policy_name(request: AccessRequest, credentials_expire_at: datetime) -> str:
    return f"{DENY_PREFIX}{request.id}-{int(credentials_expire_at.timestamp())}"


def deny_document(request: AccessRequest) -> str:
    """Deny everything to this one role session (aws:userid is `<role id>:<session name>`)."""
    statement = {
        "Sid": "JitbotRevokedSession",
        "Effect": "Deny",
        "Action": "*",
        "Resource": "*",
        "Condition": {"StringLike": {"aws:userid": f"*:{session_name(request)}"}},
    }
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]}, separators=(",", ":"))


def prunable(policy_names: list[str], now: datetime) -> list[str]:
    """Deny policies whose session's credentials have expired by themselves."""
    stale = []
    for name in policy_names:
        stamp = name.rsplit("-", 1)[-1]
        if name.startswith(DENY_PREFIX) and stamp.isdigit() and int(stamp) < (now - PRUNE_SLACK).timestamp():
            stale.append(name)
    return stale


def role_name(role_arn: str) -> str:
    return role_arn.rsplit("/", 1)[-1]


def credentials_expiry(request: AccessRequest, now: datetime) -> datetime:
    """When the session's credentials die on their own (the handle's, or the worst case STS allows)."""
    stamp = request.grant.get("credentials_expire_at")
    return datetime.fromisoformat(stamp) if stamp else now + timedelta(seconds=STS_MAX_SECONDS)


class AwsProvider:
    def __init__(self) -> None:
        # Load the STS and IAM models into boto3's default session now: a process builds its providers
        # at start, and each job then creates its clients in ~1 ms, not ~50 ms.
        for service in ("sts", "iam"):
            boto3.client(service, region_name="us-east-1")

    def grant(self, request: AccessRequest, resource: Resource, now: datetime) -> Issued:
        region = resource.settings.get("region")
        sts = boto3.client("sts", region_name=region)
        response = _call("AssumeRole", sts.assume_role, **assume_role_params(request, resource))
        issued = response["Credentials"]
        fields = {
            "AWS_ACCESS_KEY_ID": issued["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": issued["SecretAccessKey"],
            "AWS_SESSION_TOKEN": issued["SessionToken"],
        }
        if region:
            fields["AWS_REGION"] = region
        handle = {
            "session_name": session_name(request),
            "assumed_role_id": response["AssumedRoleUser"]["AssumedRoleId"],
            "credentials_expire_at": issued["Expiration"].isoformat(),
        }
        return Issued(handle, Credentials(fields))

    def extend(self, request: AccessRequest, resource: Resource, now: datetime) -> Issued:
        """STS credentials cannot be extended: a new session of the same name runs to the new expiry (the deny
        that revokes matches the name, so it covers both sessions)."""
        remaining = (request.expires_at or now) - now
        return self.grant(replace(request, duration=remaining), resource, now)

    def revoke(self, request: AccessRequest, resource: Resource, now: datetime) -> None:
        iam: IAMClient = boto3.client("iam")
        role = role_name(resource.settings["role_arn"])
        # prune first: a role's inline policies share a 10,240-character quota, and a role full of stale
        # denies must not block the deny that matters now
        names = _call("ListRolePolicies", _all_policy_names, iam, role)
        for stale in prunable(names, now):
            _call("DeleteRolePolicy", iam.delete_role_policy, RoleName=role, PolicyName=stale)
        expires = credentials_expiry(request, now)
        if expires > now - PRUNE_SLACK:
            name, document = deny_policy_name(request, expires), deny_document(request)
            _call("PutRolePolicy", iam.put_role_policy, RoleName=role, PolicyName=name, PolicyDocument=document)

    def check(self, resource: Resource) -> str:
        """For `jitbot check --live`: who jitbot runs as, and that the role exists and allows the catalog's longest
        grant (AssumeRole refuses a DurationSeconds above the role's MaxSessionDuration)."""
        sts = boto3.client("sts", region_name=resource.settings.get("region"))
        caller = _call("GetCallerIdentity", sts.get_caller_identity)
        iam: IAMClient = boto3.client("iam")
        role = _call("GetRole", iam.get_role, RoleName=role_name(resource.settings["role_arn"]))["Role"]
        longest = min(math.ceil(resource.max_duration.total_seconds()), STS_MAX_SECONDS)
        if longest > role["MaxSessionDuration"]:
            raise ProviderError(
                f"role {role['RoleName']} allows sessions of {role['MaxSessionDuration']} s, but max_duration asks "
                f"for {longest} s: raise the role's maximum session duration or lower max_duration",
                retryable=False,
            )
        return f"ok: running as {caller['Arn']}; role {role['Arn']} allows {role['MaxSessionDuration']} s sessions"


def _all_policy_names(iam: IAMClient, role: str) -> list[str]:
    names: list[str] = []
    for page in iam.get_paginator("list_role_policies").paginate(RoleName=role):
        names += page["PolicyNames"]
    return names


def _call(operation: str, call: Any, *args: Any, **kwargs: Any) -> Any:
    """Run one AWS call; turn SDK errors into ProviderError with a message a person can act on."""
    try:
        return call(*args, **kwargs)
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "Unknown")
        message = error.response.get("Error", {}).get("Message", "")
        raise ProviderError(f"AWS {operation} failed: {code}: {message}", retryable=code in RETRYABLE_CODES) from None
    except BotoCoreError as error:
        raise ProviderError(f"AWS {operation} could not be reached: {type(error).__name__}", retryable=True) from None
