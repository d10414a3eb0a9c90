"""Use cases that start in Slack: read the command or the click, apply policy, change state, hand off to jobs.

Nothing here calls a cloud: approving enqueues the issue job; Slack messages are brought up to date by jobs.
"""

from __future__ import annotations

from datetime import timedelta

from jitbot.catalog import Catalog, Resource
from jitbot.clock import Clock, utcnow
from jitbot.commands import USAGE, Command, RequestAccess, ShowHelp, ShowReport, parse_command
from jitbot.domain import (
    AccessRequest,
    Action,
    AuditEvent,
    Status,
    apply,
    approve,
    new_request_id,
    open_request,
    refusal,
)
from jitbot.durations import format_duration
from jitbot.errors import InvalidTransition, JitError, NotFound, PolicyError, echo
from jitbot.policy import approver_groups, check_admin, check_approver, check_request, find_resource, is_approver
from jitbot.slack import views
from jitbot.slack.notify import Notifier
from jitbot.store import Store
from jitbot.tasks import Tasks

AUTO = "jitbot"
DUPLICATE = "duplicate delivery: a replay, or Slack sent it twice"
DUPLICATE_WAIT = timedelta(
    seconds=2
)  # a concurrent twin is still working on the first answer  # the actor of what policy does on its own
REQUEST_ID_LENGTH = 8


class Service:
    def __init__(self, catalog: Catalog, store: Store, tasks: Tasks, notifier: Notifier, clock: Clock = utcnow) -> None:
        self.catalog = catalog
        self.store = store
        self.tasks = tasks
        self.notifier = notifier
        self.clock = clock

    def handle_command(self, user: str, text: str, delivery: str | None = None) -> str:
        """The ephemeral reply to `/access <text>`. Refusals are audited and explained.

        `delivery` is Slack's trigger_id: the same command delivered twice (a replay) gets the first answer
        again and changes nothing.
        """
        if delivery and not self.store.first_delivery(delivery):
            self._refuse_command(user, text, DUPLICATE)
            return self.store.delivery_reply(delivery, wait=DUPLICATE_WAIT) or "This command is already being handled."
        try:
            reply = self._run(user, parse_command(text))
        except JitError as error:
            self._refuse_command(user, text, str(error))
            reply = str(error)
        if delivery:
            self.store.save_delivery_reply(delivery, reply)
        return reply

    def _run(self, user: str, command: Command) -> str:
        if isinstance(command, ShowHelp):
            return USAGE
        if isinstance(command, ShowReport):
            return self.order_report(user, command.period)
        return self.submit(user, command)

    def _refuse_command(self, user: str, text: str, reason: str) -> None:
        detail = {"attempted": "command", "reason": reason}
        self.store.record(AuditEvent("refused", "-", user, _first_arg(text), self.clock(), "-", detail))

    def order_report(self, user: str, period: timedelta) -> str:
        check_admin(self.catalog, user, "ask for the access review")
        self.tasks.post_report(user, int(period.total_seconds()))
        return f"Building the access review of the last {format_duration(period)}; I'll DM you the files in a moment."

    def submit(self, user: str, command: RequestAccess) -> str:
        resource = find_resource(self.catalog, command.resource)
        check_request(resource, command.duration, command.reason)
        now = self.clock()
        while True:
            request_id = new_request_id()
            request, event = open_request(
                request_id, user, resource.name, command.duration, command.reason, now, resource.provider
            )
            if self.store.create(request, event, pending_until=now + resource.pending_timeout):
                break
        if resource.auto_approve:
            self.store.transition(
                request.id, lambda r: apply(r, Action.APPROVE, AUTO, now, decided_by=AUTO, decided_at=now)
            )
            self.tasks.issue(request.id)
        self.tasks.sync_slack(request.id)
        return views.request_received(request, resource)

    def decide(self, request_id: str, clicker: str, approving: bool, delivery: str | None = None) -> AccessRequest:
        """An Approve or Deny click. The stored request is the truth; the button only names it."""
        try:
            request = self._load(request_id)
        except NotFound as error:
            detail = {"attempted": "decide", "reason": str(error), "value": echo(request_id)}
            self.store.record(AuditEvent("refused", "-", clicker, "-", self.clock(), "-", detail))
            raise
        resource = find_resource(self.catalog, request.resource)
        now = self.clock()
        if delivery and not self.store.first_delivery(delivery):
            self.store.record(refusal(request, clicker, "decide", DUPLICATE, now))
            raise InvalidTransition("This click was already handled.")
        try:
            groups = {} if clicker == request.requester else self._groups_of(resource, clicker)
        except JitError as error:
            self.store.record(refusal(request, clicker, "decide", str(error), now))
            raise

        def change(current: AccessRequest) -> tuple[AccessRequest, AuditEvent]:
            check_approver(self.catalog, resource, current, clicker, groups)  # again, on the fresh state
            if approving:
                return approve(current, clicker, resource.approvals, now)
            return apply(current, Action.DENY, clicker, now, decided_by=clicker, decided_at=now)

        try:
            updated, _ = self.store.transition(request.id, change)
        except (PolicyError, InvalidTransition) as error:
            self.store.record(refusal(request, clicker, "approve" if approving else "deny", str(error), now))
            raise
        if updated.status is Status.APPROVED:
            self.tasks.issue(updated.id)
        self.tasks.sync_slack(updated.id)
        return updated

    def _groups_of(self, resource: Resource, clicker: str) -> dict[str, frozenset[str]]:
        """User-group members, looked up at click time, and only when the clicker is not listed by id."""
        if is_approver(self.catalog, resource, clicker, {}):
            return {}
        return self.notifier.group_members(approver_groups(resource))

    def _load(self, request_id: str) -> AccessRequest:
        if len(request_id) != REQUEST_ID_LENGTH or not request_id.startswith("r-"):
            raise NotFound("That button does not name a request I know.")
        return self.store.get(request_id)


def _first_arg(text: str) -> str:
    words = text.split()
    return words[1][:64] if len(words) > 1 else "-"
