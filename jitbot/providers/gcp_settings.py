"""A GCP resource's settings: the project, folder or organization whose policy gets the binding, and its role."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar, Self

from jitbot.core.catalog_nodes import Node, patterned
from jitbot.providers.settings import ProviderSettings

GCP_RESOURCE = re.compile(r"projects/[a-z][a-z0-9-]{4,28}[a-z0-9]|folders/\d+|organizations/\d+")
GCP_BASIC_ROLES = frozenset({"roles/owner", "roles/editor", "roles/viewer"})
GCP_ROLE = re.compile(r"roles/[\w.]+|(projects|organizations)/[^/]+/roles/[\w.]+")


@dataclass(frozen=True)
class GcpSettings(ProviderSettings):
    KIND: ClassVar[str] = "gcp"
    KEYS: ClassVar[frozenset[str]] = frozenset({"resource", "role"})
    IDENTITY: ClassVar[tuple[str, ...]] = ("email",)

    resource: str  # projects/…, folders/… or organizations/…
    role: str

    @classmethod
    def parse(cls, keys: dict[str, Node]) -> Self:
        found = patterned(
            keys,
            {
                "resource": (GCP_RESOURCE, "projects/<project id>, folders/<number> or organizations/<number>"),
                "role": (GCP_ROLE, "roles/bigquery.dataViewer"),
            },
        )
        if found["role"] in GCP_BASIC_ROLES:  # Google: "You cannot use conditions when you grant legacy basic roles"
            raise keys["role"].fail(
                f"{found['role']} is a basic role, and Google refuses a condition on it: jitbot's binding ends by its"
                " condition, so it could never be granted. Use a predefined role (e.g. roles/bigquery.dataViewer) or"
                " a custom role"
            )
        return cls(found["resource"], found["role"])
