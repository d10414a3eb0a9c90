"""Use cases that start in Slack: read the command, click or form, apply policy, change state, hand off to jobs.

Nothing here calls a cloud: approving enqueues the issue job; Slack messages are brought up to date by jobs.
Every refusal is audited and explained to the person.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from datetime import timedelta
from functools import partial
from typing import Any, TypeVar

from jitbot.app.people import Origin, People
from jitbot.core.catalog import Catalog, Resource
from jitbot.core.clock import Clock, utcnow
from jitbot.core.commands import (
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
    parse_page,
)
from jitbot.core.domain import (
    AccessRequest,
    Status,
    approve,
    approve_by_policy,
    ask_extension,
    break_glass,
    cancel,
    check_in_time,
    deny,
    end_now,
    extend,
    new_request_id,
    open_request,
    refusal,
    time_out,
)
from jitbot.core.durations import format_duration, parse_duration
from jitbot.core.eligibility import check_identity_domain, withdrawn_note
from jitbot.core.errors import (
    InvalidTransition,
    JitError,
    NotEligible,
    NotFound,
    PolicyError,
    TimedOut,
    UsageError,
    echo,
)
from jitbot.core.events import AUTO, AuditEvent, EventName
from jitbot.core.policy import (
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
from jitbot.core.review import close_review, open_review
from jitbot.jobs.tasks import Tasks
from jitbot.slack import dms, forms, ids, lists, views
from jitbot.slack.home import Homes
from jitbot.slack.notify import Notifier, NotifyError
from jitbot.store import Store
from jitbot.store.requests import Change

DUPLICATE = "duplicate delivery: a replay, or Slack sent it twice"
DUPLICATE_WAIT = timedelta(seconds=2)  # a concurrent twin is still working on the first answer
REQUEST_ID_LENGTH = 8
LIST_LIMIT = 200
FormErrors = dict[str, str]  # block id → the message Slack shows under that field
SLACK_UNAVAILABLE = "slack unavailable"
UNKNOWN = "unknown"  # the resource of a refused command that names none in the catalog
T = TypeVar("T")


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
        self.people = People(catalog, notifier, store)
        self.homes = Homes(catalog, store, notifier, self.people, clock)

    # commands

    def handle_command(
        self, user: str, text: str, delivery: str | None = None, origin: Origin | None = None
    ) -> views.Reply:
        """The ephemeral reply to `/access <text>`. Refusals are audited and explained.

        `delivery` is Slack's trigger_id: the same command delivered twice (a replay) gets the first answer
        again and changes nothing. `origin` is the team (and enterprise) the payload says it came from.
        """
        if not delivery:
            return self._answer(user, text, delivery, origin)
        first, cached = self.store.deliveries.first_command(delivery, user)
        if not first:
            self._refuse_command(user, text, DUPLICATE)
            earlier = self.store.deliveries.delivery_reply(delivery, wait=DUPLICATE_WAIT)
            return views.Reply(**json.loads(earlier)) if earlier else views.Reply("This command is being handled.")
        with self.people.asking(user, cached):
            return self._answer(user, text, delivery, origin)

    def _answer(self, user: str, text: str, delivery: str | None, origin: Origin | None) -> views.Reply:
        """The reply to a command delivered for the first time, kept for a repeat of its delivery."""
        answered = False
        try:
            command = parse_command(text)
            reply = self._run(user, command, delivery, origin)
            answered = isinstance(command, RequestAccess)  # kept with the request itself (submit)
        except JitError as error:
            if not error.audited:  # a refusal about one request was recorded with it
                self._refuse_command(user, text, str(error), error.code)
            reply = views.Reply(str(error))
        if delivery and not answered:
            self.store.deliveries.save_delivery_reply(delivery, _kept(reply))
        return reply

    def _run(self, user: str, command: Command, delivery: str | None, origin: Origin | None) -> views.Reply:
        if isinstance(command, ShowHelp):
            return views.Reply(USAGE + "\n" + self._offer_line(user, origin))
        if isinstance(command, ShowReport):
            return views.Reply(self.order_report(user, command.period))
        if isinstance(command, RequestAccess):
            return _received(*self.submit(user, command, origin, delivery))
        if isinstance(command, BreakGlass):
            return views.Reply(self.break_glass(user, command, origin))
        if isinstance(command, OpenRequestForm):
            if not delivery:
                raise UsageError("Slack sent no trigger to open the form with; type the request in full instead.")
            offered = self._offered(user, origin)
            if not offered:
                return views.Reply(lists.offer_line(offered))
            self.notifier.open_view(delivery, forms.request_form(offered))
            return views.Reply("")
        if isinstance(command, ShowList):
            return self.show_list(user, command)
        if isinstance(command, Revoke):
            return views.Reply(self.end_now(user, command.request_id))
        if isinstance(command, Cancel):
            return views.Reply(self.cancel(user, command.request_id))
        if isinstance(command, Extend):
            return views.Reply(self.ask_extension(user, command.request_id, command.duration, command.reason))
        assert isinstance(command, ShowResources)
        return lists.resources_list(self._offered(user, origin))

    def _refuse_command(self, user: str, text: str, reason: str, code: str | None = None) -> None:
        """Audit a refused command. Its `resource` is a catalog name, `-` when none was typed, else `unknown`
        with the typed word (escaped, cut short) in `detail`: what a user types never fills a column that
        auditors and exports read as a catalog value (a planted `=HYPERLINK(…)`, say)."""
        detail = {"attempted": "command", "reason": reason} | ({"refusal": code} if code else {})
        named = _first_arg(text)
        if named != "-" and self.catalog.resource(named) is None:
            named, detail["typed"] = UNKNOWN, echo(named)
        self.store.chain.record(AuditEvent(EventName.REFUSED, "-", user, named, self.clock(), "-", detail))

    def _offer_line(self, user: str, origin: Origin | None) -> str:
        """Help's last line: what the person may ask for; help itself never fails for want of Slack."""
        try:
            return lists.offer_line(self._offered(user, origin))
        except NotEligible as error:
            return str(error)

    def _offered(self, user: str, origin: Origin | None = None) -> list[Resource]:
        return _asking_slack(lambda: self.people.offered(user, origin))

    def channel_joined(self, channel: str) -> None:
        """jitbot was invited to `channel`: every request waiting to be announced there goes out now, once
        (jitbot.slack.repair held them; the announcement itself is idempotent)."""
        for request_id in self.store.slack.unblock_channel(channel):
            self.tasks.sync_slack(request_id)

    def check_asker(
        self, user: str, resource: Resource, breakglass: bool = False, origin: Origin | None = None
    ) -> None:
        """NotEligible unless `user` may ask for `resource` (or break glass on it); Slack silent is a refusal."""
        refused = _asking_slack(lambda: self.people.refusal(resource, user, breakglass, origin=origin))
        if refused is not None:
            raise refused

    def order_report(self, user: str, period: timedelta) -> str:
        check_admin(self.catalog, user, "ask for the access review")
        self.tasks.post_report(user, int(period.total_seconds()))
        return f"Building the access review of the last {format_duration(period)}; I'll DM you the files in a moment."

    def submit(
        self, user: str, command: RequestAccess, origin: Origin | None = None, delivery: str | None = None
    ) -> tuple[AccessRequest, Resource]:
        """A new request by someone who may ask: approved by policy within its bound, else announced. The reply to
        the command's `delivery` is kept as the request is: one announced is stored with its job and its reply."""
        resource = find_resource(self.catalog, command.resource)
        self.check_asker(user, resource, origin=origin)
        check_request(resource, command.duration, command.reason)
        if not resource.auto_approves(command.duration):  # stored with the job that announces it, or not at all
            request = self._create(user, resource, command.duration, command.reason, announce=True, delivery=delivery)
            return request, resource
        now = self.clock()
        request = self._create(user, resource, command.duration, command.reason)
        request, _ = self.store.requests.transition(request.id, lambda r: approve_by_policy(r, now))
        self.tasks.issue(request.id)
        self.tasks.sync_slack(request.id)
        if delivery:
            self.store.deliveries.save_delivery_reply(delivery, _kept(_received(request, resource)))
        return request, resource

    def break_glass(self, user: str, command: BreakGlass, origin: Origin | None = None) -> str:
        """Access now without approval where the resource allows it: a loud alert and a mandatory review."""
        resource = find_resource(self.catalog, command.resource)
        check_breakglass(resource)
        self.check_asker(user, resource, breakglass=True, origin=origin)
        check_request(resource, command.duration, command.reason)
        request = self._create(user, resource, command.duration, command.reason, breakglass=True)
        now = self.clock()
        self.store.requests.transition(request.id, lambda r: break_glass(r, user, now))
        self.store.reviews.open_review(open_review(request, now), now + self.catalog.breakglass_realert)
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
        delivery: str | None = None,
    ) -> AccessRequest:
        """Store a new request; `announce`d, with the job that posts it to the approvers and the reply to the
        command's `delivery`, in the same write."""
        now = self.clock()
        deadline = now + resource.pending_timeout  # kept on the request too: decisions check it (domain.check_in_time)
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
                decide_by=deadline,
            )
            announced = partial(self._announce, request, resource, delivery) if announce else None
            if self.store.requests.create(request, event, pending_until=deadline, also=announced):
                return request

    def _announce(self, request: AccessRequest, resource: Resource, delivery: str | None, pipe: Any) -> None:
        self.tasks.sync_slack(request.id, pipe)
        if delivery:
            self.store.deliveries.save_delivery_reply(delivery, _kept(_received(request, resource)), pipe)

    def identity_of(self, user: str, resource: Resource) -> dict[str, str]:
        """Who `user` is in the resource's cloud: the catalog's `identities:`, else their Slack profile email
        (which must be in the resource's `identity_domains`, when it names any)."""
        identity = dict(self.catalog.identities.get(user, {}))
        if needs_email(resource, identity):
            email = _asking_slack(lambda: self.people.person(user)).email
            if email:
                identity["email"] = email
        check_identity(resource, user, identity)
        check_identity_domain(resource, identity)
        return identity

    def show_list(self, user: str, page: ShowList) -> views.Reply:
        now = self.clock()
        if not page.everyone:
            return lists.request_list(self.store.requests.open_requests_of(user), user, now, page)
        approves = self._approves(user)
        if not approves:
            raise PolicyError("`/access list all` is for approvers and admins; `/access list` shows your own.")
        shown = [r for r in self.store.requests.all_open(LIST_LIMIT) if r.resource in approves]
        return lists.request_list(shown, user, now, page)

    def show_page(self, user: str, value: str) -> views.Reply:
        """A More click: the page it names, for the clicker, allowed and refused (and audited) exactly as the
        command that showed the list; the click's value says only which list and where."""
        try:
            return self.show_list(user, parse_page(value))
        except JitError as error:
            self._refuse_command(user, "list", str(error), error.code)
            raise

    def _approves(self, user: str) -> set[str]:
        """The resources `user` approves (an admin: all of them), group membership asked of Slack now."""
        resources = list(self.catalog.resources.values())
        groups = {g for r in resources for g in approver_groups(r)}
        members = self.notifier.group_members(sorted(groups)) if user not in self.catalog.admins else {}
        return {r.name for r in resources if is_approver(self.catalog, r, user, members)}

    def end_now(self, user: str, request_id: str) -> str:
        """End an active grant before its time (the requester, an approver or an admin)."""
        request = self._load(request_id)
        resource = find_resource(self.catalog, request.resource)
        now = self.clock()
        groups = {} if user == request.requester else self._groups_of(resource, user, request)

        def change(current: AccessRequest) -> tuple[AccessRequest, AuditEvent]:
            check_end(self.catalog, resource, current, user, groups)
            return end_now(current, user, now)

        self._guarded(request, user, "end", change)
        self.tasks.revoke_now(request.id)
        return f"Ending `{request.id}` (`{request.resource}`) now. I'll confirm once the cloud has cut it."

    def cancel(self, user: str, request_id: str) -> str:
        request = self._load(request_id)
        now = self.clock()

        def change(current: AccessRequest) -> tuple[AccessRequest, AuditEvent]:
            check_cancel(current, user)
            return cancel(current, user, now)

        self._guarded(request, user, "cancel", change)
        self.tasks.sync_slack(request.id)
        return f"Cancelled `{request.id}` (`{request.resource}`)."

    def ask_extension(self, user: str, request_id: str, more: timedelta, reason: str) -> str:
        """More time on an active grant, through the same policy as a request and within its maximum in all."""
        request = self._load(request_id)
        resource = find_resource(self.catalog, request.resource)
        now = self.clock()
        check_extension_reason(resource, reason)
        if user == request.requester:  # anyone else is refused below, on the fresh state
            self._check_asker_of(request, resource)
        automatic = resource.auto_approves(request.granted_for + more)

        def change(current: AccessRequest) -> tuple[AccessRequest, AuditEvent]:
            if user != current.requester:
                raise PolicyError(f"Only <@{current.requester}>, who holds `{current.id}`, can ask to extend it.")
            check_extension(resource, current, more, now)
            return ask_extension(current, more, reason, now, resource.pending_timeout)

        self._guarded(request, user, "extend", change)
        if automatic:
            extended, _ = self.store.requests.transition(request.id, lambda r: extend(r, AUTO, now))
            self.tasks.renew(request.id)
            return f"Extended `{request.id}` by policy: it now runs until {views.when(extended.expires_at or now)}."
        self.tasks.sync_slack(request.id)
        return f"Asked {format_duration(more)} more for `{request.id}`; I'll DM you when the approvers decide."

    def _check_asker_of(self, request: AccessRequest, resource: Resource) -> None:
        """The requester may still ask (checked again at extension); a refusal is audited on the request."""
        try:
            self.check_asker(request.requester, resource, request.breakglass)
        except NotEligible as error:
            self._refuse(request, request.requester, "extend", error)
            raise

    def _still_eligible(self, request: AccessRequest, resource: Resource, clicker: str) -> None:
        """Asked afresh at approval: a requester who may no longer ask (removed from a group, made a guest) is
        denied by policy, and the approver told why; a Slack that cannot say refuses the click, changing nothing."""
        try:
            refused = self.people.refusal(resource, request.requester, request.breakglass, fresh=True)
        except NotifyError as error:
            silent = NotEligible(
                f"Slack did not say just now whether <@{request.requester}> may still ask for `{resource.name}`"
                f" ({error}). Nothing was approved: try again in a minute.",
                SLACK_UNAVAILABLE,
            )
            self._refuse(request, clicker, "approve", silent)
            raise silent from None
        if refused is None:
            return
        now, note = self.clock(), withdrawn_note(resource, refused)
        try:
            denied, _ = self.store.requests.transition(request.id, lambda r: deny(r, AUTO, now, note))
        except TimedOut:  # past its deadline: timed out instead (by the caller), and the click refused as such
            raise
        except InvalidTransition:  # decided meanwhile: the click is refused all the same
            pass
        else:
            if denied.status is Status.ACTIVE:  # an extension denied: the grant runs on, and its holder is told
                self.notifier.tell(denied.requester, dms.extension_denied(denied, AUTO))
        self.tasks.sync_slack(request.id)
        withdrawn = PolicyError(f"Not approved: <@{request.requester}> {note}. I denied `{request.id}` and told them.")
        self._refuse(request, clicker, "approve", withdrawn, refused.code)
        raise withdrawn

    def _guarded(self, request: AccessRequest, user: str, attempted: str, change: Change) -> AccessRequest:
        """Apply `change` to the fresh state; a refusal (policy or state) is audited and re-raised."""
        try:
            updated, _ = self.store.requests.transition(request.id, change)
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

        with self._timing_out(request.id):  # the deadline may pass while Slack is asked
            if approving:
                self._still_eligible(request, resource, clicker)
            updated = self._guarded(request, clicker, "approve" if approving else "deny", change)
        if updated.status is Status.APPROVED:
            self.tasks.issue(updated.id)
        if updated.status is Status.ACTIVE and updated.expires_at != request.expires_at:
            self.tasks.renew(updated.id)
        if not approving and updated.status is Status.ACTIVE:  # an extension denied: the grant itself runs on
            self.notifier.tell(updated.requester, dms.extension_denied(updated, clicker))
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
        with self._timing_out(request.id):
            try:
                check_approver(self.catalog, resource, request, clicker, groups)
                done = "approved" if attempted == "approve" else "denied"
                if request.status is Status.ACTIVE and request.extend_by is None:
                    raise InvalidTransition(f"`{request.id}` is already active; it can no longer be {done}.")
                if request.status not in (Status.PENDING, Status.ACTIVE):
                    raise InvalidTransition(f"`{request.id}` is {request.status}; it can no longer be {done}.")
                check_in_time(request, self.clock())  # a Deny form is not opened on what has timed out
                if delivery and not self.store.deliveries.first_delivery(delivery):
                    raise InvalidTransition(f"This click was already handled ({DUPLICATE}).")
            except (PolicyError, InvalidTransition) as error:
                self._refuse(request, clicker, attempted, error)
                raise
        return request, groups

    @contextlib.contextmanager
    def _timing_out(self, request_id: str) -> Iterator[None]:
        """A decision refused as past its deadline times the request (or its extension) out right here, as the
        reconciler would have: when the reconciler runs late, the clicker still sees the truth at once."""
        try:
            yield
        except TimedOut:
            self._time_out(request_id)
            raise

    def _time_out(self, request_id: str) -> None:
        now = self.clock()
        try:
            timed_out, _ = self.store.requests.transition(request_id, lambda r: time_out(r, now))
        except InvalidTransition:
            return  # the reconciler (or another click) timed it out first
        self.tasks.sync_slack(request_id)  # queued first: the approval message is updated even if the DM fails
        if timed_out.status is Status.ACTIVE:  # an extension timed out: the grant runs on, and its holder is told
            self.notifier.tell(timed_out.requester, dms.extension_timed_out(timed_out))

    def submit_form(
        self, user: str, callback_id: str, values: Mapping[str, str], view_id: str, origin: Origin | None = None
    ) -> FormErrors:
        """A submitted modal: errors go back onto the fields; nothing is changed unless everything is valid.

        A form submitted twice (Slack retries, a double click) is acted on once.
        """
        delivery = f"view:{view_id}"
        if not self.store.deliveries.first_delivery(delivery):
            self._refuse_command(user, callback_id, DUPLICATE)
            return {}
        try:
            self._act_on_form(user, callback_id, values, origin)
        except JitError as error:
            # the person corrects the form and submits the same view again
            self.store.deliveries.forget_delivery(delivery)
            if not error.audited:
                self._refuse_command(user, callback_id, str(error), error.code)
            return {_field_of(error, callback_id): str(error)}
        return {}

    def _act_on_form(self, user: str, callback_id: str, values: Mapping[str, str], origin: Origin | None) -> None:
        reason = values.get(ids.REASON_INPUT, "")
        if callback_id == ids.REQUEST_FORM:  # each check under its own field, before anything changes
            resource = _on_field(ids.RESOURCE_INPUT, find_resource, self.catalog, values.get(ids.RESOURCE_INPUT, ""))
            _on_field(ids.RESOURCE_INPUT, self.check_asker, user, resource, False, origin)
            duration = _form_duration(values)
            _on_field(ids.DURATION_INPUT, check_bounds, resource, duration)
            _on_field(ids.REASON_INPUT, check_reason, resource, reason)
            request, resource = self.submit(user, RequestAccess(resource.name, duration, reason), origin)
            self.notifier.tell(user, dms.request_received(request, resource))
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
        try:
            if reviewer == request.requester:
                raise PolicyError("Someone other than you must review your own break-glass access.")
            if not is_approver(self.catalog, resource, reviewer, self._groups_of(resource, reviewer, request)):
                raise PolicyError(f"Only the approvers of `{resource.name}` or an admin can review break-glass use.")
            event = close_review(request, reviewer, acknowledge, now)
            if not request.breakglass or not self.store.reviews.close_review(event):
                raise InvalidTransition(f"The review of `{request.id}` is already closed.")
        except (PolicyError, InvalidTransition) as error:
            self._refuse(request, reviewer, "review", error)
            raise
        self.tasks.review_alert(request.id)

    def _refuse(
        self, request: AccessRequest, user: str, attempted: str, error: JitError, code: str | None = None
    ) -> None:
        """Audit a refusal about one request, once: the error carries that it was recorded."""
        self.store.chain.record(refusal(request, user, attempted, str(error), self.clock(), code or error.code))
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
        return self.store.requests.get(request_id)

    def _load_clicked(self, request_id: str, clicker: str, attempted: str) -> AccessRequest:
        try:
            return self._load(request_id)
        except NotFound as error:
            detail = {"attempted": attempted, "reason": str(error), "value": echo(request_id)}
            self.store.chain.record(AuditEvent(EventName.REFUSED, "-", clicker, "-", self.clock(), "-", detail))
            error.audited = True
            raise


class FormError(JitError):
    """A form value that is wrong; `field` names the input it belongs under."""

    def __init__(self, message: str, field: str, code: str | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.code = code


def _form_duration(values: Mapping[str, str]) -> timedelta:
    try:
        return parse_duration(values.get(ids.DURATION_INPUT, ""))
    except UsageError as error:
        raise FormError(str(error), ids.DURATION_INPUT) from None


def _on_field(field: str, check: Callable[..., Any], *args: Any) -> Any:
    try:
        return check(*args)
    except JitError as error:
        raise FormError(str(error), field, error.code) from None


def _field_of(error: JitError, callback_id: str) -> str:
    """Where a refusal shows in the form: on its field, else where the form's decision is (a Deny's reason,
    an extension's duration)."""
    if isinstance(error, FormError):
        return error.field
    return ids.REASON_INPUT if callback_id == ids.DENY_FORM else ids.DURATION_INPUT


def _received(request: AccessRequest, resource: Resource) -> views.Reply:
    return views.Reply(dms.request_received(request, resource))


def _kept(reply: views.Reply) -> str:
    """A reply as it is kept for a repeat of its delivery (Deliveries.delivery_reply)."""
    return json.dumps(vars(reply))


def _asking_slack(question: Callable[[], T]) -> T:
    """What Slack must answer for a person to ask: when it cannot (timeout, 429), a refusal, never an allow."""
    try:
        return question()
    except NotifyError as error:
        raise NotEligible(
            f"Slack did not say who you are just now ({error}), so I cannot tell what you may ask for."
            " Nothing was requested: try again in a minute.",
            SLACK_UNAVAILABLE,
        ) from None


def _first_arg(text: str) -> str:
    words = text.split()
    return words[1] if len(words) > 1 else "-"
