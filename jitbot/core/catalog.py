"""The catalog file `jitbot.yml` → a typed, validated Catalog; every error names the line and the key.

Each provider owns its settings (jitbot/providers/*_settings.py): the catalog reads the keys every resource has and
hands the rest to the settings type of the resource's provider.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TypeVar

from jitbot.core.catalog_nodes import (
    Node,
    boolean,
    compose,
    duration,
    id_list,
    mapping,
    optional_text,
    positive_int,
    required,
)
from jitbot.core.catalog_policy import (
    BUILTIN_DEFAULTS,
    DURATION_KEYS,
    POLICY_KEYS,
    ReasonRule,
    approval_terms,
    domains,
    duration_bounds,
    escalation_terms,
    optional_duration,
    people,
    reason_rule,
)
from jitbot.core.durations import format_duration
from jitbot.core.errors import ConfigError
from jitbot.providers.aws_settings import AwsSettings, aws_settings_type
from jitbot.providers.aws_sso_settings import SsoSettings
from jitbot.providers.azure_settings import AzureSettings
from jitbot.providers.fake_settings import FakeSettings
from jitbot.providers.gcp_settings import GcpSettings
from jitbot.providers.settings import ProviderSettings

CHANNEL_ID = re.compile(r"[CG][A-Z0-9]{2,}")
USER_ID = re.compile(r"[UW][A-Z0-9]{2,}")
RESOURCE_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,62}")

# a resource's `provider:` → the settings type it takes: AWS's `mode` picks STS or Identity Center
PROVIDERS: dict[str, Callable[[dict[str, Node]], type[ProviderSettings]]] = {
    "aws": aws_settings_type,
    "azure": lambda keys: AzureSettings,
    "gcp": lambda keys: GcpSettings,
    "fake": lambda keys: FakeSettings,
}
KINDS: tuple[type[ProviderSettings], ...] = (AwsSettings, SsoSettings, AzureSettings, GcpSettings, FakeSettings)
# what each kind of provider needs to know about the person: checked when they ask, not after approval
NEEDS_IDENTITY = {kind.KIND: kind.IDENTITY for kind in KINDS if kind.IDENTITY}
IDENTITY_KEYS = {key for kind in KINDS for key in kind.IDENTITY}
RESOURCE_KEYS = POLICY_KEYS | {"description", "provider", "approvers", "channel"}
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
Settings = TypeVar("Settings", bound=ProviderSettings)


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
    reason: ReasonRule = field(default_factory=ReasonRule)
    breakglass: bool = False
    # the provider's own settings, typed: each provider reads them through `settings_as`
    settings: ProviderSettings = field(default_factory=FakeSettings)
    requesters: tuple[str, ...] | None = None  # users (U…/W…) and user groups (S…); None: every full member
    breakglass_requesters: tuple[str, ...] | None = None  # narrows break-glass further; None: requesters alone
    identity_domains: tuple[str, ...] = ()  # an email the cloud grants to must be at one of these

    @property
    def kind(self) -> str:
        """Which provider implementation serves it: AWS's Identity Center mode is its own."""
        return self.settings.KIND

    def settings_as(self, kind: type[Settings]) -> Settings:
        """The settings as the provider serving this resource reads them. Another kind's settings mean a provider
        was handed a resource it does not serve: a wiring mistake, said plainly rather than as a missing key."""
        if not isinstance(self.settings, kind):
            raise TypeError(f"resource {self.name} is served by the {self.kind} provider, not {kind.KIND}")
        return self.settings

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


def parse_catalog(text: str, source: str = "jitbot.yml") -> Catalog:
    """Parse and validate catalog text; raise ConfigError naming the line and the key."""
    top = mapping(compose(text, source), TOP_KEYS)
    approver_channel = _channel(required(top, "approver_channel", source))
    alert = top.get("alert_channel")
    defaults = _defaults(top.get("defaults"))
    resources_node = required(top, "resources", source)
    entries = mapping(resources_node, None)
    if not entries:
        raise resources_node.fail("the catalog lists no resources")
    resources = {name: _resource(name, node, defaults, approver_channel) for name, node in entries.items()}
    admins = tuple(id_list(top["admins"], USER_ID, "a user id (U…)")) if "admins" in top else ()
    revocation = _revocation(top["revocation"]) if "revocation" in top else Revocation()
    realert = duration(top.get("breakglass_realert"), "1h")
    if any(r.breakglass for r in resources.values()) and not alert:
        raise resources_node.fail("break-glass resources need an alert_channel for their alerts and reviews")
    identities = _identities(top["identities"]) if "identities" in top else {}
    return Catalog(
        approver_channel, _channel(alert) if alert else None, admins, resources, revocation, realert, identities
    )


def _defaults(node: Node | None) -> dict[str, Node]:
    """The policy keys `defaults:` sets for every resource."""
    defaults = mapping(node, POLICY_KEYS) if node else {}
    for key in DURATION_KEYS & defaults.keys():  # read even where every resource sets its own
        duration(defaults[key], BUILTIN_DEFAULTS[key])
    return defaults


def _identities(node: Node) -> dict[str, dict[str, str]]:
    people = {}
    for user, entry in mapping(node, None).items():
        if not USER_ID.fullmatch(user):
            raise entry.fail(f"'{user}' is not a Slack user id (U…)")
        people[user] = {key: str(value.value) for key, value in mapping(entry, IDENTITY_KEYS).items()}
    return people


def _revocation(node: Node) -> Revocation:
    keys = mapping(node, REVOCATION_KEYS)
    default = Revocation()
    base = duration(keys.get("retry_base"), "10s")
    cap = duration(keys.get("retry_cap"), "5m")
    if cap < base:
        raise (keys.get("retry_cap") or node).fail("retry_cap must be at least retry_base")
    alert_after = positive_int(keys["alert_after"]) if "alert_after" in keys else default.alert_after
    return Revocation(base, cap, alert_after)


def load_catalog(path: str) -> Catalog:
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as error:
        raise ConfigError(f"cannot read the catalog {path}: {error.strerror} (set JITBOT_CONFIG)") from None
    return parse_catalog(text, source=path)


def _resource(name: str, node: Node, defaults: dict[str, Node], default_channel: str) -> Resource:
    if not RESOURCE_NAME.fullmatch(name):
        raise node.fail("a resource name is lower-case letters, digits, '.', '_' and '-' (at most 63)")
    provider, kind = _provider(node)
    keys = mapping(node, RESOURCE_KEYS | kind.KEYS)
    policy = {key: keys.get(key) or defaults.get(key) for key in POLICY_KEYS}
    bounds = duration_bounds(node, keys, policy)
    longest_at = keys.get("max_duration") or defaults.get("max_duration") or node
    _check_cloud_limit(provider, kind, bounds["max_duration"], longest_at)
    approvers, approvals, auto = approval_terms(node, keys, policy, bounds["max_duration"])
    channel = _channel(keys["channel"]) if "channel" in keys else default_channel
    description = optional_text(keys, "description") or ""
    auto_after = optional_duration(policy["auto_approve_after"])
    escalate_after, escalate_to = escalation_terms(node, policy["escalate_after"], policy["escalate_to"])
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
        auto_approve_after=auto_after,
        escalate_after=escalate_after,
        escalate_to=escalate_to,
        reason=reason_rule(policy["reason"]),
        breakglass=boolean(policy["breakglass"]) if policy["breakglass"] else False,
        settings=kind.parse(keys),
        requesters=people(policy["requesters"]),
        breakglass_requesters=people(policy["breakglass_requesters"]),
        identity_domains=domains(policy["identity_domains"]),
    )


def _provider(node: Node) -> tuple[str, type[ProviderSettings]]:
    """The resource's `provider:`, and the settings type its provider reads the resource's own keys with."""
    provider_node = mapping(node, None).get("provider")
    provider = str(provider_node.value) if provider_node else ""
    if provider not in PROVIDERS:
        raise (provider_node or node).fail(f"provider must be one of {', '.join(PROVIDERS)}, not '{provider}'")
    return provider, PROVIDERS[provider](mapping(node, None))


def _check_cloud_limit(provider: str, kind: type[ProviderSettings], longest: timedelta, where: Node) -> None:
    """A grant the cloud would not issue is refused when the catalog is read, not when it is asked for."""
    if kind.MAX_DURATION and longest > kind.MAX_DURATION:
        limit = format_duration(kind.MAX_DURATION)
        raise where.fail(f"max_duration for {provider} can be at most {limit} (the cloud's limit)")


def _channel(node: Node) -> str:
    if not CHANNEL_ID.fullmatch(str(node.value)):
        raise node.fail(f"'{node.value}' is not a Slack channel id (C… or G…; copy it from the channel's details)")
    return str(node.value)
