"""GCP IAM policy edits without calling GCP: jitbot's conditional binding (its condition, title and marks), added,
removed and pruned; what a policy shows of jitbot's bindings; and the names GCP gives resources.

The binding's condition `request.time < timestamp(...)` is GCP's own expiry, the backstop if revocation fails.
`jitbot.providers.gcp` makes the calls: a read-modify-write of the policy with these edits.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any

from jitbot.core.domain import AccessRequest
from jitbot.core.errors import ProviderError
from jitbot.providers.base import Held, Outcome

Policy = dict[str, Any]

TITLE_PREFIX = "jitbot "
POLICY_VERSION = 3  # the only version that carries conditions
EXPRESSION = re.compile(r'request\.time < timestamp\("(?P<at>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)"\)')
KINDS = {"projects": "project", "folders": "folder", "organizations": "organization"}
CONSOLE_QUERY = {"project": "project", "folder": "folder", "organization": "organizationId"}


def condition_title(request_id: str) -> str:
    return TITLE_PREFIX + request_id


def condition_description(request_id: str) -> str:
    """With the title, what marks a binding as jitbot's: prune and remove touch nothing without both."""
    return f"Just-in-time access granted by jitbot for request {request_id}; ends by itself at the time below"


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def expiry_expression(expires_at: datetime) -> str:
    return f'request.time < timestamp("{rfc3339(expires_at)}")'


def jitbot_request_id(binding: dict[str, Any]) -> str | None:
    """The request a binding was granted for, when jitbot made it; None for anyone else's binding."""
    condition = binding.get("condition") or {}
    title = str(condition.get("title", ""))
    request_id = title.removeprefix(TITLE_PREFIX)
    if title.startswith(TITLE_PREFIX) and condition.get("description") == condition_description(request_id):
        return request_id
    return None


def binding_expiry(binding: dict[str, Any]) -> datetime | None:
    """When a jitbot binding's condition stops granting; None when the expression is not jitbot's form."""
    found = EXPRESSION.fullmatch(str((binding.get("condition") or {}).get("expression", "")))
    return datetime.fromisoformat(found["at"]) if found else None


def add_binding(policy: Policy, role: str, member: str, request_id: str, expires_at: datetime) -> Policy:
    """`policy` with a binding of `role` to `member` until `expires_at`; unchanged if the request's is there."""
    bindings = policy.get("bindings", [])
    if any(jitbot_request_id(binding) == request_id for binding in bindings):
        return policy
    condition = {
        "title": condition_title(request_id),
        "description": condition_description(request_id),
        "expression": expiry_expression(expires_at),
    }
    return _with_bindings(policy, [*bindings, {"role": role, "members": [member], "condition": condition}])


def remove_binding(policy: Policy, request_id: str) -> Policy:
    """`policy` without jitbot's binding for `request_id`; unchanged (the same object) when it is not there."""
    return remove_bindings(policy, {request_id})


def remove_bindings(policy: Policy, request_ids: Collection[str]) -> Policy:
    """`policy` without jitbot's bindings for `request_ids`; unchanged (the same object) when none is there."""
    bindings = policy.get("bindings", [])
    kept = [binding for binding in bindings if jitbot_request_id(binding) not in request_ids]
    return policy if len(kept) == len(bindings) else _with_bindings(policy, kept)


def read_back(policy: Policy, resource: str, request_id: str) -> Outcome:
    """What a revocation's read-back of `resource`'s policy shows for `request_id`: gone, or still bound."""
    if any(jitbot_request_id(binding) == request_id for binding in policy.get("bindings", [])):
        still = f"GCP still shows jitbot's binding for {request_id} in {resource}'s policy"
        return ProviderError(still, retryable=True)
    return f"no jitbot binding for {request_id} in {resource}'s policy"


def prune_expired(policy: Policy, now: datetime) -> Policy:
    """`policy` without jitbot bindings whose time has passed: GCP caps conditional bindings per role and member."""
    bindings = policy.get("bindings", [])
    kept = [binding for binding in bindings if not _is_expired_jitbot_binding(binding, now)]
    return policy if len(kept) == len(bindings) else _with_bindings(policy, kept)


def held_bindings(policy: Policy, resource: str, role: str, now: datetime) -> list[Held]:
    """jitbot's bindings of `role` in `resource`'s policy whose condition still grants; one whose expiry cannot be
    read counts as held: only a binding known to have ended is left out."""
    found = []
    for binding in policy.get("bindings", []):
        request_id = jitbot_request_id(binding)
        if request_id is None or binding.get("role") != role or _is_expired_jitbot_binding(binding, now):
            continue
        expiry = binding_expiry(binding)
        until = rfc3339(expiry) if expiry else "an expiry jitbot cannot read"
        what = f"{role} for {', '.join(binding.get('members', []))} on {resource} until {until}"
        found.append(Held(frozenset({request_id}), what, {"resource": resource, "request_id": request_id}))
    return found


def _is_expired_jitbot_binding(binding: dict[str, Any], now: datetime) -> bool:
    expiry = binding_expiry(binding)
    return jitbot_request_id(binding) is not None and expiry is not None and expiry <= now


def _with_bindings(policy: Policy, bindings: list[dict[str, Any]]) -> Policy:
    """A copy of `policy` with `bindings`; version 3 when any binding has a condition, as GCP requires."""
    edited = {**policy, "bindings": bindings}
    if any("condition" in binding for binding in bindings):
        edited["version"] = POLICY_VERSION
    return edited


def resource_kind(resource: str) -> str:
    """'project', 'folder' or 'organization' for `projects/…`, `folders/…`, `organizations/…`."""
    collection, _, name = resource.partition("/")
    if collection not in KINDS or not name or "/" in name:
        raise ProviderError(
            f"GCP resource must be projects/<id>, folders/<number> or organizations/<number>, not '{resource}'",
            retryable=False,
        )
    return KINDS[collection]


def console_url(resource: str) -> str:
    kind, name = resource_kind(resource), resource.partition("/")[2]
    return f"https://console.cloud.google.com/iam-admin/iam?{CONSOLE_QUERY[kind]}={name}"


def member_for(request: AccessRequest) -> str:
    email = request.identity.get("email")
    if not email:
        raise ProviderError(
            f"GCP access needs a Google account email for {request.requester}, and none is known: "
            "add it under `identities:` in jitbot.yml or to their Slack profile",
            retryable=False,
        )
    return "user:" + email
