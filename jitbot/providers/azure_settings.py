"""An Azure resource's settings: the scope PIM assigns at and the role definition it assigns."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar, Self

from jitbot.core.catalog_nodes import Node, patterned
from jitbot.providers.settings import ProviderSettings

AZURE_SCOPE = re.compile(
    r"/(subscriptions/[0-9a-fA-F-]{36}(/resourceGroups/[^/]+(/providers/.+)?)?|providers/Microsoft\.Management/managementGroups/[^/]+)"
)
AZURE_ROLE = re.compile(
    r"(/subscriptions/[0-9a-fA-F-]{36})?/providers/Microsoft\.Authorization/roleDefinitions/[0-9a-fA-F-]{36}"
)


@dataclass(frozen=True)
class AzureSettings(ProviderSettings):
    KIND: ClassVar[str] = "azure"
    KEYS: ClassVar[frozenset[str]] = frozenset({"scope", "role_definition_id"})
    IDENTITY: ClassVar[tuple[str, ...]] = ("azure_object_id",)

    scope: str
    role_definition_id: str

    @classmethod
    def parse(cls, keys: dict[str, Node]) -> Self:
        """PIM refuses a role definition id whose form does not match the scope's (ScopeDoesNotMatchRoleDefinition):
        under a subscription it must carry that subscription, at a management group none (terraform-provider-azurerm
        #31052/#31053, azapi #692)."""
        found = patterned(
            keys,
            {
                "scope": (AZURE_SCOPE, "/subscriptions/<guid>/resourceGroups/<name>"),
                "role_definition_id": (
                    AZURE_ROLE,
                    "/subscriptions/<guid>/providers/Microsoft.Authorization/roleDefinitions/<guid>",
                ),
            },
        )
        scope, role = found["scope"], found["role_definition_id"]
        subscription = re.match(r"/subscriptions/[^/]+", scope, re.IGNORECASE)
        guid = role.rsplit("/", 1)[-1]
        expected = f"{subscription[0] if subscription else ''}/providers/Microsoft.Authorization/roleDefinitions/{guid}"
        if role.lower() != expected.lower():
            raise keys["role_definition_id"].fail(
                f"PIM accepts this role at scope {scope} only as {expected} (the form of the scope's"
                " subscription, or none at a management group)"
            )
        return cls(scope, role)
