"""`jitbot check`: the catalog validated offline (parsing does that, naming line and key), each resource's terms
and the clouds' own limits that shape its grants, and with `--live` each provider asked whether it can act (and
Slack whether it is ready: jitbot.slack.workspace)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from jitbot.core.catalog import Catalog, Resource
from jitbot.core.durations import format_duration
from jitbot.core.errors import ProviderError
from jitbot.providers.base import Provider

# the shortest access each cloud issues; jitbot ends shorter grants itself, at their end
CLOUD_MINIMUM = {"aws": timedelta(minutes=15), "azure": timedelta(minutes=5)}


@dataclass(frozen=True)
class Row:
    resource: str
    kind: str
    terms: str
    live: str
    ok: bool


def cloud_notes(resource: Resource) -> list[str]:
    """What the cloud's limits mean for this resource's grants (not errors: jitbot handles them)."""
    minimum = CLOUD_MINIMUM.get(resource.kind)
    if minimum and resource.min_duration < minimum:
        return [
            f"grants under {format_duration(minimum)}: {resource.kind} issues {format_duration(minimum)},"
            " jitbot revokes at the grant's end"
        ]
    return []


def check(catalog: Catalog, providers: Callable[[str], Provider] | None) -> list[Row]:
    """One row per resource; with `providers`, each is asked (read-only) whether it can act on the resource."""
    rows = []
    for resource in catalog.resources.values():
        terms = f"{format_duration(resource.min_duration)} to {format_duration(resource.max_duration)}"
        terms = "; ".join([terms, *cloud_notes(resource)])
        live, ok = "not checked (--live)", True
        if providers is not None:
            try:
                live = providers(resource.kind).check(resource)
            except ProviderError as error:
                live, ok = f"FAILED: {error}", False
        rows.append(Row(resource.name, resource.kind, terms, live, ok))
    return rows


def render(rows: list[Row]) -> str:
    header = ("resource", "provider", "durations", "live check")
    table = [header, *[(r.resource, r.kind, r.terms, r.live) for r in rows]]
    widths = [max(len(line[i]) for line in table) for i in range(3)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line[:3], widths, strict=True)) + "  " + line[3]
        for line in table
    )


@dataclass(frozen=True)
class Who:
    """Who may request, break glass on and approve one resource, as configured (and, live, as Slack knows them)."""

    resource: str
    request: str
    breakglass: str
    approve: str


EVERY_MEMBER = "every full member (no guests, bots or Slack Connect users)"
Name = Callable[[str], str]  # a user or group id → how to show it (live: Workspace.name, a group with its members)


def who_may(catalog: Catalog, name: Name = str) -> list[Who]:
    rows = []
    for r in catalog.resources.values():
        request = (
            _listed(r.requesters, name) if r.requesters else "every full member (no guests, bots or Slack Connect)"
        )
        if not r.breakglass:
            glass = "-"
        elif r.breakglass_requesters is None:
            glass = "whoever may request"
        else:
            glass = _listed(r.breakglass_requesters, name) + (" (if they may request)" if r.requesters else "")
        approve = ", ".join(filter(None, (_listed(r.approvers, name), "admins")))
        rows.append(Who(r.name, request, glass, approve))
    return rows


def _listed(ids: tuple[str, ...] | None, name: Name) -> str:
    return ", ".join(name(i) for i in ids or ())


EMAIL_KINDS = {"gcp": "the GCP member", "aws-sso": "the Identity Center user"}


def people_warnings(catalog: Catalog) -> list[str]:
    """Resources where anyone in the workspace gets access with no human step, or where a Slack profile's email,
    which its owner can often edit, decides who is granted."""
    warnings = []
    for r in catalog.resources.values():
        keys = {
            "auto_approve": r.auto_approve_up_to,
            "auto_approve_after": r.auto_approve_after,
            "breakglass": r.breakglass,
        }
        unattended = [key for key, on in keys.items() if on]
        if unattended and r.requesters is None:
            warnings.append(
                f"{r.name}: {', '.join(unattended)} with no requesters: every full member of the workspace can get"
                " access with no approver deciding"
            )
        if r.kind in EMAIL_KINDS and not r.identity_domains:
            warnings.append(
                f"{r.name}: {EMAIL_KINDS[r.kind]} is the Slack profile email (unless identities: maps the person)"
                " and there are no identity_domains: set them so that an edited email cannot be granted"
            )
    return warnings


def render_who(rows: list[Who]) -> str:
    return "\n".join(
        f"{row.resource}\n  request: {row.request}\n  break glass: {row.breakglass}\n  approve: {row.approve}"
        for row in rows
    )
