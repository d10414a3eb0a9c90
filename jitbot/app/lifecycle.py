"""Use cases that run in workers: issue access, end it at expiry, keep Slack current, reconcile.

Each takes a request id, reloads the state and is safe to repeat: RQ may run a job twice, and the
reconciler re-drives anything whose time has come in case a scheduled job was lost.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta

from jitbot.app.people import People
from jitbot.core.catalog import Catalog, Resource
from jitbot.core.clock import Clock, utcnow
from jitbot.core.domain import (
    AccessRequest,
    Moved,
    Status,
    approve_by_policy,
    confirm_end,
    deny,
    end_now,
    escalate,
    fail,
    grant,
    renew,
    time_out,
)
from jitbot.core.eligibility import withdrawn_note
from jitbot.core.errors import InvalidTransition, ProviderError
from jitbot.core.events import AUTO, AuditEvent, EventName
from jitbot.core.policy import alerts_after, audits_failure, find_resource, revocation_retry_delay
from jitbot.core.review import realert_review
from jitbot.jobs.tasks import Tasks, is_last_attempt
from jitbot.observability import logs, metrics
from jitbot.providers.base import Ending, Provider, revoke_verified
from jitbot.slack import alerts, dms
from jitbot.slack.home import Homes
from jitbot.slack.notify import Notifier, NotifyError, SlackMisconfigured
from jitbot.slack.repair import SlackRepair
from jitbot.store import Store
from jitbot.store.keys import EXPIRY, PENDING, REVIEWS, TIMERS
from jitbot.store.requests import ISSUE_REDRIVE

# a killed issue job blocks cutting its never-recorded session this long; a live one ends sooner (tasks.ISSUE_TIMEOUT_S)
ISSUE_LOCK = timedelta(minutes=2)
RECONCILE_GRACE = timedelta(seconds=30)  # the sweeper's to revoke first; this catches what no sweeper claimed
_log = logs.get("jitbot.lifecycle")


class Lifecycle:
    def __init__(
        self,
        catalog: Catalog,
        store: Store,
        tasks: Tasks,
        notifier: Notifier,
        providers: Callable[[str], Provider],
        clock: Clock = utcnow,
    ) -> None:
        self.catalog = catalog
        self.store = store
        self.tasks = tasks
        self.notifier = notifier
        self.providers = providers
        self.clock = clock
        self.people = People(catalog, notifier, store)
        self.homes = Homes(catalog, store, notifier, self.people, clock)
        self.repair = SlackRepair(catalog, store, notifier, clock)

    def issue_access(self, request_id: str) -> None:
        """APPROVED → ACTIVE: ask the cloud, record the grant (its end in the expiry index), DM the access."""
        request = self.store.requests.get(request_id)
        if request.status is not Status.APPROVED:
            return
        resource = find_resource(self.catalog, request.resource)
        with self.store.locks.lock(f"issue:{request_id}", ISSUE_LOCK) as mine:
            if not mine:
                return
            self._grant(request, resource)  # recorded with its expiry in the index the sweeper revokes from
        self.tasks.sync_slack(request_id)

    def _grant(self, request: AccessRequest, resource: Resource) -> AccessRequest | None:
        provider = self.provider(resource)
        try:
            issued = provider.grant(request, resource, self.clock())
        except ProviderError as error:
            if error.retryable and not is_last_attempt():
                raise
            self._fail(request.id, str(error))
            return None
        try:
            active, _ = self.store.requests.transition(request.id, lambda r: grant(r, issued.handle, self.clock()))
        except InvalidTransition:  # ended while the cloud was issuing (its lock was lost): take the access away
            self._cut_orphan(provider, request, resource)
            return None
        try:
            self.notifier.send_access(active, issued.credentials, issued.access)
        except NotifyError as error:
            self._end_undelivered(active, f"the access could not be delivered ({error}), so it was cut again")
            return None
        return active

    def _end_undelivered(self, request: AccessRequest, note: str) -> None:
        """Granted but never delivered: ended through the normal revocation path, which retries, waits for a
        cloud that says when (PIM's first 5 minutes) and alerts until the cloud has cut it; then FAILED, with
        `note`. Revoking inline once, as before, left the access live whenever that one attempt failed."""
        now = self.clock()
        self.store.requests.transition(request.id, lambda r: end_now(r, AUTO, now, note))
        self.tasks.revoke_now(request.id)

    def _cut_orphan(self, provider: Provider, request: AccessRequest, resource: Resource) -> None:
        """The cloud granted after the request ended, so nothing indexes this access: one try to cut it, and if
        the cloud refuses, an audit record and an error log say so; the drift scan, or the cloud's own expiry,
        takes it away later."""
        now = self.clock()
        try:
            revoke_verified(provider, request, resource, now)
        except ProviderError as error:
            detail = {
                "error": str(error),
                "note": "granted after the request ended; the drift scan or the cloud's own expiry ends it",
            }
            _log.error("orphaned_grant_not_cut", request_id=request.id, resource=request.resource, error=str(error))
            failed = EventName.REVOCATION_FAILED
            self.store.chain.record(
                AuditEvent(failed, request.id, AUTO, request.resource, now, "-", detail, request.provider)
            )

    def end_access(self, request_id: str) -> None:
        """ACTIVE past its expiry → EXPIRED, after the cloud has cut it; APPROVED but never issued → FAILED."""
        request = self.store.requests.get(request_id)
        now = self.clock()
        if request.status is Status.ACTIVE and request.expires_at and request.expires_at > now:
            # extended meanwhile: back at its time
            self.store.requests.retry_revocation_at(request_id, request.expires_at)
            return
        if request.status not in (Status.ACTIVE, Status.APPROVED):
            return
        resource = find_resource(self.catalog, request.resource)
        if request.status is Status.ACTIVE:  # recorded: nothing to wait for (a lock a killed job held would delay it)
            self._cut(request, resource, now)
            return
        with self.store.locks.lock(f"issue:{request_id}", ISSUE_LOCK) as mine:
            if mine:  # else an issue job is running; the reconciler comes back
                self._cut(request, resource, now)

    def end_many(self, request_ids: list[str]) -> None:
        """end_access for grants of one cloud policy (the sweeper groups them by `policy_of`): those ACTIVE and
        past their expiry are cut together, by one `revoke_many`; any other as end_access would end it alone."""
        now = self.clock()
        cuts: list[Ending] = []
        for request in self.store.requests.many(request_ids):
            if request.status is Status.ACTIVE and not (request.expires_at and request.expires_at > now):
                cuts.append((request, find_resource(self.catalog, request.resource)))
            else:
                self.end_access(request.id)
        if cuts:
            self._cut_many(cuts, now)

    def policy_of(self, request: AccessRequest) -> tuple[str, bool]:
        """The cloud policy that ending `request` writes (Provider.shared_policy: grants naming it end together),
        and whether its provider merges ends of it running at once (Provider.merges_ends)."""
        resource = find_resource(self.catalog, request.resource)
        provider = self.providers(resource.kind)
        return provider.shared_policy(request, resource), provider.merges_ends

    def _cut(self, request: AccessRequest, resource: Resource, now: datetime) -> None:
        self._cut_many([(request, resource)], now)

    def _cut_many(self, cuts: list[Ending], now: datetime) -> None:
        """Revoke in the cloud and read back that each is gone, then record each end: EXPIRED for a grant, FAILED
        for one never issued. One the cloud still shows (or refused) stays live and is retried on its own."""
        outcomes = self.provider(cuts[0][1]).revoke_many(cuts, now)
        confirmed = self.clock()  # the record's time: when the cloud showed it gone, not when the attempt began
        for request, _ in cuts:
            outcome = outcomes[request.id]
            if isinstance(outcome, ProviderError):
                self._retry_revocation(request, outcome, now)
            else:
                self._record_end(request, outcome, confirmed)

    def _record_end(self, request: AccessRequest, verified: str, confirmed: datetime) -> None:
        try:
            ended, _ = self.store.requests.transition(request.id, lambda r: confirm_end(r, verified, confirmed))
        except InvalidTransition:
            return  # another job ended it first
        self.store.failures.close_revocation_failures(request.id)
        if ended.status is Status.EXPIRED and request.expires_at:  # cut and recorded: how long after its end
            self.store.metrics.observe_revocation_lag((self.clock() - request.expires_at).total_seconds())
        self.tasks.sync_slack(request.id, urgent=True)  # the scrub and the notice go before any approval message

    def _retry_revocation(self, request: AccessRequest, error: ProviderError, now: datetime) -> None:
        """Never give up: back off (capped) and let the reconciler come back; alert once past the budget.

        A cloud that says when it will allow it (Azure PIM keeps an assignment for its first 5 minutes) is not
        failing: the revocation waits for that moment, and the requester is told when their access ends. A cloud
        that throttles is asked again soon (no earlier than its Retry-After), and alerted on only as late.
        """
        if error.not_before and error.not_before > now and not error.throttled:
            self.store.requests.retry_revocation_at(request.id, error.not_before)
            deferred = {"error": str(error), "until": error.not_before.isoformat()}
            self.store.chain.record(
                AuditEvent(
                    EventName.REVOCATION_DEFERRED,
                    request.id,
                    AUTO,
                    request.resource,
                    now,
                    request.status,
                    deferred,
                    request.provider,
                )
            )
            self.tasks.tell_deferral(request.id, str(error))  # by a worker: a sweeper thread never waits on Slack
            return
        failures = self.store.failures.note_revocation_failure(request.id, str(error), now)
        delay = revocation_retry_delay(
            self.catalog.revocation, failures, random.random(), error.unanswered, error.throttled
        )
        retry_at = max(now + delay, error.not_before or now)
        self.store.requests.retry_revocation_at(request.id, retry_at)
        if audits_failure(failures):
            retry_in_s = round((retry_at - now).total_seconds(), 1)
            detail = {"attempt": failures, "error": str(error), "retry_in_s": retry_in_s}
            self.store.chain.record(
                AuditEvent(
                    EventName.REVOCATION_FAILED,
                    request.id,
                    AUTO,
                    request.resource,
                    now,
                    request.status,
                    detail,
                    request.provider,
                )
            )
        alert_at = alerts_after(self.catalog.revocation, error.throttled)
        if failures >= alert_at and self.store.failures.claim_revocation_alert(request.id):
            self.tasks.alert_revocation(request.id)

    def tell_deferral(self, request_id: str, why: str) -> None:
        request = self.store.requests.get(request_id)
        self.notifier.tell(request.requester, dms.revocation_deferred(request, why))

    def renew_access(self, request_id: str) -> None:
        """An approved extension: the cloud's access is brought up to the new expiry and the DM replaced.

        If the cloud refuses for good, the grant keeps its recorded end (revocation still runs then) but the
        cloud may end it sooner: the requester is told which time to trust.
        """
        request = self.store.requests.get(request_id)
        if request.status is not Status.ACTIVE or request.ending_by:
            return
        resource = find_resource(self.catalog, request.resource)
        provider = self.provider(resource)
        try:
            issued = provider.extend(request, resource, self.clock())
        except ProviderError as error:
            if error.retryable and not is_last_attempt():
                raise
            detail = {"error": str(error)}
            failed = EventName.RENEWAL_FAILED
            self.store.chain.record(
                AuditEvent(failed, request.id, AUTO, request.resource, self.clock(), request.status, detail)
            )
            self.notifier.tell(request.requester, dms.renewal_failed(request, str(error)))
            return
        try:
            renewed, _ = self.store.requests.transition(request.id, lambda r: renew(r, issued.handle, self.clock()))
        except InvalidTransition:  # an end was asked while the cloud renewed: cut what it just issued
            ending = self.store.requests.get(request.id)
            self._cut_orphan(provider, replace(ending, grant=ending.grant | issued.handle), resource)
            return
        if issued.credentials.fields():
            self.notifier.send_access(renewed, issued.credentials, issued.access)
        else:
            self.notifier.tell(renewed.requester, dms.extended_dm(renewed))
        self.tasks.sync_slack(request_id)

    def alert_revocation(self, request_id: str) -> None:
        """Tell the alert channel that a grant outlives its end; logged loudly as well, in case Slack is down."""
        request = self.store.requests.get(request_id)
        failures = self.store.failures.revocation_failures(request_id)
        _log.error("revocation_failing", request_id=request_id, resource=request.resource, **failures)
        if self.catalog.alert_channel and not request.status.is_final:
            try:
                self.notifier.raise_alert(request, self.catalog.alert_channel, failures)
            except SlackMisconfigured as error:  # the admins, by DM: a failing revocation must reach someone
                if error.token_refused:
                    raise
                self.repair.alert(error, alerts.revocation_alert(request, failures))

    def provider(self, resource: Resource) -> Provider:
        """The resource's provider, its failures counted by provider and kind on /metrics."""
        return metrics.CountedProvider(self.providers(resource.kind), self.store.metrics, resource.provider)

    def sync_slack(self, request_id: str) -> None:
        """Scrub ended secrets, tell the requester the outcome, bring the approval message up to date: the urgent
        calls first (jitbot.slack.pacing), so that a paced approval edit never holds them back."""
        request = self.store.requests.get(request_id)
        resource = find_resource(self.catalog, request.resource)
        steps: list[Callable[[], None]] = [
            lambda: self.notifier.tell_requester(request),
            lambda: self._announce(request, resource),
            lambda: self.homes.publish_for(request),
        ]
        if request.status.is_final:
            steps.insert(0, lambda: self.notifier.scrub_credentials(request))
            steps.append(lambda: self.notifier.resolve_alert(request))
        failures = []
        for step in steps:  # each is safe to repeat; one failing must not hold back the others
            try:
                step()
            except NotifyError as error:
                failures.append(str(error))
        if failures:
            raise NotifyError("; ".join(failures))  # RQ retries the whole sync

    def _announce(self, request: AccessRequest, resource: Resource) -> None:
        """The approval message, or — Slack refusing for a reason only an admin can fix — the request waits for
        the fix, said once to its requester and the admins (jitbot.slack.repair), without a job retrying it."""
        try:
            self.notifier.sync_approval_message(request, resource)
        except SlackMisconfigured as error:
            if error.token_refused:  # nothing jitbot says gets out: retried, and logged with the fix
                self.repair.alert(error)
                raise
            self.repair.blocked(request, error)

    def reconcile(self) -> int:
        """Re-drive everything overdue: grants past expiry and undecided requests past their timeout."""
        now = self.clock()
        overdue = self.store.requests.due(EXPIRY, now - RECONCILE_GRACE)
        for request_id in overdue:
            self.tasks.revoke_now(request_id)
        # before timeouts: an announced auto-approval at the same moment wins
        timers = self.store.requests.due(TIMERS, now)
        for timer in timers:
            kind, request_id = timer.split(":", 1)
            self._on_timer(kind, request_id, now)
        timed_out = self.store.requests.due(PENDING, now)
        for request_id in timed_out:
            self._time_out(request_id)
        reviews = self.store.requests.due(REVIEWS, now)
        for request_id in reviews:
            alerts = self.store.reviews.next_review_alert(request_id, now + self.catalog.breakglass_realert)
            request = self.store.requests.get(request_id)
            self.store.chain.record(realert_review(request, alerts, now))
            self.tasks.review_alert(request_id)
        if overdue or timed_out or timers or reviews:
            _log.info(
                "reconciled", overdue=len(overdue), timed_out=len(timed_out), timers=len(timers), reviews=len(reviews)
            )
        return len(overdue) + len(timed_out) + len(timers) + len(reviews)

    def _on_timer(self, kind: str, request_id: str, now: datetime) -> None:
        """A policy's time has come: approve on its own, escalate, or remind. State changes clear their timer."""
        if kind == "auto":  # past the deadline (a late pass) approval is refused: reconcile's sweep times it out
            if self._still_eligible(request_id, now) and self._settle(request_id, lambda r: approve_by_policy(r, now)):
                self.tasks.issue(request_id)
        elif kind == "escalate":
            if self._settle(request_id, lambda r: escalate(r, now)):
                self.tasks.escalate(request_id)
        elif kind == "extension":  # nobody decided on an extension in time: dropped, and the grant runs on
            if self._settle(request_id, lambda r: time_out(r, now)):
                self._tell_extension_timed_out(request_id)
        elif kind == "issue":  # approved, not yet granted: its issue job may have been lost (ISSUE_REDRIVE)
            if self.store.requests.get(request_id).status is Status.APPROVED:
                self.store.requests.set_timer(kind, request_id, now + ISSUE_REDRIVE)
                self.tasks.issue(request_id)  # nothing if its job is queued or running
            else:
                self.store.requests.clear_timer(kind, request_id)
        elif kind == "refresh":  # the cloud's credentials end before the grant: renewed for what is left
            self.store.requests.clear_timer(kind, request_id)
            self.tasks.renew(request_id)
        else:
            self.store.requests.clear_timer(kind, request_id)
            self.tasks.remind(request_id)

    def _tell_extension_timed_out(self, request_id: str) -> None:
        request = self.store.requests.get(request_id)
        try:
            self.notifier.tell(request.requester, dms.extension_timed_out(request))
        except NotifyError as error:  # the approval message says it too (sync_slack, queued by _settle)
            _log.warning("extension_timeout_not_told", request_id=request_id, error=str(error))

    def _still_eligible(self, request_id: str, now: datetime) -> bool:
        """Approving on its own is an approval: Slack is asked afresh whether the requester may still ask. Denied
        by policy if not; if Slack cannot say, the timer stays due and the next pass asks again."""
        request = self.store.requests.get(request_id)
        resource = find_resource(self.catalog, request.resource)
        try:
            refused = self.people.refusal(resource, request.requester, request.breakglass, fresh=True)
        except NotifyError as error:
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
        self.tasks.sync_slack(request_id)
        return True

    def escalate(self, request_id: str) -> None:
        request = self.store.requests.get(request_id)
        if request.status is Status.PENDING:
            self.notifier.post_escalation(request, find_resource(self.catalog, request.resource))

    def remind(self, request_id: str) -> None:
        request, now = self.store.requests.get(request_id), self.clock()
        if request.remind_at is not None and request.expires_at and request.expires_at > now:
            self.notifier.remind(request, now)

    def review_alert(self, request_id: str) -> None:
        if self.catalog.alert_channel:
            self.notifier.sync_review_alert(self.store.requests.get(request_id), self.catalog.alert_channel)

    def _time_out(self, request_id: str) -> None:
        now = self.clock()
        self._settle(request_id, lambda r: time_out(r, now))

    def _fail(self, request_id: str, note: str) -> None:
        now = self.clock()
        self.store.requests.transition(request_id, lambda r: fail(r, note, now))  # issue_access syncs
