"""The Slack adapter's Messenger (jitbot.app.ports): what a use case means to say, said in Slack.

The use cases name an intent — show this request, deliver this access, tell the requester this outcome — and this
module picks the Slack calls (jitbot.slack.notify to people, jitbot.slack.announcer in channels), the text (the pure
renderers `dms` and `alerts`), the channel (the catalog's) and what to do when Slack refuses for a reason only an
admin can fix (jitbot.slack.repair).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from jitbot.app.people import People
from jitbot.app.ports import Outcome
from jitbot.core.catalog import Catalog, Resource
from jitbot.core.clock import Clock, utcnow
from jitbot.core.domain import AccessRequest
from jitbot.core.policy import find_resource
from jitbot.core.redaction import Credentials
from jitbot.observability import logs
from jitbot.slack import alerts, dms
from jitbot.slack.announcer import Announcer
from jitbot.slack.home import Homes
from jitbot.slack.notify import Notifier, NotifyError, SlackMisconfigured
from jitbot.slack.repair import SlackRepair

_drift_log = logs.get("jitbot.drift")  # the drift alert's failure is logged where the scan logged it before


class SlackMessenger:
    def __init__(
        self, catalog: Catalog, notifier: Notifier, announcer: Announcer, homes: Homes, repair: SlackRepair
    ) -> None:
        self.catalog = catalog
        self.notifier = notifier
        self.announcer = announcer
        self.homes = homes
        self.repair = repair

    def show(self, request: AccessRequest) -> None:
        """Scrub ended secrets, tell the requester the outcome, bring the approval message up to date: the urgent
        calls first (jitbot.slack.pacing), so that a paced approval edit never holds them back."""
        resource = find_resource(self.catalog, request.resource)
        steps: list[Callable[[], None]] = [
            lambda: self.notifier.tell_requester(request),
            lambda: self._announce(request, resource),
            lambda: self.homes.publish_for(request),
        ]
        if request.status.is_final:
            steps.insert(0, lambda: self.notifier.scrub_credentials(request))
            steps.append(lambda: self.announcer.resolve_alert(request))
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
            self.announcer.sync_approval_message(request, resource)
        except SlackMisconfigured as error:
            if error.token_refused:  # nothing jitbot says gets out: retried, and logged with the fix
                self.repair.alert(error)
                raise
            self.repair.blocked(request, error)

    def deliver_access(self, request: AccessRequest, credentials: Credentials, access: dict[str, str]) -> None:
        self.notifier.send_access(request, credentials, access)

    def tell_requester(self, request: AccessRequest, outcome: Outcome, detail: str = "") -> None:
        self.notifier.tell(request.requester, self._told(request, outcome, detail))

    def _told(self, request: AccessRequest, outcome: Outcome, detail: str) -> str:
        match outcome:
            case Outcome.RECEIVED:
                return dms.request_received(request, find_resource(self.catalog, request.resource))
            case Outcome.DEFERRED:
                return dms.revocation_deferred(request, detail)
            case Outcome.RENEWAL_FAILED:
                return dms.renewal_failed(request, detail)
            case Outcome.EXTENDED:
                return dms.extended_dm(request)
            case Outcome.EXTENSION_DENIED:
                return dms.extension_denied(request, detail)
            case Outcome.EXTENSION_TIMED_OUT:
                return dms.extension_timed_out(request)

    def escalate(self, request: AccessRequest, resource: Resource) -> None:
        self.announcer.post_escalation(request, resource)

    def remind(self, request: AccessRequest, now: datetime) -> None:
        self.notifier.remind(request, now)

    def alert_revocation(self, request: AccessRequest, failures: dict[str, str]) -> None:
        """In the alert channel, if the catalog names one; when Slack refuses that channel, to the admins by DM
        (jitbot.slack.repair): a failing revocation must reach someone."""
        if not self.catalog.alert_channel:
            return
        try:
            self.announcer.raise_alert(request, self.catalog.alert_channel, failures)
        except SlackMisconfigured as error:
            if error.token_refused:
                raise
            self.repair.alert(error, alerts.revocation_alert(request, failures))

    def show_review(self, request: AccessRequest) -> None:
        if self.catalog.alert_channel:
            self.announcer.sync_review_alert(request, self.catalog.alert_channel)

    def alert_drift(
        self, findings: Sequence[tuple[str, str, str]], unreadable: Sequence[tuple[str, str]], every: timedelta
    ) -> None:
        """In the alert channel, if the catalog names one. Slack refusing is logged, not raised: the scan has done
        its work (removed, audited, counted on /metrics), and the next one alerts again if what it finds differs."""
        if not self.catalog.alert_channel:
            return
        try:
            self.notifier.tell(self.catalog.alert_channel, alerts.drift_alert(findings, unreadable, every))
        except NotifyError as error:
            _drift_log.error("drift_alert_not_posted", error=str(error))

    def open_home(self, user: str) -> None:
        """The person opened their App Home: published now, and kept current from now on (`show`)."""
        self.homes.opened(user)


def slack_messenger(
    catalog: Catalog, notifier: Notifier, people: People, clock: Clock = utcnow, *, digests: bool = False
) -> SlackMessenger:
    """The messenger and its parts, on the notifier's calls and store: the announcer of jitbot's messages in channels
    (`digests`: requests waiting together in one channel are folded into one message, as a worker that keeps
    Slack's pace does), App Homes, which show each person what they may ask for (`people`, the use cases' own,
    asking Slack through the notifier), and the repair of a misconfigured channel."""
    store = notifier.store
    announcer = Announcer(notifier, catalog if digests else None)
    homes = Homes(catalog, store, notifier, people, clock)
    return SlackMessenger(catalog, notifier, announcer, homes, SlackRepair(catalog, store, notifier, clock))
