"""An AWS resource's settings: the role STS assumes, its region, the session policy that narrows it; `mode`
picks STS (the default) or IAM Identity Center (aws_sso_settings.py)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, ClassVar, Self

from jitbot.core.catalog_nodes import Node, optional_text
from jitbot.providers.aws_sso_settings import SsoSettings
from jitbot.providers.settings import ProviderSettings

ROLE_ARN = re.compile(r"arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}")
SESSION_POLICY_LIMIT = 2048  # STS's limit on the packed inline session policy, which moto does not check


@dataclass(frozen=True)
class AwsSettings(ProviderSettings):
    KIND: ClassVar[str] = "aws"
    KEYS: ClassVar[frozenset[str]] = frozenset({"role_arn", "region", "session_policy", "mode"})
    MAX_DURATION: ClassVar[timedelta | None] = timedelta(hours=12)  # STS DurationSeconds ≤ 43,200 (and the role's)

    role_arn: str
    region: str | None = None
    session_policy: dict[str, Any] | None = None  # an IAM policy document, sent with AssumeRole

    @classmethod
    def parse(cls, keys: dict[str, Node]) -> Self:
        arn = keys.get("role_arn")
        if arn is None or not ROLE_ARN.fullmatch(str(arn.value)):
            where = arn or next(iter(keys.values()))
            raise where.fail("role_arn must be an IAM role ARN, e.g. arn:aws:iam::123456789012:role/jit-prod-db")
        policy = _session_policy(keys["session_policy"]) if "session_policy" in keys else None
        return cls(str(arn.value), optional_text(keys, "region"), policy)


def aws_settings_type(keys: dict[str, Node]) -> type[AwsSettings] | type[SsoSettings]:
    """`mode` names the AWS service that grants: STS AssumeRole unless it says sso."""
    mode = keys.get("mode")
    if mode is not None and mode.value not in ("sso", "sts"):
        raise mode.fail("mode is sts (STS AssumeRole, the default) or sso (IAM Identity Center)")
    return SsoSettings if mode is not None and mode.value == "sso" else AwsSettings


def _session_policy(node: Node) -> dict[str, Any]:
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
