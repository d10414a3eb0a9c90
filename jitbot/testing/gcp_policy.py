"""Cloud IAM allow-policy semantics as the GCP stand-in applies them, apart from its HTTP side: which bindings
setIamPolicy accepts (versions, conditions, IAM's caps), how getIamPolicy shows a policy at each version, and how a
write changes the etag. Pure functions over the policy JSON; the sources are beside each rule.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import re
import secrets
from collections import Counter
from collections.abc import Iterable
from typing import Any

VERSIONS = (0, 1, 3)
# IAM "Quotas and limits" (cloud.google.com/iam/quotas), Limits, Policies and bindings: "Role bindings in a policy
# that include the same role and the same member, but different condition expressions: 20".
MAX_CONDITIONAL_PER_ROLE_AND_MEMBER = 20
# IAM Conditions overview (docs.cloud.google.com/iam/docs/conditions-overview): "You cannot use conditions when
# you grant legacy basic roles, including Owner (roles/owner), Editor (roles/editor), and Viewer (roles/viewer).
# Also, you cannot use conditions when you grant roles to all users (allUsers) or all authenticated users
# (allAuthenticatedUsers)". The same page: "The condition's title is required, but the description is optional";
# the expression is required.
BASIC_ROLES = frozenset({"roles/owner", "roles/editor", "roles/viewer"})
EVERYONE = frozenset({"allUsers", "allAuthenticatedUsers"})
# Resource Manager v3 discovery document (in googleapiclient's package), Policy.bindings: "The `bindings` in a
# `Policy` can refer to up to 1,500 principals ... Each occurrence of a principal counts towards these limits";
# "Understanding allow policies" (cloud.google.com/iam/docs/policies): principals the policy exempts from Data
# Access audit logging count too.
MAX_MEMBERS = 1500
# Not Google's published limits: IAM's "Quotas and limits" gives 100 and 256 for a *custom role's* title and
# description, and no Google page found gives any for a condition's. Kept as a cautious bound from DESIGN.md §7
# (jitbot's title is 15 characters, its description under 100), so a change that makes them long is noticed.
MAX_TITLE, MAX_DESCRIPTION = 100, 256
# CEL language definition (github.com/google/cel-spec, doc/langdef.md, Standard Definitions): timestamp(string)
# converts "according to RFC3339"; a literal that is not one makes the expression invalid, which setIamPolicy
# answers with 400 INVALID_ARGUMENT. Every timestamp literal of an expression is checked; CEL's two quote styles.
TIMESTAMP_CALL = re.compile(r"timestamp\((?P<argument>[^)]*)\)")
RFC3339 = re.compile(r"""(?P<q>["'])\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)(?P=q)""")


def new_etag() -> str:
    """Shaped like Google's: base64 of 8 bytes, the first two 0x07 0x05."""
    return base64.b64encode(b"\x07\x05" + secrets.token_bytes(6)).decode()


def has_conditions(policy: dict[str, Any]) -> bool:
    return any("condition" in binding for binding in policy.get("bindings", []))


def append_bindings(stored: dict[str, Any], bindings: Iterable[dict[str, Any]]) -> None:
    """A write by someone other than the caller: the bindings added, a new etag, version 3 once conditions are in."""
    stored["bindings"] = [*stored.get("bindings", []), *copy.deepcopy(list(bindings))]
    stored["etag"] = new_etag()
    stored["version"] = 3 if has_conditions(stored) else stored.get("version", 1)


def as_version(policy: dict[str, Any], requested: int) -> dict[str, Any]:
    """The policy as getIamPolicy shows it: below version 3, conditional bindings lose their condition and get
    a `_withcond_<hash>` role, which setIamPolicy refuses (Google's way of stopping a blind overwrite)."""
    shown = copy.deepcopy(policy)
    if not has_conditions(shown):
        shown["version"] = 1
    elif requested < 3:
        shown["version"] = 1
        for binding in shown["bindings"]:
            condition = binding.pop("condition", None)
            if condition is not None:
                digest = hashlib.sha256(json.dumps(condition, sort_keys=True).encode()).hexdigest()[:20]
                binding["role"] += f"_withcond_{digest}"
    if not shown.get("bindings"):
        shown.pop("bindings", None)  # Google omits an empty list
    return shown


def binding_problem(policy: dict[str, Any]) -> str | None:
    """Why setIamPolicy would refuse these bindings with 400, or None."""
    if policy.get("version", 1) not in VERSIONS:
        return f"Invalid policy version {policy.get('version')}; valid versions are 0, 1 and 3."
    for binding in policy.get("bindings", []):
        role, members = binding.get("role"), binding.get("members")
        if not isinstance(role, str) or not role or "_withcond_" in role:
            return f"Role {role} is not a valid role for a binding."
        if not isinstance(members, list) or not members or not all(_is_member(member) for member in members):
            return f"Invalid members {members} in the binding of {role}."
        condition = binding.get("condition")
        if condition is not None:
            problem = _condition_problem(role, members, condition)
            if problem:
                return problem
    if has_conditions(policy) and policy.get("version") != 3:
        return "Policies with conditions must be version 3; set `version: 3` and send the etag you read."
    return _cap_problem(policy)


def _is_member(member: object) -> bool:
    """`type:id` (user:, group:, serviceAccount:, domain:, principal://…), or one of the two that name everyone."""
    return isinstance(member, str) and (":" in member or member in EVERYONE)


def _condition_problem(role: str, members: list[str], condition: dict[str, Any]) -> str | None:
    title, description = str(condition.get("title", "")), str(condition.get("description", ""))
    expression = str(condition.get("expression", ""))
    if not (title and expression):
        return "A condition needs a title and an expression."
    if role in BASIC_ROLES:
        return f"Conditions are not supported for basic role {role}; grant a predefined or custom role instead."
    if EVERYONE & set(members):
        return "Conditions are not supported for allUsers or allAuthenticatedUsers."
    if len(title) > MAX_TITLE or len(description) > MAX_DESCRIPTION:
        return f"A condition's title is at most {MAX_TITLE} characters and its description {MAX_DESCRIPTION}."
    if not all(RFC3339.fullmatch(call["argument"].strip()) for call in TIMESTAMP_CALL.finditer(expression)):
        return f"Condition expression could not be parsed: {expression[:120]}"
    return None


def _cap_problem(policy: dict[str, Any]) -> str | None:
    """IAM's limits: one role for one member under at most 20 different conditions; 1,500 principals in all."""
    exempted = [
        member
        for audit in policy.get("auditConfigs", [])
        for config in audit.get("auditLogConfigs", [])
        for member in config.get("exemptedMembers", [])
    ]
    members = sum(len(binding["members"]) for binding in policy.get("bindings", [])) + len(exempted)
    if members > MAX_MEMBERS:
        return f"The policy has {members} principals; the limit is {MAX_MEMBERS}."
    conditional = Counter(
        (binding["role"], member)
        for binding in policy.get("bindings", [])
        if "condition" in binding
        for member in binding["members"]
    )
    for (role, member), count in conditional.items():
        if count > MAX_CONDITIONAL_PER_ROLE_AND_MEMBER:
            return f"The policy has {count} conditional role bindings of {role} for {member}; the limit is 20."
    return None
