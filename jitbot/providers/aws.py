"""AWS: STS AssumeRole with a session policy; early revocation by a deny on the request's role sessions
(aws_denies.py). Credentials that end by themselves by the grant's end need no deny at all.

Pure builders first (the AssumeRole parameters, until when a cut must deny), then the few network calls.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import boto3

from jitbot.core.catalog import Resource
from jitbot.core.domain import AccessRequest, session_name
from jitbot.core.durations import format_duration
from jitbot.core.errors import ProviderError
from jitbot.core.redaction import Credentials
from jitbot.providers.aws_client import Serial, call, client, in_process
from jitbot.providers.aws_denies import (
    GroupCommit,
    all_policy_names,
    denied_until,
    own_size,
    role_denies,
    room,
    session_pattern,
)
from jitbot.providers.aws_settings import AwsSettings
from jitbot.providers.base import Ending, Held, Issued, Outcome, revoke_each

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient

STS_MIN_SECONDS = 900  # STS issues credentials for at least 15 minutes; jitbot ends shorter grants itself
STS_MAX_SECONDS = 43200
# botocore sts model, AssumeRole DurationSeconds: a role session assuming a role (role chaining) gets an hour at
# most. jitbot runs as a role on ECS, EKS, Lambda and EC2; longer grants are then renewed before each hour ends.
CHAINED_MAX_SECONDS = 3600


def assume_role_seconds(request: AccessRequest, chained: bool = False) -> int:
    longest = CHAINED_MAX_SECONDS if chained else STS_MAX_SECONDS
    return min(max(math.ceil(request.duration.total_seconds()), STS_MIN_SECONDS), longest)


def is_role_session(caller_arn: str) -> bool:
    """Whether jitbot's own credentials are a role session (GetCallerIdentity): AssumeRole is then chaining."""
    return ":assumed-role/" in caller_arn


def assume_role_params(request: AccessRequest, resource: Resource, chained: bool = False) -> dict[str, Any]:
    settings = resource.settings_as(AwsSettings)
    params: dict[str, Any] = {
        "RoleArn": settings.role_arn,
        "RoleSessionName": session_name(request),
        "DurationSeconds": assume_role_seconds(request, chained),
        "SourceIdentity": request.requester,  # sticks to the session, even through role chaining
    }
    if settings.session_policy is not None:
        params["Policy"] = json.dumps(settings.session_policy, separators=(",", ":"))
    return params


def deny_until(request: AccessRequest, now: datetime) -> datetime | None:
    """Until when the request's sessions must be denied; None when its credentials end by themselves by then.

    Recorded credentials that expire no later than the grant's own end need nothing at its end. Credentials
    never recorded (an issue job killed after AssumeRole) live at most as long as AssumeRole was asked for."""
    stamp = request.grant.get("credentials_expire_at")
    if stamp is None:
        return now + timedelta(seconds=assume_role_seconds(request))
    expires = datetime.fromisoformat(stamp)
    natural = not request.ending_by and request.expires_at is not None and expires <= request.expires_at
    return None if natural or expires <= now else expires


def role_name(role_arn: str) -> str:
    return role_arn.rsplit("/", 1)[-1]


class AwsProvider:
    merges_ends = True  # a role's cuts going at once share one write (its group commit)

    def __init__(self, serial: Serial | None = None) -> None:
        """`serial`: how writers of one role take turns across processes (a Redis lock); within this process
        only, by default."""
        self._denies = GroupCommit(serial or in_process())
        self._chained: bool | None = None  # asked of STS on the first grant
        # Load the STS and IAM models into boto3's default session now: a process builds its providers
        # at start, and each job then creates its clients in ~1 ms, not ~50 ms.
        for service in ("sts", "iam"):
            boto3.client(service, region_name="us-east-1")

    def grant(self, request: AccessRequest, resource: Resource, now: datetime) -> Issued:
        region = resource.settings_as(AwsSettings).region
        sts = client("sts", region)
        params = assume_role_params(request, resource, self.chained(sts))
        response = call("AssumeRole", sts.assume_role, **params)
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

    def chained(self, sts: Any) -> bool:
        """Whether AssumeRole from jitbot's own identity is role chaining (an hour at most): asked once."""
        if self._chained is None:
            self._chained = is_role_session(call("GetCallerIdentity", sts.get_caller_identity)["Arn"])
        return self._chained

    def extend(self, request: AccessRequest, resource: Resource, now: datetime) -> Issued:
        """STS credentials cannot be extended: a new session of the same name runs to the new expiry (the deny
        that revokes matches the name, so it covers both sessions)."""
        remaining = (request.expires_at or now) - now
        return self.grant(replace(request, duration=remaining), resource, now)

    def revoke(self, request: AccessRequest, resource: Resource, now: datetime) -> None:
        """Deny the request's sessions until their credentials expire, unless they end by themselves by now;
        stale denies go in the same write. Nothing is written when nothing changes."""
        if self._queue(request, resource, now):
            self._denies.commit(_role(resource), request.id, now)

    def shared_policy(self, request: AccessRequest, resource: Resource) -> str:
        """The role's one deny policy: every early end on the role writes it."""
        return resource.settings_as(AwsSettings).role_arn

    def revoke_many(self, grants: Sequence[Ending], now: datetime) -> dict[str, Outcome]:
        """Every cut is queued first: the first revoke's group commit then writes them all in one policy write (the
        others find theirs written), and its read-back verifies them all."""
        for request, resource in grants:
            self._queue(request, resource, now)
        return revoke_each(self, grants, now)

    def _queue(self, request: AccessRequest, resource: Resource, now: datetime) -> bool:
        """The request's cut joins those waiting on its role; False when it needs none (no IAM call at all: the
        next cut on the role prunes)."""
        until = deny_until(request, now)
        if until is None:
            return False
        self._denies.queue(_role(resource), request.id, until)
        return True

    def verify_revoked(self, request: AccessRequest, resource: Resource, now: datetime) -> str:
        """Read the role's deny back: it must cover the request's sessions until their credentials expire."""
        until = deny_until(request, now)
        if until is None:  # deny_until has read the recorded expiry: by now, or by the grant's own end
            stamp = request.grant["credentials_expire_at"]
            ended = "expired" if datetime.fromisoformat(stamp) <= now else "expire with the grant"
            return f"credentials {ended} at {stamp}"
        role = _role(resource)
        seen = self._denies.read_back(role)
        denied = denied_until(seen, request.id)  # read back after the write that carried this cut, if this process's
        if denied is None or denied < until:  # else (another process cut it, or a later write dropped it): read now
            denied = denied_until(role_denies(client("iam"), role), request.id)
        if denied is None or denied < until:
            raise ProviderError(
                f"role {role}'s deny does not cover {session_pattern(request.id)} sessions until {until.isoformat()}",
                retryable=True,
            )
        return f"deny on role {role} covers {session_pattern(request.id)} sessions until {denied.isoformat()}"

    def held(self, resource: Resource, now: datetime) -> list[Held]:
        """Nothing to list: no AWS API lists the live sessions of a role. Each ends by itself when its credentials
        expire (12 h at most, 1 h when chained), and every early end is read back by `verify_revoked`."""
        return []

    def remove(self, held: Held, resource: Resource, now: datetime) -> bool:
        """Nothing to take away: `held` finds nothing, as a role session cannot be ended, only denied (`revoke`)."""
        return False

    def check(self, resource: Resource) -> str:
        """For `jitbot check --live`: who jitbot runs as, and that the role exists and allows the catalog's longest
        grant (AssumeRole refuses a DurationSeconds above the role's MaxSessionDuration)."""
        sts = client("sts", resource.settings_as(AwsSettings).region)
        caller = call("GetCallerIdentity", sts.get_caller_identity)
        iam: IAMClient = client("iam")
        role = call("GetRole", iam.get_role, RoleName=_role(resource))["Role"]
        chained = is_role_session(caller["Arn"])
        longest = min(
            math.ceil(resource.max_duration.total_seconds()), CHAINED_MAX_SECONDS if chained else STS_MAX_SECONDS
        )
        if longest > role["MaxSessionDuration"]:
            raise ProviderError(
                f"role {role['RoleName']} allows sessions of {role['MaxSessionDuration']} s, but max_duration asks "
                f"for {longest} s: raise the role's maximum session duration or lower max_duration",
                retryable=False,
            )
        names = call("ListRolePolicies", all_policy_names, iam, role["RoleName"])
        fits = room(own_size(iam, role["RoleName"], names), role_denies(iam, role["RoleName"], names))
        mode = (
            f"role chaining (jitbot runs as a role session): credentials of 1h at most, renewed by DM before each"
            f" hour ends, grants up to {format_duration(resource.max_duration)}"
            if chained
            else f"direct: one set of credentials for the whole grant, up to {format_duration(resource.max_duration)}"
        )
        return (
            f"ok: running as {caller['Arn']}; {mode}; role {role['Arn']} allows {role['MaxSessionDuration']} s"
            f" sessions; room for {fits} more early-ended sessions"
        )


def _role(resource: Resource) -> str:
    """The name of the role the resource's grants assume: its denies live on it."""
    return role_name(resource.settings_as(AwsSettings).role_arn)
