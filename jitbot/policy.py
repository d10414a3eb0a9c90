"""Who may do what, and within which bounds — pure functions of the catalog, the request and `now`."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

from jitbot.catalog import Catalog, Resource, Revocation
from jitbot.domain import AccessRequest
from jitbot.durations import format_duration
from jitbot.errors import NotFound, PolicyError


def find_resource(catalog: Catalog, name: str) -> Resource:
    resource = catalog.resource(name)
    if resource is None:
        known = ", ".join(f"`{n}`" for n in sorted(catalog.resources))
        raise NotFound(f"There is no resource `{name[:60]}`. Resources: {known}.")
    return resource


def check_request(resource: Resource, duration: timedelta, reason: str) -> None:
    """Bounds and reason rules for a new request; the error names the bound that was crossed."""
    if duration < resource.min_duration:
        raise PolicyError(
            f"{format_duration(duration)} is shorter than the minimum for `{resource.name}`,"
            f" {format_duration(resource.min_duration)}."
        )
    if duration > resource.max_duration:
        raise PolicyError(
            f"{format_duration(duration)} is longer than the maximum for `{resource.name}`,"
            f" {format_duration(resource.max_duration)}."
        )
    if not reason.strip():
        raise PolicyError("A reason is required: say why you need access.")


def check_admin(catalog: Catalog, user: str, what: str) -> None:
    if user not in catalog.admins:
        raise PolicyError(f"Only jitbot's admins can {what}.")


def revocation_retry_delay(revocation: Revocation, failures: int, jitter: float) -> timedelta:
    """Exponential backoff with equal jitter: half the step fixed, half random (`jitter` in [0, 1))."""
    step = min(revocation.retry_base * (1 << min(failures - 1, 30)), revocation.retry_cap)
    return step / 2 + step / 2 * jitter


def approver_groups(resource: Resource) -> tuple[str, ...]:
    """The user groups (S…) whose members may approve; membership is looked up at click time."""
    return tuple(a for a in resource.approvers if a.startswith("S"))


def check_approver(
    catalog: Catalog,
    resource: Resource,
    request: AccessRequest,
    clicker: str,
    groups: Mapping[str, frozenset[str]],
) -> None:
    """Raise PolicyError unless `clicker` may approve or deny `request` now.

    `groups` maps each of the resource's user-group ids to its members at the time of the click.
    """
    if clicker == request.requester:
        raise PolicyError("You can't approve or deny your own request.")
    if clicker in request.approvals:
        raise PolicyError(f"You have already approved {request.id}; it needs another approver.")
    if not is_approver(catalog, resource, clicker, groups):
        raise PolicyError(
            f"Only the approvers of `{resource.name}` ({approver_list(resource)}) or an admin can decide."
        )


def is_approver(catalog: Catalog, resource: Resource, user: str, groups: Mapping[str, frozenset[str]]) -> bool:
    if user in catalog.admins or user in resource.approvers:
        return True
    return any(user in groups.get(group, frozenset()) for group in approver_groups(resource))


def approver_list(resource: Resource) -> str:
    """Approvers as Slack mentions: `<@U…>` for people, `<!subteam^S…>` for user groups."""
    mentions = [f"<!subteam^{a}>" if a.startswith("S") else f"<@{a}>" for a in resource.approvers]
    return ", ".join(mentions) or "admins only"
