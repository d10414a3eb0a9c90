"""Use cases that start in Slack: read the command, click or form, apply policy, change state, hand off to jobs.

Nothing here calls a cloud: approving enqueues the issue job; Slack messages are brought up to date by jobs.
Every refusal is audited and explained to the person.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import timedelta
from functools import partial
from typing import Any

from jitbot.catalog import Catalog, Resource
from jitbot.clock import Clock, utcnow
from jitbot.commands import (
    USAGE,
    BreakGlass,
    Cancel,
    Command,
    Extend,
    OpenRequestForm,
    RequestAccess,
    Revoke,
    ShowHelp,
    ShowList,
    ShowReport,
    ShowResources,
    parse_command,
)
from jitbot.domain import (
    AccessRequest,
    Action,
    AuditEvent,
    Status,
    apply,
    approve,
    ask_extension,
    deny,
    extend,
    new_request_id,
    open_request,
    refusal,
)
from jitbot.durations import format_duration, parse_duration
from jitbot.errors import InvalidTransition, JitError, NotFound, PolicyError, UsageError, echo
from jitbot.policy import (
    approver_groups,
    check_admin,
    check_approver,
    check_bounds,
    check_breakglass,
    check_cancel,
    check_end,
    check_extension,
    check_extension_reason,
    check_identity,
    check_reason,
    check_request,
    find_resource,
    is_approver,
    needs_email,
)
from jitbot.slack import ids, views
from jitbot.slack.home import Homes
from jitbot.slack.notify import Notifier, NotifyError
from jitbot.store import Change, Store
from jitbot.tasks import Tasks

AUTO = "jitbot"  # the actor of what policy does on its own
DUPLICATE = "duplicate delivery: a replay, or Slack sent it twice"
DUPLICATE_WAIT = timedelta(seconds=2)  # a concurrent twin is still working on the first answer
REQUEST_ID_LENGTH = 8
LIST_LIMIT = 200
FormErrors = dict[str, str]  # block id → the message Slack shows under that field


class Service:
    def __init__(
        self,
        catalog: Catalog,
        store: Store,
        tasks: Tasks,
        notifier: Notifier,
        clock: Clock = utcnow,
    ) -> None:
        self.catalog = catalog
        self.store = store
        self.tasks = tasks
        self.notifier = notifier
        self.clock = clock
        self.homes = Homes(catalog, store, notifier, clock)

    # commands

    def handle_command(self, user: str, text: str, delivery: str | None = None) -> views.Reply:
        """The ephemeral reply to `/access <text>`. Refusals are audited and explained.

        `delivery` is Slack's trigger_id: the same command delivered twice (a replay) gets the first answer
        again and changes nothing.
        """
        if delivery and not self.store.first_delivery(delivery):
            self._refuse_command(user, text, DUPLICATE)
            earlier = self.store.delivery_reply(delivery, wait=DUPLICATE_WAIT)
            return views.Reply(**json.loads(earlier)) if earlier else views.Reply("This command is being handled.")
        try:
            reply = self._run(user, parse_command(text), delivery)
        except JitError as error:
            if not error.audited:  # a refusal about one request was recorded with it
                self._refuse_command(user, text, str(error))
            reply = views.Reply(str(error))
        if delivery:
            self.store.save_delivery_reply(delivery, json.dumps(vars(reply)))
        return reply

    def _run(self, user: str, command: Command, delivery: str | None) -> views.Reply:
        if isinstance(command, ShowHelp):
            return views.Reply(USAGE)
        if isinstance(command, ShowReport):
            return views.Reply(self.order_report(user, command.period))
        if isinstance(command, RequestAccess):
            request, resource = self.submit(user, command)
            return views.Reply(views.request_received(request, resource))
        if isinstance(command, BreakGlass):
            return views.Reply(self.break_glass(user, command))
        if isinstance(command, OpenRequestForm):
            if not delivery:
                raise UsageError("Slack sent no trigger to open the form with; type the request in full instead.")
            self.notifier.open_view(delivery, views.request_form(self.catalog.resources.values()))
            return views.Reply("")
        if isinstance(command, ShowList):
            return self.show_list(user, command.everyone)
        if isinstance(command, Revoke):
            return views.Reply(self.end_now(user, command.request_id))
        if isinstance(command, Cancel):
            return views.Reply(self.cancel(user, command.request_id))
        if isinstance(command, Extend):
            return views.Reply(self.ask_extension(user, command.request_id, command.duration, command.reason))
        assert isinstance(command, ShowResources)
        return views.resources_list(self.catalog)

    def _refuse_command(self, user: str, text: str, reason: str) -> None:
        detail = {"attempted": "command", "reason": reason}
        self.store.record(AuditEvent("refused", "-", user, _first_arg(text), self.clock(), "-", detail))

    def order_report(self, user: str, period: timedelta) -> str:
        check_admin(self.catalog, user, "ask for the access review")
        self.tasks.post_report(user, int(period.total_seconds()))
        return f"Building the access review of the last {format_duration(period)}; I'll DM you the files in a moment."

    def submit(self, user: str, command: RequestAccess) -> tuple[AccessRequest, Resource]:
        """A new request: approved by policy within its bound, else announced to the approvers."""
        resource = find_resource(self.catalog, command.resource)
        check_request(resource, command.duration, command.reason)
        if not resource.auto_approves(command.duration):  # stored with the job that announces it, or not at all
            return self._create(user, resource, command.duration, command.reason, announce=True), resource
        now = self.clock()
        request = self._create(user, resource, command.duration, command.reason)
        request, _ = self.store.transition(
            request.id, lambda r: apply(r, Action.APPROVE, AUTO, now, decided_by=AUTO, decided_at=now)
        )
        self.tasks.issue(request.id)
        self.tasks.sync_slack(request.id)
        return request, resource

    def break_glass(self, user: str, command: BreakGlass) -> str:
        """Access now without approval where the resource allows it: a loud alert and a mandatory review."""
        resource = find_resource(self.catalog, command.resource)
        check_breakglass(resource)
        check_request(resource, command.duration, command.reason)
        request = self._create(user, resource, command.duration, command.reason, breakglass=True)
        now = self.clock()
        self.store.transition(
            request.id, lambda r: apply(r, Action.BREAK_GLASS, user, now, decided_by=user, decided_at=now)
        )
        opened = AuditEvent("review opened", request.id, AUTO, resource.name, now, "open", {}, resource.provider)
        self.store.open_review(opened, now + self.catalog.breakglass_realert)
        self.tasks.issue(request.id)
        self.tasks.review_alert(request.id)
        self.tasks.sync_slack(request.id)
        return (
            f":rotating_light: Break-glass `{request.id}`: access to `{resource.name}` is on its way by DM."
            f" Security has been alerted, and someone else must review this use."
        )

    def _create(
        self,
        user: str,
        resource: Resource,
        duration: timedelta,
        reason: str,
        breakglass: bool = False,
        announce: bool = False,
    ) -> AccessRequest:
        now = self.clock()
        timed = not breakglass and not resource.auto_approves(duration)
        identity = self.identity_of(user, resource)  # a person the cloud cannot name is told now, not after approval
        while True:
            request, event = open_request(
                new_request_id(), user, resource.name, duration, reason, now, resource.provider
            )
            request = replace(
                request,
                identity=identity,
                breakglass=breakglass,
                auto_approve_at=now + resource.auto_approve_after if timed and resource.auto_approve_after else None,
                escalate_at=now + resource.escalate_after if timed and resource.escalate_after else None,
            )
            announced = partial(self.tasks.sync_slack, request.id) if announce else None
            if self.store.create(request, event, pending_until=now + resource.pending_timeout, also=announced):
                return request

    def identity_of(self, user: str, resource: Resource) -> dict[str, str]:
        """Who `user` is in the resource's cloud: the catalog's `identities:`, else their Slack profile email."""
        identity = dict(self.catalog.identities.get(user, {}))
        if needs_email(resource, identity):
            email = self.store.profile_email(user) or self._look_up_email(user, resource)
            if email:
                identity["email"] = email
        check_identity(resource, user, identity)
        return identity

    def _look_up_email(self, user: str, resource: Resource) -> str | None:
        """users.info, while the person waits: a slow or rate-limited Slack is a clear refusal, not a timeout."""
        try:
            email = self.notifier.user_email(user)
        except NotifyError as error:
            raise NotifyError(
                f"`{resource.name}` needs your email, and Slack did not give it to me just now ({error})."
                " Nothing was requested: try again in a minute."
            ) from None
        if email:
            self.store.remember_profile_email(user, email)
        return email

    def show_list(self, user: str, everyone: bool) -> views.Reply:
        now = self.clock()
        if not everyone:
            return views.request_list(self.store.open_requests_of(user), user, now, everyone=False)
        if not self._approves_anything(user):
            raise PolicyError("`/access list all` is for approvers and admins; `/access list` shows your own.")
        return views.request_list(self.store.all_open(LIST_LIMIT), user, now, everyone=True)

    def _approves_anything(self, user: str) -> bool:
        resources = list(self.catalog.resources.values())
        if any(is_approver(self.catalog, r, user, {}) for r in resources):
            return True
        groups = {g for r in resources for g in approver_groups(r)}
        return any(user in members for members in self.notifier.group_members(sorted(groups)).values())

    def end_now(self, user: str, request_id: str) -> str:
        """End an active grant before its time (the requester, an approver or an admin)."""
        request = self._load(request_id)
        resource = find_resource(self.catalog, request.resource)
        now = self.clock()
        groups = {} if user == request.requester else self._groups_of(resource, user, request)

        def change(current: AccessRequest) -> tuple[AccessRequest, AuditEvent]:
            check_end(self.catalog, resource, current, user, groups)
            return apply(current, Action.END_NOW, user, now, ending_by=user, expires_at=now)

        self._guarded(request, user, "end", change)
        self.tasks.revoke_now(request.id)
        return f"Ending `{request.id}` (`{request.resource}`) now. I'll confirm once the cloud has cut it."

    def cancel(self, user: str, request_id: str) -> str:
        request = self._load(request_id)
        now = self.clock()

        def change(current: AccessRequest) -> tuple[AccessRequest, AuditEvent]:
            check_cancel(current, user)
            return apply(current, Action.CANCEL, user, now, decided_at=now)

        self._guarded(request, user, "cancel", change)
        self.tasks.sync_slack(request.id)
        return f"Cancelled `{request.id}` (`{request.resource}`)."

    def ask_extension(self, user: str, request_id: str, more: timedelta, reason: str) -> str:
        """More time on an active grant, through the same policy as a request and within its maximum in all."""
        request = self._load(request_id)
        resource = find_resource(self.catalog, request.resource)
        now = self.clock()
        check_extension_reason(resource, reason)
        automatic = resource.auto_approves(request.granted_for + more)

        def change(current: AccessRequest) -> tuple[AccessRequest, AuditEvent]:
            if user != current.requester:
                raise PolicyError(f"Only <@{current.requester}>, who holds `{current.id}`, can ask to extend it.")
            check_extension(resource, current, more, now)
            return ask_extension(current, more, reason, now)

        self._guarded(request, user, "extend", change)
        if automatic:
            extended, _ = self.store.transition(request.id, lambda r: extend(r, AUTO, now))
            self.tasks.renew(request.id)
            return f"Extended `{request.id}` by policy: it now runs until {views.when(extended.expires_at or now)}."
        self.tasks.sync_slack(request.id)
        return f"Asked {format_duration(more)} more for `{request.id}`; I'll DM you when the approvers decide."

    def _guarded(self, request: AccessRequest, user: str, attempted: str, change: Change) -> AccessRequest:
        """Apply `change` to the fresh state; a refusal (policy or state) is audited and re-raised."""
        try:
            updated, _ = self.store.transition(request.id, change)
        except (PolicyError, InvalidTransition) as error:
            self._refuse(request, user, attempted, error)
            raise
        return updated

    # clicks and forms

    def decide(
        self,
        request_id: str,
        clicker: str,
        approving: bool,
        delivery: str | None = None,
        note: str | None = None,
    ) -> AccessRequest:
        """An Approve or Deny (of a request, or of an extension). The stored request is the truth; the button
        only names it."""
        request, groups = self.authorize_decision(request_id, clicker, "approve" if approving else "deny", delivery)
        resource = find_resource(self.catalog, request.resource)
        now = self.clock()

        def change(current: AccessRequest) -> tuple[AccessRequest, AuditEvent]:
            check_approver(self.catalog, resource, current, clicker, groups)  # again, on the fresh state
            if approving:
                return approve(current, clicker, resource.approvals, now)
            return deny(current, clicker, now, note)

        updated = self._guarded(request, clicker, "approve" if approving else "deny", change)
        if updated.status is Status.APPROVED:
            self.tasks.issue(updated.id)
        if updated.status is Status.ACTIVE and updated.expires_at != request.expires_at:
            self.tasks.renew(updated.id)
        if not approving and updated.status is Status.ACTIVE:  # an extension denied: the grant itself runs on
            self.notifier.tell(updated.requester, views.extension_denied(updated, clicker))
        self.tasks.sync_slack(updated.id)
        return updated

    def authorize_decision(
        self, request_id: str, clicker: str, attempted: str, delivery: str | None = None
    ) -> tuple[AccessRequest, dict[str, frozenset[str]]]:
        """The request a button names and the approver groups looked up, if `clicker` may decide on it now
        (checked before a Deny form is opened, and again when it is submitted)."""
        request = self._load_clicked(request_id, clicker, attempted)
        resource = find_resource(self.catalog, request.resource)
        groups = self._groups_of(resource, clicker, request)
        try:
            check_approver(self.catalog, resource, request, clicker, groups)
            done = "approved" if attempted == "approve" else "denied"
            if request.status is Status.ACTIVE and request.extend_by is None:
                raise InvalidTransition(f"`{request.id}` is already active; it can no longer be {done}.")
            if request.status not in (Status.PENDING, Status.ACTIVE):
                raise InvalidTransition(f"`{request.id}` is {request.status}; it can no longer be {done}.")
            if delivery and not self.store.first_delivery(delivery):
                raise InvalidTransition(f"This click was already handled ({DUPLICATE}).")
        except (PolicyError, InvalidTransition) as error:
            self._refuse(request, clicker, attempted, error)
            raise
        return request, groups

    def submit_form(self, user: str, callback_id: str, values: Mapping[str, str], view_id: str) -> FormErrors:
        """A submitted modal: errors go back onto the fields; nothing is changed unless everything is valid.

        A form submitted twice (Slack retries, a double click) is acted on once.
        """
        delivery = f"view:{view_id}"
        if not self.store.first_delivery(delivery):
            self._refuse_command(user, callback_id, DUPLICATE)
            return {}
        try:
            self._act_on_form(user, callback_id, values)
        except JitError as error:
            self.store.forget_delivery(delivery)  # the person corrects the form and submits the same view again
            if not error.audited:
                self._refuse_command(user, callback_id, str(error))
            return {_field_of(error, callback_id): str(error)}
        return {}

    def _act_on_form(self, user: str, callback_id: str, values: Mapping[str, str]) -> None:
        reason = values.get(ids.REASON_INPUT, "")
        if callback_id == ids.REQUEST_FORM:  # each check under its own field, before anything changes
            resource = _on_field(ids.RESOURCE_INPUT, find_resource, self.catalog, values.get(ids.RESOURCE_INPUT, ""))
            duration = _form_duration(values)
            _on_field(ids.DURATION_INPUT, check_bounds, resource, duration)
            _on_field(ids.REASON_INPUT, check_reason, resource, reason)
            request, resource = self.submit(user, RequestAccess(resource.name, duration, reason))
            self.notifier.tell(user, views.request_received(request, resource))
        elif callback_id == ids.EXTEND_FORM:
            resource = find_resource(self.catalog, self._load(values["request_id"]).resource)
            _on_field(ids.REASON_INPUT, check_extension_reason, resource, reason)
            self.notifier.tell(user, self.ask_extension(user, values["request_id"], _form_duration(values), reason))
        elif callback_id == ids.DENY_FORM:
            self.decide(values["request_id"], user, approving=False, note=reason or None)
        else:
            raise UsageError("That form is not one of jitbot's.")

    def review(self, request_id: str, reviewer: str, acknowledge: bool) -> None:
        """Acknowledge or Flag a break-glass use: by an approver or admin other than the person who used it."""
        request = self._load_clicked(request_id, reviewer, "review")
        resource = find_resource(self.catalog, request.resource)
        now = self.clock()
        outcome = "acknowledged" if acknowledge else "flagged"
        try:
            if reviewer == request.requester:
                raise PolicyError("Someone other than you must review your own break-glass access.")
            if not is_approver(self.catalog, resource, reviewer, self._groups_of(resource, reviewer, request)):
                raise PolicyError(f"Only the approvers of `{resource.name}` or an admin can review break-glass use.")
            event = AuditEvent(
                f"review {outcome}", request.id, reviewer, resource.name, now, outcome, {}, request.provider
            )
            if not request.breakglass or not self.store.close_review(request.id, event, outcome):
                raise InvalidTransition(f"The review of `{request.id}` is already closed.")
        except (PolicyError, InvalidTransition) as error:
            self._refuse(request, reviewer, "review", error)
            raise
        self.tasks.review_alert(request.id)

    def _refuse(self, request: AccessRequest, user: str, attempted: str, error: JitError) -> None:
        """Audit a refusal about one request, once: the error carries that it was recorded."""
        self.store.record(refusal(request, user, attempted, str(error), self.clock()))
        error.audited = True

    def _groups_of(self, resource: Resource, user: str, request: AccessRequest) -> dict[str, frozenset[str]]:
        """User-group members, looked up at click time, and only when the user is not listed by id."""
        if user == request.requester or is_approver(self.catalog, resource, user, {}, request):
            return {}
        try:
            return self.notifier.group_members(approver_groups(resource))
        except JitError as error:
            self._refuse(request, user, "lookup", error)
            raise

    def _load(self, request_id: str) -> AccessRequest:
        if len(request_id) != REQUEST_ID_LENGTH or not request_id.startswith("r-"):
            raise NotFound(f"`{echo(request_id)}` is not a request id (they look like `r-7k3q9x`; see `/access list`).")
        return self.store.get(request_id)

    def _load_clicked(self, request_id: str, clicker: str, attempted: str) -> AccessRequest:
        try:
            return self._load(request_id)
        except NotFound as error:
            detail = {"attempted": attempted, "reason": str(error), "value": echo(request_id)}
            self.store.record(AuditEvent("refused", "-", clicker, "-", self.clock(), "-", detail))
            error.audited = True
            raise


class FormError(JitError):
    """A form value that is wrong; `field` names the input it belongs under."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


def _form_duration(values: Mapping[str, str]) -> timedelta:
    try:
        return parse_duration(values.get(ids.DURATION_INPUT, ""))
    except UsageError as error:
        raise FormError(str(error), ids.DURATION_INPUT) from None


def _on_field(field: str, check: Callable[..., Any], *args: Any) -> Any:
    try:
        return check(*args)
    except JitError as error:
        raise FormError(str(error), field) from None


def _field_of(error: JitError, callback_id: str) -> str:
    """Where a refusal shows in the form: on its field, else where the form's decision is (a Deny's reason,
    an extension's duration)."""
    if isinstance(error, FormError):
        return error.field
    return ids.REASON_INPUT if callback_id == ids.DENY_FORM else ids.DURATION_INPUT


def _first_arg(text: str) -> str:
    words = text.split()
    return words[1][:64] if len(words) > 1 else "-"
