"""Who may do what, and within which bounds — pure functions of the catalog, the request and `now`."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import datetime, timedelta

from jitbot.core.catalog import NEEDS_IDENTITY, Catalog, Resource, Revocation
from jitbot.core.domain import AccessRequest, Status
from jitbot.core.durations import format_duration
from jitbot.core.errors import NotFound, PolicyError


def find_resource(catalog: Catalog, name: str) -> Resource:
    resource = catalog.resource(name)
    if resource is None:
        known = ", ".join(f"`{n}`" for n in sorted(catalog.resources))
        raise NotFound(f"There is no resource `{name[:60]}`. Resources: {known}.")
    return resource


def check_request(resource: Resource, duration: timedelta, reason: str) -> None:
    """Bounds and reason rules for a new request."""
    check_bounds(resource, duration)
    check_reason(resource, reason)


def check_bounds(resource: Resource, duration: timedelta) -> None:
    """The resource's minimum and maximum; the error names the bound that was crossed."""
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


def check_reason(resource: Resource, reason: str) -> None:
    """The resource's reason rules; the error shows an example of a reason that passes."""
    if not reason.strip():
        raise PolicyError("A reason is required: say why you need access.")
    rule = resource.reason
    example = f", e.g. `{rule.example}`" if rule.example else ""
    if len(reason.strip()) < rule.min_length:
        raise PolicyError(f"The reason for `{resource.name}` must be at least {rule.min_length} characters{example}.")
    if rule.pattern and not re.search(rule.pattern, reason):
        raise PolicyError(f"The reason for `{resource.name}` must include a ticket (`{rule.pattern}`){example}.")


def check_extension_reason(resource: Resource, reason: str) -> None:
    """An extension's reason is optional, unless the resource has rules for reasons: then they apply."""
    if resource.reason.min_length or resource.reason.pattern or reason:
        check_reason(resource, reason)


def check_breakglass(resource: Resource) -> None:
    if not resource.breakglass:
        raise PolicyError(f"`{resource.name}` does not allow break-glass access; use `/access request`.")


def check_extension(resource: Resource, request: AccessRequest, more: timedelta, now: datetime) -> None:
    """An extension keeps the whole grant within the resource's maximum: the error says how much is left."""
    if request.status is not Status.ACTIVE or not request.expires_at or request.ending_by:
        state = "being ended" if request.ending_by else request.status
        raise PolicyError(f"`{request.id}` is {state}; only an active grant can be extended.")
    allowed = resource.max_duration - request.granted_for
    if more > allowed:
        left = f"at most {format_duration(allowed)} more" if allowed > timedelta(0) else "no more time"
        raise PolicyError(
            f"`{resource.name}` grants at most {format_duration(resource.max_duration)} in all;"
            f" `{request.id}` can have {left}. Ask for a new request after it ends."
        )


def check_end(
    catalog: Catalog, resource: Resource, request: AccessRequest, user: str, groups: Mapping[str, frozenset[str]]
) -> None:
    """Who may end a grant early: the requester, an approver of the resource, or an admin."""
    if request.status is not Status.ACTIVE:
        raise PolicyError(f"`{request.id}` is {request.status}, not active: there is nothing to end.")
    if user != request.requester and not is_approver(catalog, resource, user, groups, request):
        raise PolicyError(f"Only <@{request.requester}>, the approvers of `{resource.name}` or an admin can end it.")


def check_cancel(request: AccessRequest, user: str) -> None:
    if user != request.requester:
        raise PolicyError(f"Only <@{request.requester}>, who asked, can cancel `{request.id}`.")
    if request.status is not Status.PENDING:
        raise PolicyError(f"`{request.id}` is {request.status}, no longer pending; `/access revoke` ends a grant.")


def check_admin(catalog: Catalog, user: str, what: str) -> None:
    if user not in catalog.admins:
        raise PolicyError(f"Only jitbot's admins can {what}.")


AUDITED_FAILURES = 10
THROTTLED_FIRST_STEP = timedelta(seconds=1)  # a throttled revocation is first tried again within about this
# an approved request not yet granted this long after its decision has its issue job queued again (unless one is
# queued or running): a job lost with its worker or its Redis (a failover mid-job, AOF's last second) is re-driven
ISSUE_REDRIVE = timedelta(seconds=30)


def revocation_retry_delay(
    revocation: Revocation, failures: int, jitter: float, unanswered: bool = False, throttled: bool = False
) -> timedelta:
    """Exponential backoff with equal jitter: half the step fixed, half random (`jitter` in [0, 1)).

    A cloud that did not answer at all (`unanswered`) is tried again on the first step, never a longer one: the
    attempt has already waited out the SDK's timeouts, another costs that cloud nothing, and a grant whose cloud
    comes back is cut within that step rather than minutes later. Backoff grows for clouds that answer: errors and
    throttling, where more calls would make it worse. A throttled call (`throttled`: the cloud asks for fewer
    calls, nothing failed) climbs the same ladder from `throttled_rungs` steps lower, from about a second: a rate
    limit usually has room again within one, and the grant stays live meanwhile."""
    rung = 0 if unanswered else failures - 1 - (throttled_rungs(revocation) if throttled else 0)
    step = min(revocation.retry_base * 2.0 ** min(rung, 30), revocation.retry_cap)
    return step / 2 + step / 2 * jitter


def throttled_rungs(revocation: Revocation) -> int:
    """How many halvings of `retry_base` a throttled revocation starts below it (to about THROTTLED_FIRST_STEP),
    and so how many more attempts it is allowed before alerting: the alert comes after as long a time either way."""
    return max(0, math.ceil(math.log2(revocation.retry_base / THROTTLED_FIRST_STEP)))


def alerts_after(revocation: Revocation, throttled: bool) -> int:
    """The failed attempts in a row after which a revocation is alerted on."""
    return revocation.alert_after + (throttled_rungs(revocation) if throttled else 0)


def audits_failure(failures: int) -> bool:
    """Whether a failed revocation attempt gets its own audit record: the first ten, then the 16th, 32nd, 64th…,
    so that a cloud down for hours (tried every few seconds) shows that jitbot kept trying in a few records."""
    return failures <= AUDITED_FAILURES or failures & (failures - 1) == 0


def approver_groups(resource: Resource) -> tuple[str, ...]:
    """The user groups (S…) whose members may approve; membership is looked up at click time."""
    return tuple(a for a in (*resource.approvers, *resource.escalate_to) if a.startswith("S"))


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
    if clicker in (request.extend_approvals if request.status is Status.ACTIVE else request.approvals):
        raise PolicyError(f"You have already approved {request.id}; it needs another approver.")
    if not is_approver(catalog, resource, clicker, groups, request):
        raise PolicyError(
            f"Only the approvers of `{resource.name}` ({approver_list(resource)}) or an admin can decide."
        )


def is_approver(
    catalog: Catalog,
    resource: Resource,
    user: str,
    groups: Mapping[str, frozenset[str]],
    request: AccessRequest | None = None,
) -> bool:
    """An admin, a listed approver or a member of a listed group; once `request` is escalated, its escalation
    approvers too."""
    eligible = set(resource.approvers)
    if request is not None and request.escalated:
        eligible.update(resource.escalate_to)
    if user in catalog.admins or user in eligible:
        return True
    return any(user in groups.get(group, frozenset()) for group in eligible if group.startswith("S"))


def approver_list(resource: Resource) -> str:
    """Approvers as Slack mentions: `<@U…>` for people, `<!subteam^S…>` for user groups."""
    return mentions(resource.approvers) or "admins only"


def escalation_list(resource: Resource) -> str:
    return mentions(resource.escalate_to)


def mentions(ids: tuple[str, ...]) -> str:
    """People, user groups and channels as Slack mentions."""
    forms = {"S": "<!subteam^{}>", "C": "<#{}>", "G": "<#{}>"}
    return ", ".join(forms.get(i[0], "<@{}>").format(i) for i in ids)


IDENTITY_LABELS = {
    "email": "an email address",
    "azure_object_id": "an Azure object id",
    "aws_sso_user_id": "an AWS Identity Center user id",
}


def needs_email(resource: Resource, known: Mapping[str, str]) -> bool:
    """Whether the Slack profile's email should be looked up: the cloud can use it and nothing better is known."""
    wanted = NEEDS_IDENTITY.get(resource.kind, ())
    return "email" in wanted and not any(known.get(key) for key in wanted)


def check_identity(resource: Resource, user: str, identity: Mapping[str, str]) -> None:
    """The person must be known to the resource's cloud before a request exists, not discovered after approval."""
    wanted = NEEDS_IDENTITY.get(resource.kind, ())
    if wanted and not any(identity.get(key) for key in wanted):
        what = " or ".join(IDENTITY_LABELS[key] for key in wanted)
        keys = " or ".join(f"`{key}`" for key in wanted)
        raise PolicyError(
            f"`{resource.name}` ({resource.provider}) needs {what} for you, and I have none."
            f" Ask an admin to add {keys} for {user} under `identities:` in jitbot.yml"
            + (", or set the email in your Slack profile." if "email" in wanted else ".")
        )
