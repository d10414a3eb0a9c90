"""The provider contract: `grant(request) -> Issued`, `revoke(request)`; both safe to repeat."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from jitbot.catalog import Resource
from jitbot.domain import AccessRequest
from jitbot.redaction import Credentials


@dataclass(frozen=True)
class Issued:
    """What a grant gives: a non-secret handle kept in the store, and credentials that go to the DM only."""

    handle: dict[str, str]
    credentials: Credentials


class Provider(Protocol):
    def grant(self, request: AccessRequest, resource: Resource, now: datetime) -> Issued:
        """Issue access for `request`; raise ProviderError (retryable or not) when the cloud refuses."""
        ...

    def revoke(self, request: AccessRequest, resource: Resource, now: datetime) -> None:
        """End the access now, even if the cloud's own expiry is later; a no-op if already ended."""
        ...
