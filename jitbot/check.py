"""`jitbot check`: the catalog validated offline (parsing does that, naming line and key), each resource's terms
and the clouds' own limits that shape its grants, and with `--live` each provider asked whether it can act."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from jitbot.catalog import Catalog, Resource
from jitbot.durations import format_duration
from jitbot.errors import ProviderError
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
