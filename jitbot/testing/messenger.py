"""In-memory stand-ins for the use cases' people-facing ports (jitbot.app.ports): a Messenger that records each
intent instead of saying it, and a Directory that answers from dicts — for fast tests of what a use case means to
say, with no Slack behind it (jitbot.slack.messenger is tested against the Slack stand-in).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from jitbot.app.ports import Outcome
from jitbot.core.catalog import Resource
from jitbot.core.domain import AccessRequest
from jitbot.core.errors import MessengerError
from jitbot.core.redaction import Credentials

HOME_TEAM = "T0HOME"


@dataclass(frozen=True)
class Said:
    """One intent: the Messenger method's name, the request it was about ("" for none), the outcome told, and a
    detail (what the method was given beyond the request; never a secret: delivered credentials by name only)."""

    intent: str
    request_id: str = ""
    outcome: Outcome | None = None
    detail: str = ""


@dataclass
class RecordingMessenger:
    """Records every intent in `said`, in order, and the credentials delivered, by request id, as the requester
    would hold them (a test looks for those secrets elsewhere). An intent named in `refusing` raises MessengerError
    instead, as a Messenger does when the people-facing side refuses or cannot be reached."""

    said: list[Said] = field(default_factory=list)
    delivered: dict[str, Credentials] = field(default_factory=dict)
    refusing: set[str] = field(default_factory=set)

    def of(self, intent: str) -> list[Said]:
        return [said for said in self.said if said.intent == intent]

    def _record(self, said: Said) -> None:
        if said.intent in self.refusing:
            raise MessengerError(f"{said.intent} refused")
        self.said.append(said)

    def show(self, request: AccessRequest) -> None:
        self._record(Said("show", request.id, detail=request.status))

    def deliver_access(self, request: AccessRequest, credentials: Credentials, access: dict[str, str]) -> None:
        self._record(Said("deliver_access", request.id, detail=", ".join(sorted(credentials.fields()))))
        self.delivered[request.id] = credentials

    def tell_requester(self, request: AccessRequest, outcome: Outcome, detail: str = "") -> None:
        self._record(Said("tell_requester", request.id, outcome, detail))

    def escalate(self, request: AccessRequest, resource: Resource) -> None:
        self._record(Said("escalate", request.id, detail=resource.name))

    def remind(self, request: AccessRequest, now: datetime) -> None:
        self._record(Said("remind", request.id, detail=now.isoformat()))

    def alert_revocation(self, request: AccessRequest, failures: dict[str, str]) -> None:
        self._record(Said("alert_revocation", request.id, detail=failures.get("count", "")))

    def show_review(self, request: AccessRequest) -> None:
        self._record(Said("show_review", request.id))

    def alert_drift(
        self, findings: Sequence[tuple[str, str, str]], unreadable: Sequence[tuple[str, str]], every: timedelta
    ) -> None:
        kept = ", ".join(resource for resource, _, _ in findings)
        lost = ", ".join(resource for resource, _ in unreadable)
        self._record(Said("alert_drift", detail=f"kept: {kept}; unreadable: {lost}"))


@dataclass
class StaticDirectory:
    """Who people are, from dicts: everyone not in `users` is a member of the home workspace, HOME_TEAM."""

    users: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    groups: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def user_info(self, user: str) -> dict[str, Any]:
        return self.users.get(user, {"id": user, "team_id": HOME_TEAM})

    def installation(self) -> tuple[str, str | None]:
        return HOME_TEAM, None

    def group_members(self, groups: Iterable[str]) -> dict[str, frozenset[str]]:
        return {group: self.groups.get(group, frozenset()) for group in groups}
