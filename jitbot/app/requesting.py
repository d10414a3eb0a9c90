"""Use cases of the person who asks: a request, break glass, an extension, ending or cancelling, the access review.

Each takes plain arguments and returns what became of the request (or raises the JitError that says why not);
nothing here calls a cloud or knows how Slack shows it: approving enqueues the issue job, and jobs bring Slack up to
date. Every refusal is audited (Guard).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from functools import partial
from typing import Any, TypeVar

from jitbot.app.guard import SLACK_UNAVAILABLE, Guard
from jitbot.app.people import Origin
from jitbot.app.ports import Jobs
from jitbot.core.catalog import Resource
from jitbot.core.commands import BreakGlass, RequestAccess
from jitbot.core.domain import (
    AccessRequest,
    approve_by_policy,
    ask_extension,
    break_glass,
    cancel,
    end_now,
    extend,
    new_request_id,
    open_request,
)
from jitbot.core.eligibility import check_identity_domain
from jitbot.core.errors import MessengerError, NotEligible, PolicyError
from jitbot.core.events import AUTO, AuditEvent
from jitbot.core.policy import (
    approver_groups,
    check_admin,
    check_breakglass,
    check_cancel,
    check_end,
    check_extension,
    check_extension_reason,
    check_identity,
    check_request,
    find_resource,
    is_approver,
    needs_email,
)
from jitbot.core.review import open_review

LIST_LIMIT = 200
# What the caller keeps with a new request (the answer to the command that asked): in the write that stores it
# when it is announced (the pipeline), else once approved by policy (None).
Keep = Callable[[AccessRequest, Resource, Any], None]
T = TypeVar("T")


class Requesting:
    def __init__(self, guard: Guard, jobs: Jobs) -> None:
        self.guard = guard
        self.catalog = guard.catalog
        self.store = guard.store
        self.jobs = jobs
        self.clock = guard.clock

    def offered(self, user: str, origin: Origin | None = None) -> list[Resource]:
        """What `user` may ask for; a directory that cannot say is a refusal."""
        return _asking_directory(lambda: self.guard.people.offered(user, origin))

    def check_asker(
        self, user: str, resource: Resource, breakglass: bool = False, origin: Origin | None = None
    ) -> None:
        """NotEligible unless `user` may ask for `resource` (or break glass on it); a silent directory refuses."""
        refused = _asking_directory(lambda: self.guard.people.refusal(resource, user, breakglass, origin=origin))
        if refused is not None:
            raise refused

    def order_report(self, user: str, period: timedelta) -> None:
        """The access review of the last `period`, built by a worker and sent to the admin who asked."""
        check_admin(self.catalog, user, "ask for the access review")
        self.jobs.post_report(user, int(period.total_seconds()))

    def submit(
        self, user: str, command: RequestAccess, origin: Origin | None = None, keep: Keep | None = None
    ) -> tuple[AccessRequest, Resource]:
        """A new request by someone who may ask: approved by policy within its bound, else announced; what the
        caller `keep`s is stored as the request is (one announced: with its job, in the same write)."""
        resource = find_resource(self.catalog, command.resource)
        self.check_asker(user, resource, origin=origin)
        check_request(resource, command.duration, command.reason)
        if not resource.auto_approves(command.duration):  # stored with the job that announces it, or not at all
            request = self._create(user, resource, command.duration, command.reason, announce=True, keep=keep)
            return request, resource
        now = self.clock()
        request = self._create(user, resource, command.duration, command.reason)
        request, _ = self.store.requests.transition(request.id, lambda r: approve_by_policy(r, now))
        self.jobs.issue(request.id)
        self.jobs.sync_slack(request.id)
        if keep:
            keep(request, resource, None)
        return request, resource

    def break_glass(
        self, user: str, command: BreakGlass, origin: Origin | None = None
    ) -> tuple[AccessRequest, Resource]:
        """Access now without approval where the resource allows it: a loud alert and a mandatory review."""
        resource = find_resource(self.catalog, command.resource)
        check_breakglass(resource)
        self.check_asker(user, resource, breakglass=True, origin=origin)
        check_request(resource, command.duration, command.reason)
        request = self._create(user, resource, command.duration, command.reason, breakglass=True)
        now = self.clock()
        self.store.requests.transition(request.id, lambda r: break_glass(r, user, now))
        self.store.reviews.open_review(open_review(request, now), now + self.catalog.breakglass_realert)
        self.jobs.issue(request.id)
        self.jobs.review_alert(request.id)
        self.jobs.sync_slack(request.id)
        return request, resource

    def _create(
        self,
        user: str,
        resource: Resource,
        duration: timedelta,
        reason: str,
        breakglass: bool = False,
        announce: bool = False,
        keep: Keep | None = None,
    ) -> AccessRequest:
        """Store a new request; `announce`d, with the job that posts it to the approvers and what the caller
        `keep`s, in the same write."""
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
            announced = partial(self._announce, request, resource, keep) if announce else None
            if self.store.requests.create(request, event, pending_until=deadline, also=announced):
                return request

    def _announce(self, request: AccessRequest, resource: Resource, keep: Keep | None, pipe: Any) -> None:
        self.jobs.sync_slack(request.id, pipe)
        if keep:
            keep(request, resource, pipe)

    def identity_of(self, user: str, resource: Resource) -> dict[str, str]:
        """Who `user` is in the resource's cloud: the catalog's `identities:`, else their profile email (which
        must be in the resource's `identity_domains`, when it names any)."""
        identity = dict(self.catalog.identities.get(user, {}))
        if needs_email(resource, identity):
            email = _asking_directory(lambda: self.guard.people.person(user)).email
            if email:
                identity["email"] = email
        check_identity(resource, user, identity)
        check_identity_domain(resource, identity)
        return identity

    def open_requests(self, user: str, everyone: bool) -> list[AccessRequest]:
        """`user`'s open requests, or (`everyone`) the open requests of every resource they approve."""
        if not everyone:
            return self.store.requests.open_requests_of(user)
        approves = self._approves(user)
        if not approves:
            raise PolicyError("`/access list all` is for approvers and admins; `/access list` shows your own.")
        return [r for r in self.store.requests.all_open(LIST_LIMIT) if r.resource in approves]

    def _approves(self, user: str) -> set[str]:
        """The resources `user` approves (an admin: all of them), group membership asked of the directory now."""
        resources = list(self.catalog.resources.values())
        groups = {g for r in resources for g in approver_groups(r)}
        members = self.guard.directory.group_members(sorted(groups)) if user not in self.catalog.admins else {}
        return {r.name for r in resources if is_approver(self.catalog, r, user, members)}

    def end_now(self, user: str, request_id: str) -> AccessRequest:
        """End an active grant before its time (the requester, an approver or an admin)."""
        request = self.guard.load(request_id)
        resource = find_resource(self.catalog, request.resource)
        now = self.clock()
        groups = {} if user == request.requester else self.guard.groups_of(resource, user, request)

        def change(current: AccessRequest) -> tuple[AccessRequest, AuditEvent]:
            check_end(self.catalog, resource, current, user, groups)
            return end_now(current, user, now)

        ended = self.guard.guarded(request, user, "end", change)
        self.jobs.revoke_now(request.id)
        return ended

    def cancel(self, user: str, request_id: str) -> AccessRequest:
        """Withdraw a request nobody has decided on yet (its requester only)."""
        request = self.guard.load(request_id)
        now = self.clock()

        def change(current: AccessRequest) -> tuple[AccessRequest, AuditEvent]:
            check_cancel(current, user)
            return cancel(current, user, now)

        cancelled = self.guard.guarded(request, user, "cancel", change)
        self.jobs.sync_slack(request.id)
        return cancelled

    def ask_extension(self, user: str, request_id: str, more: timedelta, reason: str) -> tuple[AccessRequest, bool]:
        """More time on an active grant, through the same policy as a request and within its maximum in all: the
        request as it now is, and whether policy extended it at once (else the approvers are asked)."""
        request = self.guard.load(request_id)
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

        asked = self.guard.guarded(request, user, "extend", change)
        if not automatic:
            self.jobs.sync_slack(request.id)
            return asked, False
        extended, _ = self.store.requests.transition(request.id, lambda r: extend(r, AUTO, now))
        self.jobs.renew(request.id)
        return extended, True

    def _check_asker_of(self, request: AccessRequest, resource: Resource) -> None:
        """The requester may still ask (checked again at extension); a refusal is audited on the request."""
        try:
            self.check_asker(request.requester, resource, request.breakglass)
        except NotEligible as error:
            self.guard.refuse(request, request.requester, "extend", error)
            raise


def _asking_directory(question: Callable[[], T]) -> T:
    """What the directory must answer for a person to ask: when it cannot (timeout, 429), a refusal, never an
    allow."""
    try:
        return question()
    except MessengerError as error:
        raise NotEligible(
            f"Slack did not say who you are just now ({error}), so I cannot tell what you may ask for."
            " Nothing was requested: try again in a minute.",
            SLACK_UNAVAILABLE,
        ) from None
