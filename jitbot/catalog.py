"""The catalog file `jitbot.yml` → a typed, validated Catalog; every error names the line and the key."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import yaml

from jitbot.durations import format_duration, parse_duration
from jitbot.errors import ConfigError, JitError

CHANNEL_ID = re.compile(r"[CG][A-Z0-9]{2,}")
USER_ID = re.compile(r"[UW][A-Z0-9]{2,}")
APPROVER_ID = re.compile(r"[UWS][A-Z0-9]{2,}")
DOMAIN = re.compile(r"([a-z0-9]([a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,63}", re.IGNORECASE)
ROLE_ARN = re.compile(r"arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}")
RESOURCE_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,62}")
SESSION_POLICY_LIMIT = 2048  # STS's limit on the packed inline session policy, which moto does not check

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
PROVIDER_KEYS = {
    "aws": {"role_arn", "region", "session_policy", "mode"},
    "aws-sso": {
        "mode",
        "instance_arn",
        "permission_set_arn",
        "account_id",
        "identity_store_id",
        "portal_url",
        "region",
    },
    "azure": {"scope", "role_definition_id"},
    "gcp": {"resource", "role"},
    "fake": {"delay", "fail_when_exists", "policy"},
}
# what each kind of provider needs to know about the person: checked when they ask, not after approval
NEEDS_IDENTITY = {"aws-sso": ("aws_sso_user_id", "email"), "azure": ("azure_object_id",), "gcp": ("email",)}
IDENTITY_KEYS = {"email", "azure_object_id", "aws_sso_user_id"}
AZURE_SCOPE = re.compile(
    r"/(subscriptions/[0-9a-fA-F-]{36}(/resourceGroups/[^/]+(/providers/.+)?)?|providers/Microsoft\.Management/managementGroups/[^/]+)"
)
AZURE_ROLE = re.compile(
    r"(/subscriptions/[0-9a-fA-F-]{36})?/providers/Microsoft\.Authorization/roleDefinitions/[0-9a-fA-F-]{36}"
)
GCP_RESOURCE = re.compile(r"projects/[a-z][a-z0-9-]{4,28}[a-z0-9]|folders/\d+|organizations/\d+")
GCP_BASIC_ROLES = frozenset({"roles/owner", "roles/editor", "roles/viewer"})
GCP_ROLE = re.compile(r"roles/[\w.]+|(projects|organizations)/[^/]+/roles/[\w.]+")
SSO_INSTANCE = re.compile(r"arn:aws[a-z-]*:sso:::instance/(sso)?ins-[a-zA-Z0-9-.]{16}")
SSO_PERMISSION_SET = re.compile(r"arn:aws[a-z-]*:sso:::permissionSet/(sso)?ins-[a-zA-Z0-9-.]{16}/ps-[a-zA-Z0-9-./]{16}")
ACCOUNT_ID = re.compile(r"\d{12}")
RESOURCE_KEYS = POLICY_KEYS | {"description", "provider", "approvers", "channel"}
PROVIDER_MAX_DURATION = {"aws": timedelta(hours=12)}  # STS DurationSeconds ≤ 43,200 (and the role's own maximum)
TOP_KEYS = {
    "approver_channel",
    "alert_channel",
    "admins",
    "defaults",
    "resources",
    "revocation",
    "breakglass_realert",
    "identities",
}
REVOCATION_KEYS = {"retry_base", "retry_cap", "alert_after"}
REASON_KEYS = {"min_length", "pattern", "example"}
ESCALATE_ID = re.compile(r"[UWSCG][A-Z0-9]{2,}")  # people, user groups, or a channel
TOP_LEVEL = "(top level)"  # the path errors name for the document itself
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


@dataclass(frozen=True)
class Resource:
    name: str
    provider: str
    description: str
    approvers: tuple[str, ...]
    approvals: int
    duration: timedelta
    min_duration: timedelta
    max_duration: timedelta
    pending_timeout: timedelta
    channel: str
    auto_approve_up_to: timedelta | None = None  # approved by policy when this long or shorter
    auto_approve_after: timedelta | None = None  # approved by policy when nobody decided within this
    escalate_after: timedelta | None = None
    escalate_to: tuple[str, ...] = ()  # users (U…), user groups (S…) or one channel (C…)
    reason: ReasonRule = ReasonRule()
    breakglass: bool = False
    settings: dict[str, Any] = field(default_factory=dict)
    requesters: tuple[str, ...] | None = None  # users (U…/W…) and user groups (S…); None: every full member
    breakglass_requesters: tuple[str, ...] | None = None  # narrows break-glass further; None: requesters alone
    identity_domains: tuple[str, ...] = ()  # an email the cloud grants to must be at one of these

    @property
    def kind(self) -> str:
        """Which provider implementation serves it: AWS's Identity Center mode is its own."""
        return "aws-sso" if self.settings.get("mode") == "sso" else self.provider

    def auto_approves(self, duration: timedelta) -> bool:
        return self.auto_approve_up_to is not None and duration <= self.auto_approve_up_to


@dataclass(frozen=True)
class Revocation:
    """How a failing revocation is retried: exponential backoff from `retry_base` up to `retry_cap`, forever;
    an alert once `alert_after` attempts in a row have failed."""

    retry_base: timedelta = timedelta(seconds=10)
    retry_cap: timedelta = timedelta(minutes=5)
    alert_after: int = 3


@dataclass(frozen=True)
class Catalog:
    approver_channel: str
    alert_channel: str | None
    admins: tuple[str, ...]
    resources: dict[str, Resource]
    revocation: Revocation = Revocation()
    breakglass_realert: timedelta = timedelta(hours=1)  # an unreviewed break-glass grant is re-alerted this often
    identities: dict[str, dict[str, str]] = field(default_factory=dict)  # Slack user → cloud identity overrides

    def resource(self, name: str) -> Resource | None:
        return self.resources.get(name)


class _CatalogLoader(yaml.SafeLoader):
    """PyYAML's safe loader without implicit timestamps: a scalar that looks like a date is read as written.

    No catalog key takes a date, and the values that can look like one mean their text: an IAM policy's
    `Version: 2012-10-17` (serialised to JSON, which has no date type: a date crashed `check` and `web`),
    a description, a reason example. So a date is read as written everywhere rather than refused outside
    `session_policy`: an error would only make operators quote what YAML 1.2's core schema (§10.3, no
    timestamp type) reads as a string anyway.
    """


_CatalogLoader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


@dataclass(frozen=True)
class _Node:
    """A YAML node with the key path it sits at, so that errors can name the line and the key."""

    raw: yaml.Node | None
    path: str
    source: str

    @property
    def line(self) -> int:
        return self.raw.start_mark.line + 1 if self.raw is not None else 1

    @property
    def value(self) -> Any:
        return _CatalogLoader("").construct_document(self.raw) if self.raw is not None else None

    def fail(self, message: str) -> ConfigError:
        return ConfigError(f"{self.source} line {self.line}: {self.path}: {message}")


def parse_catalog(text: str, source: str = "jitbot.yml") -> Catalog:
    """Parse and validate catalog text; raise ConfigError naming the line and the key."""
    try:
        root = yaml.compose(text, Loader=_CatalogLoader)
    except yaml.YAMLError as error:
        raise ConfigError(f"{source}: not valid YAML: {error}") from None
    _refuse_duplicate_keys(root, TOP_LEVEL, source, set())
    top = _mapping(_Node(root, TOP_LEVEL, source), TOP_KEYS)
    approver_channel = _channel(_required(top, "approver_channel", source))
    alert = top.get("alert_channel")
    defaults_node = top.get("defaults")
    defaults = _mapping(defaults_node, POLICY_KEYS) if defaults_node else {}
    for key in DURATION_KEYS & defaults.keys():  # read even where every resource sets its own
        _duration(defaults[key], BUILTIN_DEFAULTS[key])
    resources_node = _required(top, "resources", source)
    entries = _mapping(resources_node, None)
    if not entries:
        raise resources_node.fail("the catalog lists no resources")
    resources = {name: _resource(name, node, defaults, approver_channel) for name, node in entries.items()}
    admins = tuple(_id_list(top["admins"], USER_ID, "a user id (U…)")) if "admins" in top else ()
    revocation = _revocation(top["revocation"]) if "revocation" in top else Revocation()
    realert = _duration(top.get("breakglass_realert"), "1h")
    if any(r.breakglass for r in resources.values()) and not alert:
        raise resources_node.fail("break-glass resources need an alert_channel for their alerts and reviews")
    identities = _identities(top["identities"]) if "identities" in top else {}
    return Catalog(
        approver_channel, _channel(alert) if alert else None, admins, resources, revocation, realert, identities
    )


def _refuse_duplicate_keys(node: yaml.Node | None, path: str, source: str, seen: set[int]) -> None:
    """A key given twice at any depth is an error naming both lines: YAML would keep the later one silently,
    dropping, say, the earlier resource's approvers and session policy. `seen` walks an aliased node once."""
    if node is None or id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _refuse_duplicate_keys(item, f"{path}[{index}]", source, seen)
    elif isinstance(node, yaml.MappingNode):
        first: dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:
            key, here = str(key_node.value), _child_path(path, str(key_node.value))
            if key in first:
                line = first[key].start_mark.line + 1
                raise _Node(key_node, here, source).fail(f"given twice (first at line {line}); give it once")
            first[key] = key_node
            _refuse_duplicate_keys(value_node, here, source, seen)


def _identities(node: _Node) -> dict[str, dict[str, str]]:
    people = {}
    for user, entry in _mapping(node, None).items():
        if not USER_ID.fullmatch(user):
            raise entry.fail(f"'{user}' is not a Slack user id (U…)")
        people[user] = {key: str(value.value) for key, value in _mapping(entry, IDENTITY_KEYS).items()}
    return people


def _revocation(node: _Node) -> Revocation:
    keys = _mapping(node, REVOCATION_KEYS)
    default = Revocation()
    base = _duration(keys.get("retry_base"), "10s")
    cap = _duration(keys.get("retry_cap"), "5m")
    if cap < base:
        raise (keys.get("retry_cap") or node).fail("retry_cap must be at least retry_base")
    alert_after = _positive_int(keys["alert_after"]) if "alert_after" in keys else default.alert_after
    return Revocation(base, cap, alert_after)


def load_catalog(path: str) -> Catalog:
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as error:
        raise ConfigError(f"cannot read the catalog {path}: {error.strerror} (set JITBOT_CONFIG)") from None
    return parse_catalog(text, source=path)


def _resource(name: str, node: _Node, defaults: dict[str, _Node], default_channel: str) -> Resource:
    if not RESOURCE_NAME.fullmatch(name):
        raise node.fail("a resource name is lower-case letters, digits, '.', '_' and '-' (at most 63)")
    provider_node = _mapping(node, None).get("provider")
    provider = str(provider_node.value) if provider_node else ""
    if provider not in PROVIDER_KEYS or provider == "aws-sso":
        where = provider_node or node
        known = "aws, azure, gcp, fake"
        raise where.fail(f"provider must be one of {known}, not '{provider}'")
    mode_node = _mapping(node, None).get("mode")
    if provider == "aws" and mode_node is not None:
        if mode_node.value not in ("sso", "sts"):
            raise mode_node.fail("mode is sts (STS AssumeRole, the default) or sso (IAM Identity Center)")
        provider_kind = "aws-sso" if mode_node.value == "sso" else "aws"
    else:
        provider_kind = provider
    keys = _mapping(node, RESOURCE_KEYS | PROVIDER_KEYS[provider_kind])
    policy = {key: keys.get(key) or defaults.get(key) for key in POLICY_KEYS}
    bounds = {key: _duration(policy[key], BUILTIN_DEFAULTS[key]) for key in DURATION_KEYS}
    if "duration" not in keys and ("min_duration" in keys or "max_duration" in keys):
        # an inherited default duration outside the resource's own bounds is moved inside them (DESIGN §3):
        # `defaults: {duration: 1h}` and a resource with `max_duration: 30m` asks for 30m by default
        bounds["duration"] = min(max(bounds["duration"], bounds["min_duration"]), bounds["max_duration"])
    _check_bounds(bounds, keys.get("max_duration") or keys.get("duration") or node)
    cloud_max = PROVIDER_MAX_DURATION.get(provider_kind)
    if cloud_max and bounds["max_duration"] > cloud_max:
        where = keys.get("max_duration") or defaults.get("max_duration") or node
        raise where.fail(f"max_duration for {provider} can be at most {format_duration(cloud_max)} (the cloud's limit)")
    approvers = (
        tuple(_id_list(keys["approvers"], APPROVER_ID, "a user (U…) or user-group (S…) id"))
        if "approvers" in keys
        else ()
    )
    approvals_node = policy["approvals"]
    approvals = _positive_int(approvals_node) if approvals_node else 1
    auto = _auto_approve(policy["auto_approve"], bounds["max_duration"])
    if auto != bounds["max_duration"] and not approvers:
        raise node.fail("needs approvers (user or user-group ids) unless auto_approve is true")
    channel = _channel(keys["channel"]) if "channel" in keys else default_channel
    description = str(keys["description"].value) if "description" in keys else ""
    escalate_after, escalate_to = policy["escalate_after"], policy["escalate_to"]
    if bool(escalate_after) != bool(escalate_to):
        raise (escalate_after or escalate_to or node).fail("escalate_after and escalate_to go together")
    return Resource(
        name,
        provider,
        description,
        approvers,
        approvals,
        bounds["duration"],
        bounds["min_duration"],
        bounds["max_duration"],
        bounds["pending_timeout"],
        channel,
        auto_approve_up_to=auto,
        auto_approve_after=_duration(policy["auto_approve_after"], "1s") if policy["auto_approve_after"] else None,
        escalate_after=_duration(escalate_after, "1s") if escalate_after else None,
        escalate_to=_escalation_targets(escalate_to) if escalate_to else (),
        reason=_reason_rule(policy["reason"]) if policy["reason"] else ReasonRule(),
        breakglass=_bool(policy["breakglass"]) if policy["breakglass"] else False,
        settings=_SETTINGS[provider_kind](keys),
        requesters=_people(policy["requesters"]),
        breakglass_requesters=_people(policy["breakglass_requesters"]),
        identity_domains=_domains(policy["identity_domains"]) if policy["identity_domains"] else (),
    )


def _people(node: _Node | None) -> tuple[str, ...] | None:
    """`requesters` / `breakglass_requesters`: unset means no list; an empty list would lock everyone out."""
    if node is None:
        return None
    people = tuple(_id_list(node, APPROVER_ID, "a user (U…/W…) or user-group (S…) id"))
    if not people:
        raise node.fail("lists nobody: name users or user groups, or remove the key to let every full member ask")
    return people


def _domains(node: _Node) -> tuple[str, ...]:
    domains = tuple(d.lower() for d in _id_list(node, DOMAIN, "a domain such as example.com"))
    if not domains:
        raise node.fail("lists no domain: name one, or remove the key")
    return domains


def _auto_approve(node: _Node | None, max_duration: timedelta) -> timedelta | None:
    """`true` (up to max_duration), `false`, or `{max_duration: 30m}`: auto-approval only within that bound."""
    if node is None:
        return None
    if isinstance(node.raw, yaml.MappingNode):
        keys = _mapping(node, {"max_duration"})
        if "max_duration" not in keys:
            raise node.fail("needs max_duration, e.g. auto_approve: {max_duration: 30m}")
        bound = _duration(keys["max_duration"], "1s")
        if bound > max_duration:
            raise node.fail(f"max_duration is above the resource's own maximum, {format_duration(max_duration)}")
        return bound
    return max_duration if _bool(node) else None


def _escalation_targets(node: _Node) -> tuple[str, ...]:
    targets = tuple(_id_list(node, ESCALATE_ID, "a user (U…), user-group (S…) or channel (C…) id"))
    if sum(t[0] in "CG" for t in targets) > 1:
        raise node.fail("at most one channel")
    return targets


def _reason_rule(node: _Node) -> ReasonRule:
    keys = _mapping(node, REASON_KEYS)
    min_length = _positive_int(keys["min_length"]) if "min_length" in keys else 0
    pattern = str(keys["pattern"].value) if "pattern" in keys else None
    if pattern is not None:
        try:
            re.compile(pattern)
        except re.error as error:
            raise keys["pattern"].fail(f"not a valid regular expression: {error}") from None
    example = str(keys["example"].value) if "example" in keys else None
    if example is not None and pattern is not None and not re.search(pattern, example):
        raise keys["example"].fail(f"'{example}' does not match the pattern itself")
    return ReasonRule(min_length, pattern, example)


def _check_bounds(bounds: dict[str, timedelta], where: _Node) -> None:
    low, default, high = bounds["min_duration"], bounds["duration"], bounds["max_duration"]
    if not low <= default <= high:
        raise where.fail(
            f"durations must satisfy min_duration ({format_duration(low)})"
            f" ≤ duration ({format_duration(default)}) ≤ max_duration ({format_duration(high)})"
        )


def _aws_settings(keys: dict[str, _Node]) -> dict[str, Any]:
    arn = keys.get("role_arn")
    if arn is None or not ROLE_ARN.fullmatch(str(arn.value)):
        where = arn or next(iter(keys.values()))
        raise where.fail("role_arn must be an IAM role ARN, e.g. arn:aws:iam::123456789012:role/jit-prod-db")
    settings: dict[str, Any] = {"role_arn": str(arn.value)}
    if "region" in keys:
        settings["region"] = str(keys["region"].value)
    if "session_policy" in keys:
        settings["session_policy"] = _session_policy(keys["session_policy"])
    return settings


def _session_policy(node: _Node) -> dict[str, Any]:
    """An IAM policy document, sent to STS as JSON: only what JSON can carry, within STS's packed size."""
    policy = node.value
    if not isinstance(policy, dict):
        raise node.fail("session_policy must be an IAM policy document (a mapping with Version and Statement)")
    try:
        packed = json.dumps(policy, separators=(",", ":"))
    except (TypeError, ValueError) as error:  # an explicit !!binary, !!set or !!timestamp; an alias looping back
        raise node.fail(f"session_policy must hold only JSON values (strings, numbers, lists…): {error}") from None
    if len(packed) > SESSION_POLICY_LIMIT:
        raise node.fail(f"session_policy is {len(packed)} characters packed; STS allows {SESSION_POLICY_LIMIT}")
    return policy


def _gcp_settings(keys: dict[str, _Node]) -> dict[str, Any]:
    settings = _patterned(
        keys,
        {
            "resource": (GCP_RESOURCE, "projects/<project id>, folders/<number> or organizations/<number>"),
            "role": (GCP_ROLE, "roles/bigquery.dataViewer"),
        },
    )
    if settings["role"] in GCP_BASIC_ROLES:  # Google: "You cannot use conditions when you grant legacy basic roles"
        raise keys["role"].fail(
            f"{settings['role']} is a basic role, and Google refuses a condition on it: jitbot's binding ends by its"
            " condition, so it could never be granted. Use a predefined role (e.g. roles/bigquery.dataViewer) or a"
            " custom role"
        )
    return settings


def _azure_settings(keys: dict[str, _Node]) -> dict[str, Any]:
    """PIM refuses a role definition id whose form does not match the scope's (ScopeDoesNotMatchRoleDefinition):
    under a subscription it must carry that subscription, at a management group none (terraform-provider-azurerm
    #31052/#31053, azapi #692)."""
    settings = _patterned(
        keys,
        {
            "scope": (AZURE_SCOPE, "/subscriptions/<guid>/resourceGroups/<name>"),
            "role_definition_id": (
                AZURE_ROLE,
                "/subscriptions/<guid>/providers/Microsoft.Authorization/roleDefinitions/<guid>",
            ),
        },
    )
    subscription = re.match(r"/subscriptions/[^/]+", settings["scope"], re.IGNORECASE)
    guid = settings["role_definition_id"].rsplit("/", 1)[-1]
    expected = f"{subscription[0] if subscription else ''}/providers/Microsoft.Authorization/roleDefinitions/{guid}"
    if settings["role_definition_id"].lower() != expected.lower():
        raise keys["role_definition_id"].fail(
            f"PIM accepts this role at scope {settings['scope']} only as {expected} (the form of the scope's"
            " subscription, or none at a management group)"
        )
    return settings


def _fake_settings(keys: dict[str, _Node]) -> dict[str, Any]:
    """The fake provider's knobs, for trying faults out: a delay per call, a file whose presence fails calls, and
    the policy its grants share (revoked together, as a GCP project's)."""
    settings: dict[str, Any] = {}
    if "delay" in keys:  # seconds, fractions allowed (a cloud call takes tens of milliseconds), or a duration
        delay = keys["delay"]
        plain = isinstance(delay.value, int | float) and not isinstance(delay.value, bool)
        settings["delay"] = float(delay.value) if plain else _duration(delay, "0s").total_seconds()
    if "fail_when_exists" in keys:
        settings["fail_when_exists"] = str(keys["fail_when_exists"].value)
    if "policy" in keys:  # the shared policy its revocations write, as a GCP project's: revoked together
        settings["policy"] = str(keys["policy"].value)
    return settings


def _patterned(keys: dict[str, _Node], rules: dict[str, tuple[re.Pattern[str], str]]) -> dict[str, Any]:
    """Required settings, each checked against its pattern; the error shows an example of the right form."""
    settings: dict[str, Any] = {}
    for key, (pattern, example) in rules.items():
        node = keys.get(key)
        if node is None:
            raise next(iter(keys.values())).fail(f"{key} is required here, e.g. {example}")
        if not pattern.fullmatch(str(node.value)):
            raise node.fail(f"'{node.value}' is not of the form {example}")
        settings[key] = str(node.value)
    return settings


def _sso_settings(keys: dict[str, _Node]) -> dict[str, Any]:
    account = keys.get("account_id")
    if account is not None and isinstance(account.value, int):
        raise account.fail("quote the account id ('012345678901'): YAML reads a bare number and drops leading zeros")
    settings = _patterned(
        keys,
        {
            "instance_arn": (SSO_INSTANCE, "arn:aws:sso:::instance/ssoins-1234567890abcdef"),
            "permission_set_arn": (SSO_PERMISSION_SET, "arn:aws:sso:::permissionSet/ssoins-…/ps-1234567890abcdef"),
            "account_id": (ACCOUNT_ID, "'123456789012'"),
            "region": (re.compile(r"[a-z]{2}(-[a-z]+)+-\d"), "eu-west-1 (Identity Center's home region)"),
        },
    )
    settings["mode"] = "sso"
    for optional in ("identity_store_id", "portal_url"):
        if optional in keys:
            settings[optional] = str(keys[optional].value)
    return settings


_SETTINGS: dict[str, Callable[[dict[str, _Node]], dict[str, Any]]] = {
    "aws": _aws_settings,
    "aws-sso": _sso_settings,
    "azure": lambda keys: _azure_settings(keys),
    "gcp": lambda keys: _gcp_settings(keys),
    "fake": lambda keys: _fake_settings(keys),
}


def _mapping(node: _Node | None, allowed: set[str] | None) -> dict[str, _Node]:
    """Children of a mapping node; unknown keys (when `allowed` is given) are errors."""
    assert node is not None
    if not isinstance(node.raw, yaml.MappingNode):
        raise node.fail("must be a mapping of keys to values")
    children: dict[str, _Node] = {}
    for key_node, value_node in node.raw.value:
        key = str(key_node.value)
        path = _child_path(node.path, key)
        if allowed is not None and key not in allowed:
            raise _Node(key_node, path, node.source).fail(f"unknown key (known here: {', '.join(sorted(allowed))})")
        children[key] = _Node(value_node, path, node.source)
    return children


def _child_path(parent: str, key: str) -> str:
    return key if parent == TOP_LEVEL else f"{parent}.{key}"


def _required(keys: dict[str, _Node], key: str, source: str) -> _Node:
    if key not in keys:
        raise _Node(None, key, source).fail("missing (required)")
    return keys[key]


def _duration(node: _Node | None, default: str) -> timedelta:
    try:
        return parse_duration(str(node.value) if node else default)
    except JitError as error:
        assert node is not None
        raise node.fail(str(error)) from None


def _positive_int(node: _Node) -> int:
    if isinstance(node.value, bool) or not isinstance(node.value, int) or node.value < 1:
        raise node.fail("must be a whole number of at least 1")
    return node.value


def _bool(node: _Node) -> bool:
    if not isinstance(node.value, bool):
        raise node.fail("must be true or false")
    return node.value


def _channel(node: _Node) -> str:
    if not CHANNEL_ID.fullmatch(str(node.value)):
        raise node.fail(f"'{node.value}' is not a Slack channel id (C… or G…; copy it from the channel's details)")
    return str(node.value)


def _id_list(node: _Node, pattern: re.Pattern[str], what: str) -> list[str]:
    values = node.value if isinstance(node.value, list) else None
    if values is None:
        raise node.fail(f"must be a list, each {what}")
    for value in values:
        if not pattern.fullmatch(str(value)):
            raise node.fail(f"'{value}' is not {what}")
    return [str(v) for v in values]
