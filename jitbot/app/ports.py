"""What the use cases need from the world, by intent: people told things (Messenger), who people are (Directory),
work handed on (Jobs). The Slack adapter implements the first two (jitbot.slack.messenger), RQ the third
(jitbot.jobs.tasks); jitbot.testing.messenger records intents for tests that need no Slack.

A port raises core.errors.MessengerError when the people-facing side refused or could not be reached: the use
case decides whether that refuses what was asked (never allow by default) or only delays what is said.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from jitbot.core.catalog import Resource
from jitbot.core.domain import AccessRequest
from jitbot.core.redaction import Credentials


class Outcome(StrEnum):
    """What a requester is told about their request, beyond what `Messenger.show` keeps current."""

    RECEIVED = "received"  # a request made from the form (a command is answered in place)
    DEFERRED = "deferred"  # the cloud ends the access later than planned; `detail` says why, in the cloud's words
    RENEWAL_FAILED = "renewal failed"  # an approved extension could not be applied; `detail` is the error
    EXTENDED = "extended"
    EXTENSION_DENIED = "extension denied"  # `detail` is who denied it
    EXTENSION_TIMED_OUT = "extension timed out"


class Messenger(Protocol):
    def show(self, request: AccessRequest) -> None:
        """Bring everything people see of `request` up to date: the approvers' message, the requester's messages,
        App Home; once it has ended, its secrets scrubbed and its revocation alert resolved."""

    def deliver_access(self, request: AccessRequest, credentials: Credentials, access: dict[str, str]) -> None:
        """Give the requester their access: the only place credentials leave the provider call."""

    def tell_requester(self, request: AccessRequest, outcome: Outcome, detail: str = "") -> None: ...

    def escalate(self, request: AccessRequest, resource: Resource) -> None:
        """Nobody decided in time: announce the request to the resource's second set of approvers."""

    def remind(self, request: AccessRequest, now: datetime) -> None:
        """The grant ends soon: tell its holder, with a way to extend."""

    def alert_revocation(self, request: AccessRequest, failures: dict[str, str]) -> None:
        """The cloud keeps refusing to end `request`: alert the people who can act."""

    def show_review(self, request: AccessRequest) -> None:
        """Post or bring up to date the break-glass alert of `request` and its review."""

    def alert_drift(
        self, findings: Sequence[tuple[str, str, str]], unreadable: Sequence[tuple[str, str]], every: timedelta
    ) -> None:
        """Access no grant explains is left in the clouds — (resource, what, the cloud's refusal) each — or clouds
        could not be read — (resource, why) each; the next scan is `every` later."""


class Directory(Protocol):
    """Who people are, as the workspace says: asked when the store's copy is too old or missing."""

    def user_info(self, user: str) -> dict[str, Any]: ...

    def installation(self) -> tuple[str, str | None]:
        """The team (and enterprise) jitbot is installed in."""

    def group_members(self, groups: Iterable[str]) -> dict[str, frozenset[str]]: ...


class Jobs(Protocol):
    """Work handed to a worker, by request id (never a secret); each safe to queue twice."""

    def issue(self, request_id: str) -> None: ...

    def revoke_now(self, request_id: str) -> None: ...

    def sync_slack(self, request_id: str, pipeline: Any = None, *, urgent: bool = False) -> None: ...

    def renew(self, request_id: str) -> None: ...

    def escalate(self, request_id: str) -> None: ...

    def remind(self, request_id: str) -> None: ...

    def review_alert(self, request_id: str) -> None: ...

    def publish_home(self, user: str) -> None: ...

    def alert_revocation(self, request_id: str) -> None: ...

    def tell_deferral(self, request_id: str, why: str) -> None: ...

    def scan_clouds(self) -> None: ...

    def post_report(self, user: str, period_s: int) -> None: ...

    def is_last_attempt(self) -> bool:
        """Inside a job: whether a failure now is final (no retry will follow)."""
