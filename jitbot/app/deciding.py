"""Use cases of the people who decide: Approve or Deny (of a request, or of an extension) and the review of a
break-glass use.

The stored request is the truth; a button only names it. Eligibility is asked afresh at approval, and a decision
past its deadline times the request out on the spot. Each returns the request as it now is, or raises the JitError
that says why not, audited once (Guard).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from jitbot.app.guard import DUPLICATE, SLACK_UNAVAILABLE, Guard
from jitbot.app.ports import Jobs, Messenger, Outcome
from jitbot.core.catalog import Resource
from jitbot.core.domain import AccessRequest, Status, approve, check_in_time, deny, time_out
from jitbot.core.eligibility import withdrawn_note
from jitbot.core.errors import InvalidTransition, MessengerError, NotEligible, PolicyError, TimedOut
from jitbot.core.events import AUTO, AuditEvent
from jitbot.core.policy import check_approver, find_resource, is_approver
from jitbot.core.review import close_review


class Deciding:
    def __init__(self, guard: Guard, jobs: Jobs, messenger: Messenger) -> None:
        self.guard = guard
        self.catalog = guard.catalog
        self.store = guard.store
        self.jobs = jobs
        self.messenger = messenger
        self.clock = guard.clock

    def decide(
        self,
        request_id: str,
        clicker: str,
        approving: bool,
        delivery: str | None = None,
        note: str | None = None,
    ) -> AccessRequest:
        """An Approve or Deny; `delivery` names the click, so that the same click delivered twice acts once."""
        request, groups = self.authorize_decision(request_id, clicker, "approve" if approving else "deny", delivery)
        resource = find_resource(self.catalog, request.resource)
        now = self.clock()

        def change(current: AccessRequest) -> tuple[AccessRequest, AuditEvent]:
            check_approver(self.catalog, resource, current, clicker, groups)  # again, on the fresh state
            if approving:
                return approve(current, clicker, resource.approvals, now)
            return deny(current, clicker, now, note)

        with self._timing_out(request.id):  # the deadline may pass while the directory is asked
            if approving:
                self._still_eligible(request, resource, clicker)
            updated = self.guard.guarded(request, clicker, "approve" if approving else "deny", change)
        if updated.status is Status.APPROVED:
            self.jobs.issue(updated.id)
        if updated.status is Status.ACTIVE and updated.expires_at != request.expires_at:
            self.jobs.renew(updated.id)
        if not approving and updated.status is Status.ACTIVE:  # an extension denied: the grant itself runs on
            self.messenger.tell_requester(updated, Outcome.EXTENSION_DENIED, clicker)
        self.jobs.sync_slack(updated.id)
        return updated

    def authorize_decision(
        self, request_id: str, clicker: str, attempted: str, delivery: str | None = None
    ) -> tuple[AccessRequest, dict[str, frozenset[str]]]:
        """The request a button names and the approver groups looked up, if `clicker` may decide on it now
        (checked before a Deny form is opened, and again when it is submitted). A repeated `delivery` is refused
        last, as a refusal about the request, so that a late repeat is told what became of it."""
        request = self.guard.load_clicked(request_id, clicker, attempted)
        resource = find_resource(self.catalog, request.resource)
        groups = self.guard.groups_of(resource, clicker, request)
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
                self.guard.refuse(request, clicker, attempted, error)
                raise
        return request, groups

    def _still_eligible(self, request: AccessRequest, resource: Resource, clicker: str) -> None:
        """Asked afresh at approval: a requester who may no longer ask (removed from a group, made a guest) is
        denied by policy, and the approver told why; a directory that cannot say refuses the click, changing
        nothing."""
        try:
            refused = self.guard.people.refusal(resource, request.requester, request.breakglass, fresh=True)
        except MessengerError as error:
            silent = NotEligible(
                f"Slack did not say just now whether <@{request.requester}> may still ask for `{resource.name}`"
                f" ({error}). Nothing was approved: try again in a minute.",
                SLACK_UNAVAILABLE,
            )
            self.guard.refuse(request, clicker, "approve", silent)
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
                self.messenger.tell_requester(denied, Outcome.EXTENSION_DENIED, AUTO)
        self.jobs.sync_slack(request.id)
        withdrawn = PolicyError(f"Not approved: <@{request.requester}> {note}. I denied `{request.id}` and told them.")
        self.guard.refuse(request, clicker, "approve", withdrawn, refused.code)
        raise withdrawn

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
        self.jobs.sync_slack(request_id)  # queued first: the approval message is updated even if the DM fails
        if timed_out.status is Status.ACTIVE:  # an extension timed out: the grant runs on, and its holder is told
            self.messenger.tell_requester(timed_out, Outcome.EXTENSION_TIMED_OUT)

    def review(self, request_id: str, reviewer: str, acknowledge: bool) -> None:
        """Acknowledge or Flag a break-glass use: by an approver or admin other than the person who used it."""
        request = self.guard.load_clicked(request_id, reviewer, "review")
        resource = find_resource(self.catalog, request.resource)
        now = self.clock()
        try:
            if reviewer == request.requester:
                raise PolicyError("Someone other than you must review your own break-glass access.")
            groups = self.guard.groups_of(resource, reviewer, request)
            if not is_approver(self.catalog, resource, reviewer, groups):
                raise PolicyError(f"Only the approvers of `{resource.name}` or an admin can review break-glass use.")
            event = close_review(request, reviewer, acknowledge, now)
            if not request.breakglass or not self.store.reviews.close_review(event):
                raise InvalidTransition(f"The review of `{request.id}` is already closed.")
        except (PolicyError, InvalidTransition) as error:
            self.guard.refuse(request, reviewer, "review", error)
            raise
        self.jobs.review_alert(request.id)
