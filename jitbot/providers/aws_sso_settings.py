"""An AWS Identity Center (`mode: sso`) resource's settings: the instance, permission set and account of the
assignment, the home region, and where the person signs in."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar, Self

from jitbot.core.catalog_nodes import Node, optional_text, patterned
from jitbot.providers.settings import ProviderSettings

SSO_INSTANCE = re.compile(r"arn:aws[a-z-]*:sso:::instance/(sso)?ins-[a-zA-Z0-9-.]{16}")
SSO_PERMISSION_SET = re.compile(r"arn:aws[a-z-]*:sso:::permissionSet/(sso)?ins-[a-zA-Z0-9-.]{16}/ps-[a-zA-Z0-9-./]{16}")
ACCOUNT_ID = re.compile(r"\d{12}")
REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d")


@dataclass(frozen=True)
class SsoSettings(ProviderSettings):
    KIND: ClassVar[str] = "aws-sso"
    KEYS: ClassVar[frozenset[str]] = frozenset(
        {"mode", "instance_arn", "permission_set_arn", "account_id", "identity_store_id", "portal_url", "region"}
    )
    IDENTITY: ClassVar[tuple[str, ...]] = ("aws_sso_user_id", "email")

    instance_arn: str
    permission_set_arn: str
    account_id: str
    region: str  # Identity Center lives in one region; any other answers as if it had no instance
    identity_store_id: str | None = None  # else the instance's own, as ListInstances names it
    portal_url: str | None = None  # shown in the DM

    @classmethod
    def parse(cls, keys: dict[str, Node]) -> Self:
        account = keys.get("account_id")
        if account is not None and isinstance(account.value, int):
            raise account.fail(
                "quote the account id ('012345678901'): YAML reads a bare number and drops leading zeros"
            )
        found = patterned(
            keys,
            {
                "instance_arn": (SSO_INSTANCE, "arn:aws:sso:::instance/ssoins-1234567890abcdef"),
                "permission_set_arn": (SSO_PERMISSION_SET, "arn:aws:sso:::permissionSet/ssoins-…/ps-1234567890abcdef"),
                "account_id": (ACCOUNT_ID, "'123456789012'"),
                "region": (REGION, "eu-west-1 (Identity Center's home region)"),
            },
        )
        return cls(
            found["instance_arn"],
            found["permission_set_arn"],
            found["account_id"],
            found["region"],
            optional_text(keys, "identity_store_id"),
            optional_text(keys, "portal_url"),
        )
