"""AWS early revocation: a deny on the request's role sessions, in the role's one inline policy `jitbot-deny`.

A statement per quarter hour in which cut credentials expire lists the sessions (`aws:userid` like
`*:jit-<request id>-*`), pruned once that quarter hour has passed. IAM allows a role 10,240 characters of inline
policy in all: at 19 characters a session, an otherwise empty role holds about 500 cut sessions at once. Writers of
one role take turns (a short lock per role), and a process writes every cut waiting on a role in one write (its
group commit).

Pure builders first (the deny document and its edits), then the group commit and its IAM calls.
"""

from __future__ import annotations

import json
import math
import threading
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from jitbot.core.errors import ProviderError
from jitbot.providers.aws_client import Serial, call, client

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient

DENY_POLICY = "jitbot-deny"  # the role's one policy of cut sessions
LEGACY_DENY_PREFIX = "jitbot-deny-"  # a policy per cut session, as jitbot wrote them before: pruned as they lapse
PRUNE_SLACK = timedelta(minutes=5)  # keep a deny a little past the credentials' expiry: clocks differ
BUCKET = timedelta(minutes=15)  # cut sessions are grouped by the quarter hour their credentials expire in
ROLE_INLINE_QUOTA = 10_240  # IAM: a role's inline policies together, in characters without white space
Denies = dict[int, tuple[str, ...]]  # bucket end (epoch seconds) → the session patterns denied until then


def session_pattern(request_id: str) -> str:
    """Every role session of a request, renewals included (aws:userid is `<role id>:<session name>`)."""
    return f"*:jit-{request_id}-*"


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


def is_denied(denies: Denies, request_id: str) -> bool:
    return any(session_pattern(request_id) in patterns for patterns in denies.values())


class GroupCommit:
    """The cuts waiting on each role, written by one thread of this process in one policy write; and each role's
    deny as read back right after this process's last write of it: one read verifies a whole batch."""

    def __init__(self, serial: Serial) -> None:
        """`serial`: how writers of one role take turns across processes (a Redis lock), or within this one."""
        self._serial = serial
        # cuts waiting to be written, per role: one thread of this process writes them all in one policy write
        self._pending: defaultdict[str, dict[str, datetime]] = defaultdict(dict)
        self._pending_lock = threading.Lock()
        self._read_back: dict[str, Denies] = {}
        self._writers: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)

    def queue(self, role: str, request_id: str, until: datetime) -> None:
        """The request's cut joins those waiting on its role (the later end, if it is there already)."""
        with self._pending_lock:
            cuts = self._pending[role]
            cuts[request_id] = max(until, cuts.get(request_id, until))

    def read_back(self, role: str) -> Denies:
        """The role's deny as this process last wrote and read it; empty if it has not."""
        with self._pending_lock:
            return self._read_back.get(role, {})

    def commit(self, role: str, request_id: str, now: datetime) -> None:
        """Write every cut waiting on `role`, the request's among them, unless a writer before took it along."""
        with self._writers[role]:  # group commit: whoever writes next writes every cut waiting on this role
            with self._pending_lock:
                if request_id not in self._pending[role]:
                    return  # written by the thread before, with its own
                batch = self._pending.pop(role)
            try:
                with self._serial(role):
                    iam = client("iam")
                    write_denies(iam, role, batch, now)
                    seen = role_denies(iam, role, [DENY_POLICY])  # the batch's read-back, for verify_revoked
            except (ProviderError, TimeoutError) as error:
                with self._pending_lock:  # the next writer tries them again; this one's caller retries its own
                    self._pending[role] = batch | self._pending[role]
                if isinstance(error, ProviderError):
                    raise
                raise ProviderError(f"revocations on role {role} are taking long; retrying", retryable=True) from None
            with self._pending_lock:
                self._read_back[role] = seen


def write_denies(iam: IAMClient, role: str, cuts: dict[str, datetime], now: datetime) -> None:
    """The role's deny with `cuts` added and lapsed ones pruned, in one write; none when nothing changes."""
    document = get_policy(iam, role, DENY_POLICY)
    if not document:  # the role's first cut (or its first since all lapsed): per-session denies of old go
        names = call("ListRolePolicies", all_policy_names, iam, role)
        for stale in legacy_prunable(names, now):
            call("DeleteRolePolicy", _forgiving(iam.delete_role_policy), RoleName=role, PolicyName=stale)
    current = read_denies(document)
    denies = pruned(current, now)
    for request_id, until in cuts.items():
        denies = with_cut(denies, request_id, until)
    if denies == current:
        return
    try:
        call(
            "PutRolePolicy",
            iam.put_role_policy,
            RoleName=role,
            PolicyName=DENY_POLICY,
            PolicyDocument=deny_document(denies),
        )
    except ProviderError as error:
        if error.code != "LimitExceeded":
            raise
        others = own_size(iam, role, call("ListRolePolicies", all_policy_names, iam, role))
        raise ProviderError(
            f"role {role} has no room for another deny: its own inline policies use {others} of IAM's"
            f" {ROLE_INLINE_QUOTA} characters and {sum(map(len, current.values()))} cut sessions are still"
            " denied. Move the role's own inline policies to managed policies, or spread resources over more"
            " roles; jitbot keeps retrying and prunes as credentials expire",
            retryable=True,
        ) from None


def role_denies(iam: IAMClient, role: str, names: list[str] | None = None) -> Denies:
    """The sessions denied on `role` now, by the end of the quarter hour their credentials expire in."""
    names = call("ListRolePolicies", all_policy_names, iam, role) if names is None else names
    return read_denies(get_policy(iam, role, DENY_POLICY) if DENY_POLICY in names else None)


def get_policy(iam: IAMClient, role: str, name: str) -> dict[str, Any]:
    """An inline policy's document (boto3 hands it over decoded); an empty one if another writer removed it."""
    try:
        document: Any = call("GetRolePolicy", iam.get_role_policy, RoleName=role, PolicyName=name)["PolicyDocument"]
    except ProviderError as error:
        if error.code == "NoSuchEntity":
            return {}
        raise
    return dict(json.loads(document) if isinstance(document, str) else document)


def own_size(iam: IAMClient, role: str, names: list[str]) -> int:
    """The characters the role's own inline policies take of IAM's quota (jitbot's denies left out)."""
    own = [name for name in names if name != DENY_POLICY]
    return sum(len(json.dumps(get_policy(iam, role, name), separators=(",", ":"))) for name in own)


def _forgiving(delete: Callable[..., Any]) -> Callable[..., Any]:
    """A delete of a policy already gone (NoSuchEntity) has done what it was for."""

    def delete_if_there(**params: Any) -> Any:
        try:
            return delete(**params)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "NoSuchEntity":
                raise
            return None

    return delete_if_there


def all_policy_names(iam: IAMClient, role: str) -> list[str]:
    names: list[str] = []
    for page in iam.get_paginator("list_role_policies").paginate(RoleName=role):
        names += page["PolicyNames"]
    return names
