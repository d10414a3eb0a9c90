"""AWS: STS AssumeRole with a session policy; early revocation by a deny on the request's role sessions.

The denies of one role live in one inline policy, `jitbot-deny`: a statement per quarter hour in which cut
credentials expire, listing the sessions (`aws:userid` like `*:jit-<request id>-*`), pruned once that quarter
hour has passed. IAM allows a role 10,240 characters of inline policy in all: at 19 characters a session, an
otherwise empty role holds about 500 cut sessions at once. Credentials that end by themselves by the grant's
end need no deny at all. Writers of one role take turns (a short lock per role).

Pure builders first (the AssumeRole parameters, the deny document), then the few network calls.
"""

from __future__ import annotations

import json
import math
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from jitbot.catalog import Resource
from jitbot.domain import AccessRequest, session_name
from jitbot.durations import format_duration
from jitbot.errors import ProviderError
from jitbot.providers.base import CONNECT_S, READ_S, Ending, Held, Issued, Outcome, revoke_each
from jitbot.redaction import Credentials

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient

STS_MIN_SECONDS = 900  # STS issues credentials for at least 15 minutes; jitbot ends shorter grants itself
STS_MAX_SECONDS = 43200
# botocore sts model, AssumeRole DurationSeconds: a role session assuming a role (role chaining) gets an hour at
# most. jitbot runs as a role on ECS, EKS, Lambda and EC2; longer grants are then renewed before each hour ends.
CHAINED_MAX_SECONDS = 3600
DENY_POLICY = "jitbot-deny"  # the role's one policy of cut sessions
LEGACY_DENY_PREFIX = "jitbot-deny-"  # a policy per cut session, as jitbot wrote them before: pruned as they lapse
PRUNE_SLACK = timedelta(minutes=5)  # keep a deny a little past the credentials' expiry: clocks differ
BUCKET = timedelta(minutes=15)  # cut sessions are grouped by the quarter hour their credentials expire in
ROLE_INLINE_QUOTA = 10_240  # IAM: a role's inline policies together, in characters without white space
Denies = dict[int, tuple[str, ...]]  # bucket end (epoch seconds) → the session patterns denied until then
Serial = Callable[[str], AbstractContextManager[None]]  # a role name → its writers take turns inside
RETRYABLE_CODES = {
    "ServiceUnavailable",
    "InternalFailure",
    "InternalError",
    "IDPCommunicationError",
    "ConcurrentModification",
    # Identity Center: a previous write not yet propagated (AWS advises retrying with backoff), and its 5xx
    "ConflictException",
    "InternalServerException",
}
# Retryable too, and not a fault: AWS asks for fewer calls (botocore's standard retry mode counts these among its
# throttling codes: botocore/retries/standard.py, ThrottledRetryableChecker).
THROTTLING_CODES = {"Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException"}


def assume_role_seconds(request: AccessRequest, chained: bool = False) -> int:
    longest = CHAINED_MAX_SECONDS if chained else STS_MAX_SECONDS
    return min(max(math.ceil(request.duration.total_seconds()), STS_MIN_SECONDS), longest)


def is_role_session(caller_arn: str) -> bool:
    """Whether jitbot's own credentials are a role session (GetCallerIdentity): AssumeRole is then chaining."""
    return ":assumed-role/" in caller_arn


def assume_role_params(request: AccessRequest, resource: Resource, chained: bool = False) -> dict[str, Any]:
    params: dict[str, Any] = {
        "RoleArn": resource.settings["role_arn"],
        "RoleSessionName": session_name(request),
        "DurationSeconds": assume_role_seconds(request, chained),
        "SourceIdentity": request.requester,  # sticks to the session, even through role chaining
    }
    if "session_policy" in resource.settings:
        params["Policy"] = json.dumps(resource.settings["session_policy"], separators=(",", ":"))
    return params


def session_pattern(request_id: str) -> str:
    """Every role session of a request, renewals included (aws:userid is `<role id>:<session name>`)."""
    return f"*:jit-{request_id}-*"


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


def denied_until(denies: Denies, request_id: str) -> datetime | None:
    """The end of the latest quarter hour in which the request's sessions are denied; None if they are not."""
    ends = [end for end, patterns in denies.items() if session_pattern(request_id) in patterns]
    return datetime.fromtimestamp(max(ends), UTC) if ends else None


def read_denies(document: dict[str, Any] | None) -> Denies:
    denies: Denies = {}
    for statement in (document or {}).get("Statement", []):
        until = str(statement.get("Sid", "")).removeprefix("JitbotUntil")
        patterns = statement.get("Condition", {}).get("StringLike", {}).get("aws:userid", [])
        if until.isdigit():
            denies[int(until)] = tuple([patterns] if isinstance(patterns, str) else patterns)
    return denies


def with_cut(denies: Denies, request_id: str, until: datetime) -> Denies:
    """`denies` with the request's sessions denied until at least `until` (in the quarter hour that holds it)."""
    bucket = math.ceil(until.timestamp() / BUCKET.total_seconds()) * int(BUCKET.total_seconds())
    pattern = session_pattern(request_id)
    if any(pattern in patterns for end, patterns in denies.items() if end >= bucket):
        return denies
    kept = {end: tuple(p for p in patterns if p != pattern) for end, patterns in denies.items()}
    kept[bucket] = (*kept.get(bucket, ()), pattern)
    return {end: patterns for end, patterns in kept.items() if patterns}


def pruned(denies: Denies, now: datetime) -> Denies:
    """The denies whose credentials may still be alive."""
    return {end: patterns for end, patterns in denies.items() if end >= (now - PRUNE_SLACK).timestamp()}


def deny_document(denies: Denies) -> str:
    """Deny everything to the listed sessions, a statement per quarter hour; compact, as IAM counts it."""
    statements = [
        {
            "Sid": f"JitbotUntil{end}",
            "Effect": "Deny",
            "Action": "*",
            "Resource": "*",
            "Condition": {"StringLike": {"aws:userid": sorted(patterns)}},
        }
        for end, patterns in sorted(denies.items())
    ]
    return json.dumps({"Version": "2012-10-17", "Statement": statements}, separators=(",", ":"))


def legacy_prunable(policy_names: list[str], now: datetime) -> list[str]:
    """Per-session deny policies of earlier versions whose credentials have expired by themselves."""
    stale = []
    for name in policy_names:
        stamp = name.rsplit("-", 1)[-1]
        legacy = name.startswith(LEGACY_DENY_PREFIX) and stamp.isdigit()
        if legacy and int(stamp) < (now - PRUNE_SLACK).timestamp():
            stale.append(name)
    return stale


def room(others: int, denies: Denies) -> int:
    """How many more cut sessions fit beside the role's own inline policies (`others` characters)."""
    used = others + len(deny_document(denies or {0: ()}))  # an empty role still pays for one statement
    return max(0, (ROLE_INLINE_QUOTA - used) // (len(session_pattern("r-xxxxxx")) + 3))


# one attempt each, bounded in time: a throttled or frozen call is jitbot's to retry, with its own backoff and alert.
# The mode is pinned: under AWS_RETRY_MODE=adaptive (or retry_mode in ~/.aws/config) botocore's client-side rate
# limiter would sleep in the worker before each send on a client that has seen a Throttling, one attempt or not.
CLIENT_CONFIG = Config(
    connect_timeout=CONNECT_S, read_timeout=READ_S, retries={"mode": "standard", "total_max_attempts": 1}
)


def client(service: str, region: str | None = None) -> Any:
    """A boto3 client of `service` with jitbot's timeouts and no retries of its own."""
    make: Any = boto3.client  # its stubs type a client per literal service name
    return make(service, region_name=region, config=CLIENT_CONFIG)


def role_name(role_arn: str) -> str:
    return role_arn.rsplit("/", 1)[-1]


class AwsProvider:
    merges_ends = True  # a role's cuts going at once share one write (its group commit)

    def __init__(self, serial: Serial | None = None) -> None:
        """`serial`: how writers of one role take turns across processes (a Redis lock); within this process
        only, by default."""
        self._serial = serial or _in_process()
        self._chained: bool | None = None  # asked of STS on the first grant
        # cuts waiting to be written, per role: one thread of this process writes them all in one policy write
        self._pending: defaultdict[str, dict[str, datetime]] = defaultdict(dict)
        self._pending_lock = threading.Lock()
        # each role's deny as read back right after this process's last write of it: one read for a whole batch
        self._read_back: dict[str, Denies] = {}
        self._writers: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)
        # Load the STS and IAM models into boto3's default session now: a process builds its providers
        # at start, and each job then creates its clients in ~1 ms, not ~50 ms.
        for service in ("sts", "iam"):
            boto3.client(service, region_name="us-east-1")

    def grant(self, request: AccessRequest, resource: Resource, now: datetime) -> Issued:
        region = resource.settings.get("region")
        sts = client("sts", region)
        params = assume_role_params(request, resource, self.chained(sts))
        response = _call("AssumeRole", sts.assume_role, **params)
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
            self._chained = is_role_session(_call("GetCallerIdentity", sts.get_caller_identity)["Arn"])
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
            self._commit(role_name(resource.settings["role_arn"]), request.id, now)

    def shared_policy(self, request: AccessRequest, resource: Resource) -> str:
        """The role's one deny policy: every early end on the role writes it."""
        return str(resource.settings["role_arn"])

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
        with self._pending_lock:
            cuts = self._pending[role_name(resource.settings["role_arn"])]
            cuts[request.id] = max(until, cuts.get(request.id, until))
        return True

    def _commit(self, role: str, request_id: str, now: datetime) -> None:
        with self._writers[role]:  # group commit: whoever writes next writes every cut waiting on this role
            with self._pending_lock:
                if request_id not in self._pending[role]:
                    return  # written by the thread before, with its own
                batch = self._pending.pop(role)
            try:
                with self._serial(role):
                    iam = client("iam")
                    self._write_denies(iam, role, batch, now)
                    seen = role_denies(iam, role, [DENY_POLICY])  # the batch's read-back, for verify_revoked
            except (ProviderError, TimeoutError) as error:
                with self._pending_lock:  # the next writer tries them again; this one's caller retries its own
                    self._pending[role] = batch | self._pending[role]
                if isinstance(error, ProviderError):
                    raise
                raise ProviderError(f"revocations on role {role} are taking long; retrying", retryable=True) from None
            with self._pending_lock:
                self._read_back[role] = seen

    def _write_denies(self, iam: IAMClient, role: str, cuts: dict[str, datetime], now: datetime) -> None:
        document = _get_policy(iam, role, DENY_POLICY)
        if not document:  # the role's first cut (or its first since all lapsed): per-session denies of old go
            names = _call("ListRolePolicies", _all_policy_names, iam, role)
            for stale in legacy_prunable(names, now):
                _call("DeleteRolePolicy", _forgiving(iam.delete_role_policy), RoleName=role, PolicyName=stale)
        current = read_denies(document)
        denies = pruned(current, now)
        for request_id, until in cuts.items():
            denies = with_cut(denies, request_id, until)
        if denies == current:
            return
        try:
            _call(
                "PutRolePolicy",
                iam.put_role_policy,
                RoleName=role,
                PolicyName=DENY_POLICY,
                PolicyDocument=deny_document(denies),
            )
        except ProviderError as error:
            if error.code != "LimitExceeded":
                raise
            others = _own_size(iam, role, _call("ListRolePolicies", _all_policy_names, iam, role))
            raise ProviderError(
                f"role {role} has no room for another deny: its own inline policies use {others} of IAM's"
                f" {ROLE_INLINE_QUOTA} characters and {sum(map(len, current.values()))} cut sessions are still"
                " denied. Move the role's own inline policies to managed policies, or spread resources over more"
                " roles; jitbot keeps retrying and prunes as credentials expire",
                retryable=True,
            ) from None

    def verify_revoked(self, request: AccessRequest, resource: Resource, now: datetime) -> str:
        """Read the role's deny back: it must cover the request's sessions until their credentials expire."""
        until = deny_until(request, now)
        if until is None:  # deny_until has read the recorded expiry: by now, or by the grant's own end
            stamp = request.grant["credentials_expire_at"]
            ended = "expired" if datetime.fromisoformat(stamp) <= now else "expire with the grant"
            return f"credentials {ended} at {stamp}"
        role = role_name(resource.settings["role_arn"])
        with self._pending_lock:
            seen = self._read_back.get(role, {})
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
        sts = client("sts", resource.settings.get("region"))
        caller = _call("GetCallerIdentity", sts.get_caller_identity)
        iam: IAMClient = client("iam")
        role = _call("GetRole", iam.get_role, RoleName=role_name(resource.settings["role_arn"]))["Role"]
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
        names = _call("ListRolePolicies", _all_policy_names, iam, role["RoleName"])
        fits = room(_own_size(iam, role["RoleName"], names), role_denies(iam, role["RoleName"], names))
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


def role_denies(iam: IAMClient, role: str, names: list[str] | None = None) -> Denies:
    """The sessions denied on `role` now, by the end of the quarter hour their credentials expire in."""
    names = _call("ListRolePolicies", _all_policy_names, iam, role) if names is None else names
    return read_denies(_get_policy(iam, role, DENY_POLICY) if DENY_POLICY in names else None)


def is_denied(denies: Denies, request_id: str) -> bool:
    return any(session_pattern(request_id) in patterns for patterns in denies.values())


def _in_process() -> Serial:
    locks: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)

    @contextmanager
    def serial(role: str) -> Iterator[None]:
        with locks[role]:
            yield

    return serial


def _get_policy(iam: IAMClient, role: str, name: str) -> dict[str, Any]:
    """An inline policy's document (boto3 hands it over decoded); an empty one if another writer removed it."""
    try:
        document: Any = _call("GetRolePolicy", iam.get_role_policy, RoleName=role, PolicyName=name)["PolicyDocument"]
    except ProviderError as error:
        if error.code == "NoSuchEntity":
            return {}
        raise
    return dict(json.loads(document) if isinstance(document, str) else document)


def _own_size(iam: IAMClient, role: str, names: list[str]) -> int:
    """The characters the role's own inline policies take of IAM's quota (jitbot's denies left out)."""
    own = [name for name in names if name != DENY_POLICY]
    return sum(len(json.dumps(_get_policy(iam, role, name), separators=(",", ":"))) for name in own)


def _forgiving(delete: Callable[..., Any]) -> Callable[..., Any]:
    """A delete of a policy already gone (NoSuchEntity) has done what it was for."""

    def call(**params: Any) -> Any:
        try:
            return delete(**params)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "NoSuchEntity":
                raise
            return None

    return call


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
        failed = ProviderError(
            f"AWS {operation} failed: {code}: {message}",
            retryable=code in RETRYABLE_CODES | THROTTLING_CODES,
            throttled=code in THROTTLING_CODES,
        )
        failed.code = code
        raise failed from None
    except (EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError, ConnectionClosedError) as error:
        raise ProviderError(
            f"AWS {operation} could not be reached: {type(error).__name__}", retryable=True, unanswered=True
        ) from None
    except BotoCoreError as error:
        raise ProviderError(f"AWS {operation} failed in the SDK: {type(error).__name__}", retryable=True) from None
