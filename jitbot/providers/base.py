"""The provider contract: `grant(request) -> Issued`, `revoke(request)`, both safe to repeat; `verify_revoked`
reads back that access is gone; `revoke_many` ends grants that share a cloud policy (`shared_policy`) with the
fewest writes; `held` and `remove` let the drift scan find and take away access jitbot made that no live grant
explains."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from jitbot.core.catalog import Resource
from jitbot.core.domain import AccessRequest
from jitbot.core.errors import ProviderError
from jitbot.core.redaction import Credentials

# Every cloud SDK client waits this long for a connection and for an answer, then fails (a ProviderError that
# jitbot retries on its own schedule; the SDKs' own retries are off). Their defaults (botocore: 60 s for each of
# 3 attempts; Google: 60 s; azure-core: 300 s) let one frozen endpoint hold a sweeper thread for minutes, unalerted.
CONNECT_S = 3.05  # just past TCP's first retransmission (3 s)
READ_S = 10.0

Ending = tuple[AccessRequest, Resource]  # a grant to end, and its catalog resource
Outcome = str | ProviderError  # a grant's end as read back (for its audit record), or why it is still live


@dataclass(frozen=True)
class Issued:
    """What a grant gives: a non-secret handle kept in the store, and what the requester's DM shows.

    `credentials` are secrets (AWS STS keys) and go to the DM only. `access` describes access that lives in
    the cloud rather than in a secret (an Azure PIM assignment, a GCP binding, an Identity Center assignment):
    label → value lines for the DM, e.g. {"Role": …, "Scope": …, "Identity": …, "Console": "https://…"}.
    """

    handle: dict[str, str]
    credentials: Credentials = field(default_factory=lambda: Credentials({}))
    access: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Held:
    """Access jitbot made that the cloud holds now, as the drift scan finds it (nothing secret in it).

    `holders`: the jitbot requests it was made for (one, or several sharing an Identity Center assignment); it
    is explained while any of them is live. `what`: one line for the audit record and alerts, e.g.
    "roles/x for user:a@b on projects/p". `ref`: what `remove` needs to find it again.
    """

    holders: frozenset[str]
    what: str
    ref: dict[str, str]


class Provider(Protocol):
    # Whether revoke_many calls running at once for one shared_policy merge their writes themselves (AWS: a role's
    # group commit); where they do not, the sweeper keeps one group of a policy in flight at a time.
    merges_ends: bool

    def grant(self, request: AccessRequest, resource: Resource, now: datetime) -> Issued:
        """Issue access for `request`; raise ProviderError (retryable or not) when the cloud refuses."""
        ...

    def extend(self, request: AccessRequest, resource: Resource, now: datetime) -> Issued:
        """Bring the access up to `request.expires_at`, now later than it was; new credentials if need be."""
        ...

    def revoke(self, request: AccessRequest, resource: Resource, now: datetime) -> None:
        """End the access now, even if the cloud's own expiry is later; a no-op if already ended."""
        ...

    def check(self, resource: Resource) -> str:
        """Read-only: can jitbot act on `resource`? A short description, or ProviderError saying what is missing."""
        ...

    def verify_revoked(self, request: AccessRequest, resource: Resource, now: datetime) -> str:
        """Read back, after `revoke`, that `request`'s access is gone: what was read, for the audit record. A
        retryable ProviderError when the cloud still shows it (or cannot be read)."""
        ...

    def shared_policy(self, request: AccessRequest, resource: Resource) -> str:
        """What revoking `request` writes in the cloud (a GCP resource's policy, an AWS role's deny): grants that
        name the same are ended together by `revoke_many`. A cloud that ends each grant by its own request (Azure
        PIM, Identity Center) names the request."""
        ...

    def revoke_many(self, grants: Sequence[Ending], now: datetime) -> dict[str, Outcome]:
        """`revoke` and `verify_revoked` for grants of one `shared_policy`, with as few writes and reads as the
        cloud allows: each request id's outcome. A cloud without a shared write loops (`revoke_each`)."""
        ...

    def held(self, resource: Resource, now: datetime) -> list[Held]:
        """Read-only: the access jitbot made through `resource` (its target and role) that is live now."""
        ...

    def remove(self, held: Held, resource: Resource, now: datetime) -> bool:
        """Take away access `held` found that no live grant explains; safe to repeat. False when it was gone
        already (another writer, or a revocation between the scan's read and now): nothing to record."""
        ...


def revoke_verified(provider: Provider, request: AccessRequest, resource: Resource, now: datetime) -> str:
    """End the access, then read the cloud back: what it showed, or ProviderError while the access is there."""
    provider.revoke(request, resource, now)
    return provider.verify_revoked(request, resource, now)


def revoke_each(provider: Provider, grants: Sequence[Ending], now: datetime) -> dict[str, Outcome]:
    """`revoke_many` for a cloud where every grant is its own write: one after the other, each its own outcome."""
    outcomes: dict[str, Outcome] = {}
    for request, resource in grants:
        try:
            outcomes[request.id] = revoke_verified(provider, request, resource, now)
        except ProviderError as error:
            outcomes[request.id] = error
    return outcomes
