"""Use cases that run in workers: issue access, end it at expiry, renew it, keep what people see current.

Each takes a request id, reloads the state and is safe to repeat: RQ may run a job twice, and the
reconciler (jitbot.app.reconciler) re-drives anything whose time has come in case a scheduled job was lost.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta

from jitbot.app.people import People
from jitbot.app.ports import Jobs, Messenger, Outcome
from jitbot.app.reconciler import Reconciler
from jitbot.app.repository import Repository
from jitbot.core.catalog import Catalog, Resource
from jitbot.core.clock import Clock, utcnow
from jitbot.core.domain import AccessRequest, Status, confirm_end, end_now, fail, grant, renew
from jitbot.core.errors import InvalidTransition, MessengerError, ProviderError
from jitbot.core.events import AUTO, AuditEvent, EventName
from jitbot.core.policy import alerts_after, audits_failure, find_resource, revocation_retry_delay
from jitbot.observability import logs, metrics
from jitbot.providers.base import Ending, Provider, revoke_verified
from jitbot.providers.base import Outcome as Ended

# a killed issue job blocks cutting its never-recorded session this long; a live one ends sooner (tasks.ISSUE_TIMEOUT_S)
ISSUE_LOCK = timedelta(minutes=2)
_log = logs.get("jitbot.lifecycle")


class Lifecycle:
    def __init__(
        self,
        catalog: Catalog,
        store: Repository,
        tasks: Jobs,
        messenger: Messenger,
        people: People,
        providers: Callable[[str], Provider],
        clock: Clock = utcnow,
    ) -> None:
        self.catalog = catalog
        self.store = store
        self.tasks = tasks
        self.messenger = messenger
        self.providers = providers
        self.clock = clock
        self.reconciler = Reconciler(catalog, store, tasks, messenger, people, clock)

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
            if error.retryable and not self.tasks.is_last_attempt():
                raise
            self._fail(request.id, str(error))
            return None
        try:
            active, _ = self.store.requests.transition(request.id, lambda r: grant(r, issued.handle, self.clock()))
        except InvalidTransition:  # ended while the cloud was issuing (its lock was lost): take the access away
            self._cut_orphan(provider, request, resource)
            return None
        try:
            self.messenger.deliver_access(active, issued.credentials, issued.access)
        except MessengerError as error:
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
        outcomes = self._revoke_many(cuts, now)
        confirmed = self.clock()  # the record's time: when the cloud showed it gone, not when the attempt began
        for request, _ in cuts:
            outcome = outcomes[request.id]
            if isinstance(outcome, ProviderError):
                self._retry_revocation(request, outcome, now)
            else:
                self._record_end(request, outcome, confirmed)

    def _revoke_many(self, cuts: list[Ending], now: datetime) -> dict[str, Ended]:
        """The cloud's outcome for each grant. A provider that raises instead (a bug, an SDK error it does not
        translate) has failed each grant of the batch: counted, audited and alerted on as a refusing cloud is,
        rather than left to the sweeper's last-resort log line while the grants stay live."""
        ids = [request.id for request, _ in cuts]
        try:
            return self.provider(cuts[0][1]).revoke_many(cuts, now)
        except ProviderError as error:  # providers answer refusals per grant; one raised for the batch fails each
            return dict.fromkeys(ids, error)
        except Exception as error:  # noqa: BLE001 - audited and alerted through _retry_revocation; traceback logged
            _log.exception("revoke_raised", request_ids=ids)
            failed = ProviderError(f"jitbot hit {type(error).__name__} ending this access (logged)", retryable=True)
            return dict.fromkeys(ids, failed)

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
        self.messenger.tell_requester(request, Outcome.DEFERRED, why)

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
            if error.retryable and not self.tasks.is_last_attempt():
                raise
            detail = {"error": str(error)}
            failed = EventName.RENEWAL_FAILED
            self.store.chain.record(
                AuditEvent(failed, request.id, AUTO, request.resource, self.clock(), request.status, detail)
            )
            self.messenger.tell_requester(request, Outcome.RENEWAL_FAILED, str(error))
            return
        try:
            renewed, _ = self.store.requests.transition(request.id, lambda r: renew(r, issued.handle, self.clock()))
        except InvalidTransition:  # an end was asked while the cloud renewed: cut what it just issued
            ending = self.store.requests.get(request.id)
            self._cut_orphan(provider, replace(ending, grant=ending.grant | issued.handle), resource)
            return
        if issued.credentials.fields():
            self.messenger.deliver_access(renewed, issued.credentials, issued.access)
        else:
            self.messenger.tell_requester(renewed, Outcome.EXTENDED)
        self.tasks.sync_slack(request_id)

    def alert_revocation(self, request_id: str) -> None:
        """Alert that a grant outlives its end; logged loudly as well, in case Slack is down."""
        request = self.store.requests.get(request_id)
        failures = self.store.failures.revocation_failures(request_id)
        _log.error("revocation_failing", request_id=request_id, resource=request.resource, **failures)
        if not request.status.is_final:
            self.messenger.alert_revocation(request, failures)

    def provider(self, resource: Resource) -> Provider:
        """The resource's provider, its failures counted by provider and kind on /metrics."""
        return metrics.CountedProvider(self.providers(resource.kind), self.store.metrics, resource.provider)

    def sync_slack(self, request_id: str) -> None:
        """Everything people see of the request brought up to date (Messenger.show); its job keeps the name
        it was queued under."""
        self.messenger.show(self.store.requests.get(request_id))

    def reconcile(self) -> int:
        """Re-drive everything overdue (jitbot.app.reconciler); how many were due."""
        return self.reconciler.reconcile()

    def escalate(self, request_id: str) -> None:
        request = self.store.requests.get(request_id)
        if request.status is Status.PENDING:
            self.messenger.escalate(request, find_resource(self.catalog, request.resource))

    def remind(self, request_id: str) -> None:
        request, now = self.store.requests.get(request_id), self.clock()
        if request.remind_at is not None and request.expires_at and request.expires_at > now:
            self.messenger.remind(request, now)

    def review_alert(self, request_id: str) -> None:
        self.messenger.show_review(self.store.requests.get(request_id))

    def _fail(self, request_id: str, note: str) -> None:
        now = self.clock()
        self.store.requests.transition(request_id, lambda r: fail(r, note, now))  # issue_access syncs
