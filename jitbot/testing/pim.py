"""PIM in the ARM stand-in: active assignments, the schedule requests that change them, and each role's policy."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from jitbot.testing.loopback import Answer
from jitbot.testing.role_management import (
    APP_OBJECT_ID,
    Assignment,
    Key,
    PimPolicy,
    error,
    expanded,
    instance,
    key_of,
    listed,
    parse_duration,
    parse_time,
    policy_assignment,
    policy_refusal,
    role_matches_scope,
    schedule_request,
)

OTHER_ADMIN = "5d6e7f80-9a1b-4c2d-8e3f-405162738495"  # who made the `standing` assignments, through the portal
SETTLED = {"AdminAssign": "Provisioned", "AdminExtend": "Provisioned", "AdminRemove": "Revoked"}
GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)


@dataclass(frozen=True)
class Change:
    """What an accepted schedule request does: `after` becomes the assignment at `key`; None removes it."""

    key: Key
    after: Assignment | None


@dataclass
class _Deferred:
    """A schedule request answered with a non-final status: after `gets` more GETs it answers `final`."""

    gets: int
    final: str
    change: Change


class Pim:
    """PIM's state, on the stand-in's clock `now`; not locked: `ArmStandIn` calls it under its own lock."""

    def __init__(self, now: Callable[[], datetime], role_definitions: dict[str, str], min_active: timedelta) -> None:
        self.now = now
        self.min_active = min_active  # PIM refuses to remove an assignment younger than this
        self.role_definitions = role_definitions  # GUID → role name
        self.principal_names: dict[str, str] = {}  # object id → the display name Entra ID knows it by
        self.assignments: dict[Key, Assignment] = {}
        self.schedule_requests: dict[tuple[str, str], dict[str, Any]] = {}
        self.policies: dict[tuple[str, str], PimPolicy] = {}  # (scope, role GUID), lower case
        self.next_pending: tuple[str, int, str | None] | None = None
        self._deferred: dict[tuple[str, str], _Deferred] = {}  # schedule requests still settling

    def set_policy(self, scope: str, role_definition_id: str, policy: PimPolicy) -> None:
        self.policies[key_of(scope, role_definition_id, "")[:2]] = policy

    def standing(self, scope: str, role_definition_id: str, principal_id: str, duration: timedelta) -> Assignment:
        name, schedule = str(uuid.uuid4()), str(uuid.uuid4())
        properties = {"principalId": principal_id, "roleDefinitionId": role_definition_id, "requestType": "AdminAssign"}
        now = self.now()
        made = Assignment(scope, role_definition_id, principal_id, now, now + duration, name, schedule)
        self.assignments[key_of(scope, role_definition_id, principal_id)] = made
        answered = self._answered(scope, name, properties, "Provisioned", schedule)
        answered["properties"]["requestorId"] = OTHER_ADMIN
        self.schedule_requests[(scope.lower(), name)] = answered
        return made

    def expire(self) -> None:
        now = self.now()
        for key in [key for key, found in self.assignments.items() if found.end <= now]:
            del self.assignments[key]

    def list_requests(self, scope: str, query: dict[str, str]) -> Answer:
        return listed(scope, query, list(self.schedule_requests.values()), ("atscope", "asrequestor", ""))

    def list_instances(self, scope: str, query: dict[str, str]) -> Answer:
        found = [instance(one, self.role_definitions, self.principal_names) for one in self.assignments.values()]
        return listed(scope, query, found, ("atscope", ""))

    def list_policies(self, scope: str) -> Answer:
        policies = [
            policy_assignment(scope, guid, self.policies.get((scope.lower(), guid), PimPolicy()))
            for guid in self.role_definitions
        ]
        return 200, {"value": policies}, {}

    def put(self, scope: str, name: str, body: Any) -> Answer:
        properties = body.get("properties") if isinstance(body, dict) else None
        if not GUID.match(name) or not isinstance(properties, dict):
            return error(400, "BadRequest", "The request name must be a GUID and the body must have properties.")
        refused = self._refusal(scope, name, properties)
        if refused:
            return refused
        role = str(properties["roleDefinitionId"]).rsplit("/", 1)[-1].lower()
        principal = str(properties["principalId"])
        key = key_of(scope, role, principal)
        request_type = str(properties.get("requestType"))
        found = self.assignments.get(key)
        schedule = found.schedule if found else str(uuid.uuid4())
        if request_type == "AdminAssign":
            outcome = self._assign(key, scope, name, schedule, properties)
        elif request_type == "AdminExtend":
            outcome = self._extend(key, properties)
        elif request_type == "AdminRemove":
            outcome = self._remove(key)
        else:
            outcome = error(400, "InvalidRequestType", f"Request type '{request_type}' is not supported.")
        if not isinstance(outcome, Change):
            return outcome
        return 201, self._accept(scope, name, properties, schedule, outcome), {}

    def _refusal(self, scope: str, name: str, properties: dict[str, Any]) -> Answer | None:
        """Why ARM refuses the request before looking at what it asks for, or None."""
        if (scope.lower(), name.lower()) in self.schedule_requests:
            return error(
                400, "RoleAssignmentRequestExists", f"A role assignment request with Id: {name} already exists"
            )
        role_id = str(properties.get("roleDefinitionId", ""))
        if role_id.rsplit("/", 1)[-1].lower() not in self.role_definitions:
            return error(
                400, "RoleDefinitionDoesNotExist", f"The specified role definition with ID '{role_id}' does not exist."
            )
        if not role_matches_scope(role_id, scope):
            return error(
                400,
                "ScopeDoesNotMatchRoleDefinition",
                f"The role definition '{role_id}' is not in the form of scope '{scope}'.",
            )
        principal = str(properties.get("principalId", ""))
        if not GUID.match(principal):
            return error(400, "InvalidPrincipalId", f"The principal ID '{principal}' is not a valid GUID.")
        return None

    def get(self, scope: str, name: str) -> Answer:
        found = self.schedule_requests.get((scope.lower(), name.lower()))
        if found is None:
            return error(
                404, "RoleAssignmentScheduleRequestNotFound", f"Role assignment schedule request {name} not found."
            )
        deferred = self._deferred.get((scope.lower(), name.lower()))
        if deferred is not None:
            deferred.gets -= 1
            if deferred.gets <= 0:
                del self._deferred[(scope.lower(), name.lower())]
                found["properties"]["status"] = deferred.final
                if deferred.final in SETTLED.values():
                    self._apply(deferred.change)
        return 200, found, {}

    def _accept(
        self, scope: str, name: str, properties: dict[str, Any], schedule: str, change: Change
    ) -> dict[str, Any]:
        """Record the accepted request; its change now, or deferred when `pending` asked for a non-final answer."""
        settled = SETTLED[properties["requestType"]]
        pending, self.next_pending = self.next_pending, None
        if pending is None:
            self._apply(change)
        else:
            self._deferred[(scope.lower(), name.lower())] = _Deferred(pending[1], pending[2] or settled, change)
        answered = self._answered(scope, name, properties, pending[0] if pending else settled, schedule)
        self.schedule_requests[(scope.lower(), name.lower())] = answered
        return answered

    def _assign(self, key: Key, scope: str, name: str, schedule: str, properties: dict[str, Any]) -> Answer | Change:
        expiration = (properties.get("scheduleInfo") or {}).get("expiration") or {}
        duration = parse_duration(expiration.get("duration"))
        if expiration.get("type") != "AfterDuration" or duration is None:
            return error(400, "InvalidScheduleInfo", "expiration must be AfterDuration with an ISO-8601 duration.")
        if duration < self.min_active:
            return error(
                400, "ActiveDurationTooShort", "The Active duration is too short. Minimum Required is 5 minutes."
            )
        if key in self.assignments:
            return error(400, "RoleAssignmentExists", "The Role assignment already exists.")
        refused = policy_refusal(self.policies.get(key[:2], PimPolicy()), properties, duration)
        if refused:
            return refused
        start = parse_time((properties.get("scheduleInfo") or {}).get("startDateTime")) or self.now()
        made = Assignment(
            scope, properties["roleDefinitionId"], properties["principalId"], start, start + duration, name, schedule
        )
        return Change(key, made)

    def _extend(self, key: Key, properties: dict[str, Any]) -> Answer | Change:
        found = self.assignments.get(key)
        target = str(properties.get("targetRoleAssignmentScheduleId", "")).rsplit("/", 1)[-1].lower()
        if found is None or target != found.schedule.lower():  # the schedule's GUID, or its full id
            return error(400, "RoleAssignmentDoesNotExist", "The Role assignment does not exist.")
        expiration = (properties.get("scheduleInfo") or {}).get("expiration") or {}
        end = parse_time(expiration.get("endDateTime"))
        if expiration.get("type") != "AfterDateTime" or end is None or end <= found.end:
            return error(400, "InvalidScheduleInfo", "expiration must be AfterDateTime, later than the current end.")
        refused = policy_refusal(self.policies.get(key[:2], PimPolicy()), properties, end - found.start)
        if refused:
            return refused
        return Change(key, replace(found, end=end))

    def _remove(self, key: Key) -> Answer | Change:
        found = self.assignments.get(key)
        if found is None:
            return error(400, "RoleAssignmentDoesNotExist", "The Role assignment does not exist.")
        if self.now() - found.start < self.min_active:
            return error(
                400, "ActiveDurationTooShort", "The Active duration is too short. Minimum Required is 5 minutes."
            )
        return Change(key, None)

    def _apply(self, change: Change) -> None:
        if change.after is None:
            self.assignments.pop(change.key, None)
        else:
            self.assignments[change.key] = change.after

    def _answered(
        self, scope: str, name: str, properties: dict[str, Any], status: str, schedule: str
    ) -> dict[str, Any]:
        answered = {
            **properties,
            "scope": scope,
            "principalType": "User",
            "status": status,
            "targetRoleAssignmentScheduleId": schedule,  # a bare GUID, as in PutRoleAssignmentScheduleRequest.json
            "targetRoleAssignmentScheduleInstanceId": None,
            "createdOn": self.now().strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "requestorId": APP_OBJECT_ID,
            "expandedProperties": self._expanded(scope, properties),
        }
        return schedule_request(scope, name, answered)

    def _expanded(self, scope: str, properties: dict[str, Any]) -> dict[str, Any]:
        return expanded(scope, properties, self.role_definitions, self.principal_names)
