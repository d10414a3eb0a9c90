"""Azure: a PIM active role assignment (AdminAssign) that expires by itself; AdminExtend moves its end, AdminRemove
takes it away early.

The pure builders (the schedule request's name and body, the DM lines, the error mapping, the policy's demands) are
in `jitbot.providers.pim`, the SDK's clients in `jitbot.providers.arm`: here are the few Azure Resource Manager calls
and what is read from the SDK's models. PIM's own expiration is the backstop if every revocation fails. PIM answers a
schedule request with a status that may not be final yet (Accepted, PendingProvisioning, PendingRevocation…): the
request is read again, with backoff, until it says Provisioned (or Revoked), and a job that runs again finds its own
request by name and goes on waiting. The read-back (`verify_revoked`) and the drift scan (`held`) tell jitbot's
assignments by the schedule its AdminAssign created and the ticket it carried (ticketSystem "jitbot", ticketNumber
the request id).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from azure.core.credentials import TokenCredential
from azure.mgmt.authorization.v2020_10_01.models import (
    RoleAssignmentScheduleInstance,
    RoleAssignmentScheduleRequest,
    RoleManagementPolicyEnablementRule,
    RoleManagementPolicyExpirationRule,
    RoleManagementPolicyRule,
)

from jitbot.core.catalog import Resource
from jitbot.core.domain import AccessRequest
from jitbot.core.errors import ProviderError
from jitbot.providers.arm import PUBLIC_ARM, Arm, json_body
from jitbot.providers.azure_settings import AzureSettings
from jitbot.providers.base import Ending, Held, Issued, Outcome, revoke_each
from jitbot.providers.pim import (
    ASSIGNMENT_EXISTS,
    ASSIGNMENT_GONE,
    PROVISIONED,
    REQUEST_EXISTS,
    REVOKED,
    TOO_YOUNG,
    ArmRefusal,
    Demands,
    access_lines,
    assign_body,
    describe_demands,
    extend_body,
    grant_handle,
    guid_of,
    is_settled,
    policy_refusal,
    principal_id,
    provider_error,
    removal,
    remove_body,
    same_guid,
    schedule_request_name,
    span,
    target,
    too_young_error,
)

POLL_INTERVALS = (0.5, 1.0, 2.0, 4.0)  # seconds between reads of a pending request, the last repeated
POLL_TIMEOUT = 60.0  # then a retryable error: the job runs again, finds its request by name and waits more


def admin_assignment_demands(rules: list[RoleManagementPolicyRule]) -> Demands:
    """The demands on an admin's active assignment: rules Enablement_Admin_Assignment and Expiration_Admin_Assignment
    (their ids in GetRoleManagementPolicyAssignmentByScope.json, 2020-10-01)."""
    demands = Demands()
    for rule in rules:
        if isinstance(rule, RoleManagementPolicyEnablementRule) and rule.id == "Enablement_Admin_Assignment":
            enabled = set(rule.enabled_rules or ())
            mfa, ticket = "MultiFactorAuthentication" in enabled, "Ticketing" in enabled
            demands = replace(demands, mfa=mfa, justification="Justification" in enabled, ticket=ticket)
        if isinstance(rule, RoleManagementPolicyExpirationRule) and rule.id == "Expiration_Admin_Assignment":
            demands = replace(demands, maximum=span(rule.maximum_duration) if rule.is_expiration_required else None)
    return demands


def is_jitbot_assign(made: RoleAssignmentScheduleRequest, scope: str, role: str) -> bool:
    """An AdminAssign jitbot made (its ticket system, a request id as ticket) for `role` at `scope`."""
    ticket = made.ticket_info
    return (
        made.request_type == "AdminAssign"
        and ticket is not None
        and ticket.ticket_system == "jitbot"
        and bool(ticket.ticket_number and made.target_role_assignment_schedule_id)
        and same_guid(made.role_definition_id, role)
        and str(made.scope).lower() == scope.lower()
    )


def held_of(instance: RoleAssignmentScheduleInstance, ticket: str, scope: str) -> Held:
    """An active instance of jitbot's schedule as the drift scan reports it, with what `remove` needs."""
    expanded = instance.expanded_properties
    role_id, principal = str(instance.role_definition_id), str(instance.principal_id)
    role = expanded.role_definition.display_name if expanded and expanded.role_definition else None
    ref = {
        "scope": scope,
        "principal_id": principal,
        "role_definition_id": role_id,
        "ticket": ticket,
        "schedule_id": str(instance.role_assignment_schedule_id),
        "start": instance.start_date_time.isoformat() if instance.start_date_time else "",
    }
    return Held(frozenset({ticket}), f"{role or role_id.rsplit('/', 1)[-1]} for {principal} on {scope}", ref)


class AzureProvider:
    """PIM assignments through ARM; `endpoint` elsewhere for sovereign clouds and local stand-ins; `sleep` and
    `poll_timeout` pace the reads of a schedule request PIM has not settled yet."""

    merges_ends = False

    def __init__(
        self,
        endpoint: str | None = None,
        credential: TokenCredential | None = None,
        sleep: Callable[[float], None] = time.sleep,
        poll_timeout: float = POLL_TIMEOUT,
    ) -> None:
        self.endpoint = (endpoint or PUBLIC_ARM).rstrip("/")
        self.sleep = sleep
        self.poll_timeout = poll_timeout
        self.arm = Arm(self.endpoint, credential)

    def grant(self, request: AccessRequest, resource: Resource, now: datetime) -> Issued:
        handle = grant_handle(request, resource)
        scope, name = handle["scope"], handle["schedule_request"]
        body = json_body(assign_body(request, resource, now))
        try:
            answer = self.arm.call(self.arm.pim().role_assignment_schedule_requests.create, scope, name, body)
        except ArmRefusal as refusal:
            if refusal.code not in (ASSIGNMENT_EXISTS, REQUEST_EXISTS):
                raise provider_error("assign", refusal, scope, now) from None
            answer = self._own_request(request, scope, name, now)
        answer = self._settle(scope, name, answer, PROVISIONED, now)
        if answer.target_role_assignment_schedule_id:  # what an extension names as its target
            handle["schedule_id"] = answer.target_role_assignment_schedule_id
        expanded = answer.expanded_properties
        if expanded and expanded.principal and expanded.principal.display_name:  # shown to the approvers
            handle["principal_name"] = expanded.principal.display_name
        role = expanded.role_definition if expanded else None
        return Issued(handle, access=access_lines(request, handle, role.display_name if role else None, now))

    def extend(self, request: AccessRequest, resource: Resource, now: datetime) -> Issued:
        """PIM's own end moves to the request's new expiry, so the backstop does not cut the extended grant short."""
        scope, _ = target(request, resource)
        body = extend_body(request, resource)
        until = body["properties"]["scheduleInfo"]["expiration"]["endDateTime"]
        name = schedule_request_name(request.id, f"extend:{until}")
        try:
            answer = self.arm.call(
                self.arm.pim().role_assignment_schedule_requests.create, scope, name, json_body(body)
            )
        except ArmRefusal as refusal:
            if refusal.code != REQUEST_EXISTS:
                raise provider_error("extend", refusal, scope, now) from None
            answer = self._request(scope, name, now)  # this very extension, made by an earlier run
        self._settle(scope, name, answer, PROVISIONED, now)
        return Issued(dict(request.grant))

    def revoke(self, request: AccessRequest, resource: Resource, now: datetime) -> None:
        scope, _ = target(request, resource)
        name = schedule_request_name(request.id, "remove")
        self._remove(scope, name, remove_body(request, resource), too_young_error(request.granted_at, now), now)

    def verify_revoked(self, request: AccessRequest, resource: Resource, now: datetime) -> str:
        """No active instance left of the schedule jitbot's AdminAssign created (someone else's standing one of the
        same role is not jitbot's, and is left out)."""
        scope, role = target(request, resource)
        principal = principal_id(request)
        schedule = request.grant.get("schedule_id") or self._assigned_schedule(request, scope, now)
        if not schedule:
            return f"no assignment request of {request.id} at {scope}: PIM never assigned it"
        instances = self._instances(scope, f"principalId eq '{principal}'", now)
        ours = [i for i in instances if same_guid(i.role_assignment_schedule_id, schedule)]
        if ours:
            end = ours[0].end_date_time
            until = f", active until {end:%Y-%m-%d %H:%M} UTC" if end else ""
            raise ProviderError(
                f"Azure still shows {principal}'s assignment of {role.rsplit('/', 1)[-1]} on {scope} from schedule "
                f"{schedule}{until}.",
                retryable=True,
            )
        return f"read {len(instances)} active assignment(s) of {principal} at {scope}: none from schedule {schedule}"

    def shared_policy(self, request: AccessRequest, resource: Resource) -> str:
        """The request itself: each PIM removal is a schedule request of its own, so no batch."""
        return request.id

    def revoke_many(self, grants: Sequence[Ending], now: datetime) -> dict[str, Outcome]:
        return revoke_each(self, grants, now)

    def held(self, resource: Resource, now: datetime) -> list[Held]:
        """Active instances at the scope whose schedule an AdminAssign of jitbot's created for this role."""
        settings = resource.settings_as(AzureSettings)
        scope, role = settings.scope, settings.role_definition_id
        tickets = self._jitbot_schedules(scope, role, now)
        found = []
        for instance in self._instances(scope, "atScope()", now):
            schedule = guid_of(instance.role_assignment_schedule_id)
            if schedule in tickets and same_guid(instance.role_definition_id, role):
                found.append(held_of(instance, tickets[schedule], scope))
        return found

    def remove(self, held: Held, resource: Resource, now: datetime) -> bool:
        """AdminRemove under a name fixed by the ticket and schedule: a repeat finds its own request and waits on it."""
        ref = held.ref
        name = schedule_request_name(ref["ticket"], f"drift:{ref['schedule_id']}")
        why = f"jitbot: drift scan, no live grant explains access request {ref['ticket']}"
        body = removal(ref["principal_id"], ref["role_definition_id"], ref["ticket"], why)
        started = datetime.fromisoformat(ref["start"]) if ref.get("start") else None
        return self._remove(ref["scope"], name, body, too_young_error(started, now), now)

    def check(self, resource: Resource) -> str:
        """For `jitbot check --live`: the role definition can be read on the scope with jitbot's sign-in, and PIM's
        policy for the role there lets jitbot grant it (no MFA; active assignments may last max_duration)."""
        settings = resource.settings_as(AzureSettings)
        scope, role = settings.scope, settings.role_definition_id
        now = datetime.now(UTC)
        try:
            definition = self.arm.call(self.arm.rbac().role_definitions.get, scope, role.rsplit("/", 1)[-1])
        except ArmRefusal as refusal:
            raise provider_error("read role definition", refusal, scope, now) from None
        demands = admin_assignment_demands(self._policy_rules(scope, role, now))
        refused = policy_refusal(demands, resource)
        if refused:
            raise refused
        return f"ok: {definition.role_name}; {describe_demands(demands)}"

    def _remove(self, scope: str, name: str, body: dict[str, Any], too_young: ProviderError, now: datetime) -> bool:
        """An AdminRemove, waited on until Revoked (True); gone already is done (False), and so is an earlier run's
        removal."""
        try:
            answer = self.arm.call(
                self.arm.pim().role_assignment_schedule_requests.create, scope, name, json_body(body)
            )
        except ArmRefusal as refusal:
            if refusal.code == TOO_YOUNG:
                raise too_young from None
            if refusal.status == 404 or refusal.code == ASSIGNMENT_GONE:
                return False
            if refusal.code != REQUEST_EXISTS:
                raise provider_error("remove", refusal, scope, now) from None
            answer = self._request(scope, name, now)  # this very removal, made by an earlier run
        self._settle(scope, name, answer, REVOKED, now)
        return True

    def _settle(
        self, scope: str, name: str, answer: RoleAssignmentScheduleRequest, wanted: str, now: datetime
    ) -> RoleAssignmentScheduleRequest:
        """Read the request again, backing off, until PIM answers `wanted`; past `poll_timeout` a retryable error."""
        waited, polls = 0.0, 0
        while not is_settled(answer.status, wanted, name):
            if waited >= self.poll_timeout:
                raise ProviderError(
                    f"Azure PIM still answers {answer.status} for schedule request {name} after {waited:.0f} s; "
                    "jitbot asks again.",
                    retryable=True,
                )
            interval = POLL_INTERVALS[min(polls, len(POLL_INTERVALS) - 1)]
            self.sleep(interval)
            waited, polls = waited + interval, polls + 1
            answer = self._request(scope, name, now)
        return answer

    def _request(self, scope: str, name: str, now: datetime) -> RoleAssignmentScheduleRequest:
        """A request ARM said exists (RequestExists, or just accepted): missing now is a hiccup worth a retry."""
        found = self._find_request(scope, name, now)
        if found is None:
            raise ProviderError(f"Azure lost sight of schedule request {name} on {scope}.", retryable=True)
        return found

    def _own_request(
        self, request: AccessRequest, scope: str, name: str, now: datetime
    ) -> RoleAssignmentScheduleRequest:
        """ARM says the assignment exists: ours (a repeated job) if our named request exists, else someone else's."""
        found = self._find_request(scope, name, now)
        if found is None:
            raise ProviderError(
                f"{principal_id(request)} already holds this role on {scope} through another assignment (a standing "
                "one, or another request's); jitbot neither takes it over nor removes it.",
                retryable=False,
            )
        return found

    def _assigned_schedule(self, request: AccessRequest, scope: str, now: datetime) -> str | None:
        """The schedule jitbot's AdminAssign created, for a grant never recorded as such; None if none was made."""
        found = self._find_request(scope, schedule_request_name(request.id, "assign"), now)
        return found.target_role_assignment_schedule_id if found else None

    def _find_request(self, scope: str, name: str, now: datetime) -> RoleAssignmentScheduleRequest | None:
        try:
            found: RoleAssignmentScheduleRequest = self.arm.call(
                self.arm.pim().role_assignment_schedule_requests.get, scope, name
            )
        except ArmRefusal as refusal:
            if refusal.status == 404:
                return None
            raise provider_error("read schedule request", refusal, scope, now) from None
        return found

    def _instances(self, scope: str, filter: str, now: datetime) -> list[RoleAssignmentScheduleInstance]:
        listing = self.arm.pim().role_assignment_schedule_instances.list_for_scope
        return self._listed(lambda **options: list(listing(scope, filter=filter, **options)), scope, now)

    def _jitbot_schedules(self, scope: str, role: str, now: datetime) -> dict[str, str]:
        """Schedule GUID → ticket (jitbot request id) of the AdminAssign requests jitbot made for `role` at `scope`."""
        listing = self.arm.pim().role_assignment_schedule_requests.list_for_scope
        made = self._listed(lambda **options: list(listing(scope, filter="asRequestor()", **options)), scope, now)
        ours = [r for r in made if is_jitbot_assign(r, scope, role)]
        return {guid_of(r.target_role_assignment_schedule_id): str(r.ticket_info.ticket_number) for r in ours}

    def _policy_rules(self, scope: str, role: str, now: datetime) -> list[RoleManagementPolicyRule]:
        """The effective rules of the policy assigned to `role` at `scope` (the 2020-10-01 list takes no filter)."""
        listing = self.arm.pim().role_management_policy_assignments.list_for_scope
        assigned = self._listed(lambda **options: list(listing(scope, **options)), scope, now)
        mine = next((a for a in assigned if same_guid(a.role_definition_id, role)), None)
        if mine is None:
            raise ProviderError(
                f"Azure PIM has no role management policy for {role} on {scope}: check scope and role_definition_id "
                "in jitbot.yml.",
                retryable=False,
            )
        return list(mine.effective_rules or [])

    def _listed(self, read: Callable[..., list[Any]], scope: str, now: datetime) -> list[Any]:
        """A paged list read to the end (the SDK fetches pages while it is iterated)."""
        try:
            listed: list[Any] = self.arm.call(read)
        except ArmRefusal as refusal:
            raise provider_error("list", refusal, scope, now) from None
        return listed
