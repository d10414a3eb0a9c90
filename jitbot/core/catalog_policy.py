"""A resource's policy keys, which `defaults:` may set for every resource: its durations, approvals and
auto-approval, escalation, reason rule, and who may ask for it; each read from its YAML node."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

import yaml

from jitbot.core.catalog_nodes import Node, boolean, duration, id_list, mapping, optional_text, positive_int
from jitbot.core.durations import format_duration

APPROVER_ID = re.compile(r"[UWS][A-Z0-9]{2,}")
DOMAIN = re.compile(r"([a-z0-9]([a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,63}", re.IGNORECASE)

DURATION_KEYS = {"duration", "min_duration", "max_duration", "pending_timeout"}
POLICY_KEYS = DURATION_KEYS | {
    "approvals",
    "auto_approve",
    "auto_approve_after",
    "escalate_after",
    "escalate_to",
    "reason",
    "breakglass",
    "requesters",
    "breakglass_requesters",
    "identity_domains",
}
REASON_KEYS = {"min_length", "pattern", "example"}
ESCALATE_ID = re.compile(r"[UWSCG][A-Z0-9]{2,}")  # people, user groups, or a channel
BUILTIN_DEFAULTS: dict[str, str] = {
    "duration": "1h",
    "min_duration": "15m",
    "max_duration": "4h",
    "pending_timeout": "1h",
}


@dataclass(frozen=True)
class ReasonRule:
    """What a reason must look like: at least `min_length` characters, matching `pattern` (shown by `example`)."""

    min_length: int = 0
    pattern: str | None = None
    example: str | None = None


def duration_bounds(node: Node, keys: dict[str, Node], policy: dict[str, Node | None]) -> dict[str, timedelta]:
    """duration, min_duration, max_duration and pending_timeout: the resource's, else the defaults', else built in."""
    bounds = {key: duration(policy[key], BUILTIN_DEFAULTS[key]) for key in DURATION_KEYS}
    if "duration" not in keys and ("min_duration" in keys or "max_duration" in keys):
        # an inherited default duration outside the resource's own bounds is moved inside them (DESIGN §3):
        # `defaults: {duration: 1h}` and a resource with `max_duration: 30m` asks for 30m by default
        bounds["duration"] = min(max(bounds["duration"], bounds["min_duration"]), bounds["max_duration"])
    _check_bounds(bounds, keys.get("max_duration") or keys.get("duration") or node)
    return bounds


def approval_terms(
    node: Node, keys: dict[str, Node], policy: dict[str, Node | None], longest: timedelta
) -> tuple[tuple[str, ...], int, timedelta | None]:
    """Who approves, how many of them, and up to what length policy approves alone (needing no approvers)."""
    approvers = (
        tuple(id_list(keys["approvers"], APPROVER_ID, "a user (U…) or user-group (S…) id"))
        if "approvers" in keys
        else ()
    )
    approvals_node = policy["approvals"]
    approvals = positive_int(approvals_node) if approvals_node else 1
    auto = _auto_approve(policy["auto_approve"], longest)
    if auto != longest and not approvers:
        raise node.fail("needs approvers (user or user-group ids) unless auto_approve is true")
    return approvers, approvals, auto


def optional_duration(node: Node | None) -> timedelta | None:
    return duration(node, "1s") if node else None


def escalation_terms(node: Node, after: Node | None, to: Node | None) -> tuple[timedelta | None, tuple[str, ...]]:
    """escalate_after and escalate_to: both or neither."""
    if bool(after) != bool(to):
        raise (after or to or node).fail("escalate_after and escalate_to go together")
    return optional_duration(after), _escalation_targets(to) if to else ()


def people(node: Node | None) -> tuple[str, ...] | None:
    """`requesters` / `breakglass_requesters`: unset means no list; an empty list would lock everyone out."""
    if node is None:
        return None
    named = tuple(id_list(node, APPROVER_ID, "a user (U…/W…) or user-group (S…) id"))
    if not named:
        raise node.fail("lists nobody: name users or user groups, or remove the key to let every full member ask")
    return named


def domains(node: Node | None) -> tuple[str, ...]:
    if node is None:
        return ()
    named = tuple(d.lower() for d in id_list(node, DOMAIN, "a domain such as example.com"))
    if not named:
        raise node.fail("lists no domain: name one, or remove the key")
    return named


def reason_rule(node: Node | None) -> ReasonRule:
    if node is None:
        return ReasonRule()
    keys = mapping(node, REASON_KEYS)
    min_length = positive_int(keys["min_length"]) if "min_length" in keys else 0
    pattern = optional_text(keys, "pattern")
    if pattern is not None:
        try:
            re.compile(pattern)
        except re.error as error:
            raise keys["pattern"].fail(f"not a valid regular expression: {error}") from None
    example = optional_text(keys, "example")
    if example is not None and pattern is not None and not re.search(pattern, example):
        raise keys["example"].fail(f"'{example}' does not match the pattern itself")
    return ReasonRule(min_length, pattern, example)


def _auto_approve(node: Node | None, max_duration: timedelta) -> timedelta | None:
    """`true` (up to max_duration), `false`, or `{max_duration: 30m}`: auto-approval only within that bound."""
    if node is None:
        return None
    if isinstance(node.raw, yaml.MappingNode):
        keys = mapping(node, {"max_duration"})
        if "max_duration" not in keys:
            raise node.fail("needs max_duration, e.g. auto_approve: {max_duration: 30m}")
        bound = duration(keys["max_duration"], "1s")
        if bound > max_duration:
            raise node.fail(f"max_duration is above the resource's own maximum, {format_duration(max_duration)}")
        return bound
    return max_duration if boolean(node) else None


def _escalation_targets(node: Node) -> tuple[str, ...]:
    targets = tuple(id_list(node, ESCALATE_ID, "a user (U…), user-group (S…) or channel (C…) id"))
    if sum(t[0] in "CG" for t in targets) > 1:
        raise node.fail("at most one channel")
    return targets


def _check_bounds(bounds: dict[str, timedelta], where: Node) -> None:
    low, default, high = bounds["min_duration"], bounds["duration"], bounds["max_duration"]
    if not low <= default <= high:
        raise where.fail(
            f"durations must satisfy min_duration ({format_duration(low)})"
            f" ≤ duration ({format_duration(default)}) ≤ max_duration ({format_duration(high)})"
        )
