"""The reconciler: everything whose time has come, re-driven — grants past their end, undecided requests past
their timeout, break-glass reviews to re-alert — and the policies' timers acted on (approve on its own, escalate,
remind, renew, drop an undecided extension).

A scheduled job can be lost (a worker killed, Redis failed over); the times are kept as data in sorted sets, so a
pass over them every few seconds finds what is due whatever happened to its job. Every action is safe to repeat.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from jitbot.app.people import People
from jitbot.app.ports import Jobs, Messenger, Outcome
from jitbot.app.repository import Repository
from jitbot.core.catalog import Catalog
from jitbot.core.clock import Clock
from jitbot.core.domain import AccessRequest, Moved, Status, approve_by_policy, deny, escalate, time_out
from jitbot.core.eligibility import withdrawn_note
from jitbot.core.errors import InvalidTransition, MessengerError
from jitbot.core.events import AUTO
from jitbot.core.policy import ISSUE_REDRIVE, find_resource
from jitbot.core.review import realert_review
from jitbot.observability import logs

RECONCILE_GRACE = timedelta(seconds=30)  # the sweeper's to revoke first; this catches what no sweeper claimed
_log = logs.get("jitbot.lifecycle")


class Reconciler:
    def __init__(
        self, catalog: Catalog, store: Repository, jobs: Jobs, messenger: Messenger, people: People, clock: Clock
    ) -> None:
        self.catalog = catalog
        self.store = store
        self.jobs = jobs
        self.messenger = messenger
        self.people = people
        self.clock = clock

    def reconcile(self) -> int:
        """Re-drive everything overdue: grants past expiry and undecided requests past their timeout."""
        now = self.clock()
        overdue = self.store.schedule.overdue(now - RECONCILE_GRACE)
        for request_id in overdue:
            self.jobs.revoke_now(request_id)
        # before timeouts: an announced auto-approval at the same moment wins
        timers = self.store.schedule.due_timers(now)
        for kind, request_id in timers:
            self._on_timer(kind, request_id, now)
        timed_out = self.store.schedule.timed_out(now)
        for request_id in timed_out:
            self._time_out(request_id)
        reviews = self.store.schedule.due_reviews(now)
        for request_id in reviews:
            alerts = self.store.reviews.next_review_alert(request_id, now + self.catalog.breakglass_realert)
            request = self.store.requests.get(request_id)
            self.store.chain.record(realert_review(request, alerts, now))
            self.jobs.review_alert(request_id)
        if overdue or timed_out or timers or reviews:
            _log.info(
                "reconciled", overdue=len(overdue), timed_out=len(timed_out), timers=len(timers), reviews=len(reviews)
            )
        return len(overdue) + len(timed_out) + len(timers) + len(reviews)

    def _on_timer(self, kind: str, request_id: str, now: datetime) -> None:
        """A policy's time has come: approve on its own, escalate, or remind. State changes clear their timer."""
        if kind == "auto":  # past the deadline (a late pass) approval is refused: reconcile's sweep times it out
            if self._still_eligible(request_id, now) and self._settle(request_id, lambda r: approve_by_policy(r, now)):
                self.jobs.issue(request_id)
        elif kind == "escalate":
            if self._settle(request_id, lambda r: escalate(r, now)):
                self.jobs.escalate(request_id)
        elif kind == "extension":  # nobody decided on an extension in time: dropped, and the grant runs on
            if self._settle(request_id, lambda r: time_out(r, now)):
                self._tell_extension_timed_out(request_id)
        elif kind == "issue":  # approved, not yet granted: its issue job may have been lost (ISSUE_REDRIVE)
            if self.store.requests.get(request_id).status is Status.APPROVED:
                self.store.requests.set_timer(kind, request_id, now + ISSUE_REDRIVE)
                self.jobs.issue(request_id)  # nothing if its job is queued or running
            else:
                self.store.requests.clear_timer(kind, request_id)
        elif kind == "refresh":  # the cloud's credentials end before the grant: renewed for what is left
            self.store.requests.clear_timer(kind, request_id)
            self.jobs.renew(request_id)
        else:
            self.store.requests.clear_timer(kind, request_id)
            self.jobs.remind(request_id)

    def _tell_extension_timed_out(self, request_id: str) -> None:
        request = self.store.requests.get(request_id)
        try:
            self.messenger.tell_requester(request, Outcome.EXTENSION_TIMED_OUT)
        except MessengerError as error:  # the approval message says it too (sync_slack, queued by _settle)
            _log.warning("extension_timeout_not_told", request_id=request_id, error=str(error))

    def _still_eligible(self, request_id: str, now: datetime) -> bool:
        """Approving on its own is an approval: Slack is asked afresh whether the requester may still ask. Denied
        by policy if not; if Slack cannot say, the timer stays due and the next pass asks again."""
        request = self.store.requests.get(request_id)
        resource = find_resource(self.catalog, request.resource)
        try:
            refused = self.people.refusal(resource, request.requester, request.breakglass, fresh=True)
        except MessengerError as error:
            _log.warning("eligibility_unknown", request_id=request_id, error=str(error))
            return False
        if refused is not None:
            note = withdrawn_note(resource, refused)
            self._settle(request_id, lambda r: deny(r, AUTO, now, note))
        return refused is None

    def _settle(self, request_id: str, change: Callable[[AccessRequest], Moved]) -> bool:
        try:
            self.store.requests.transition(request_id, change)
        except InvalidTransition:  # decided meanwhile; the transition cleared the timer
            return False
        self.jobs.sync_slack(request_id)
        return True

    def _time_out(self, request_id: str) -> None:
        now = self.clock()
        self._settle(request_id, lambda r: time_out(r, now))
