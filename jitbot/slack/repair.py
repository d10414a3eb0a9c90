"""Slack misconfigured (the bot not in a channel, an archived channel, a missing scope): errors no retry fixes.

The request waits in a stated place instead of a job retrying for an hour: its requester is told what an admin
must do, the admins get one alert naming the fix (in `alert_channel`, or by DM when that is the channel that
fails), and the announcement goes out by itself once the bot is invited (Surface.channel_joined).
"""

from __future__ import annotations

from datetime import timedelta

from jitbot.core.catalog import Catalog
from jitbot.core.clock import Clock
from jitbot.core.domain import AccessRequest
from jitbot.core.events import AUTO, AuditEvent, EventName
from jitbot.observability import logs
from jitbot.slack import alerts, dms
from jitbot.slack.notify import Notifier, NotifyError, SlackMisconfigured
from jitbot.slack.state import SlackStore

ALERT_EVERY = timedelta(hours=1)  # one alert per channel and error an hour, however many requests wait
_log = logs.get("jitbot.slack")


class SlackRepair:
    def __init__(self, catalog: Catalog, store: SlackStore, notifier: Notifier, clock: Clock) -> None:
        self.catalog = catalog
        self.store = store
        self.notifier = notifier
        self.clock = clock

    def blocked(self, request: AccessRequest, error: SlackMisconfigured) -> None:
        """The request's approval message cannot be posted: it waits for the channel, said once to each."""
        if not self.store.slack.block_announcement(request.id, error.channel):
            return  # told already; the bot's invitation re-announces it
        detail = {"channel": error.channel, "error": error.slack_error, "fix": error.fix}
        now = self.clock()
        self.store.chain.record(
            AuditEvent(EventName.ANNOUNCEMENT_BLOCKED, request.id, AUTO, request.resource, now, request.status, detail)
        )
        self._say(request.requester, dms.announcement_blocked(request, error.channel, error.fix))
        self.alert(error, f"Request `{request.id}` (and any after it) waits to be announced there.")

    def alert(self, error: SlackMisconfigured, waiting: str = "") -> None:
        """One alert naming the fix, per channel and error an hour: in alert_channel, or to the admins by DM when
        alert_channel is the one that fails (or there is none). Logged as an error in any case."""
        _log.error("slack_misconfigured", channel=error.channel, error=error.slack_error, fix=error.fix)
        if not self.store.slack.claim_slack_alert(error.channel, error.slack_error, ALERT_EVERY):
            return
        text = alerts.slack_misconfigured(error.channel, error.slack_error, error.fix, waiting)
        alert_channel = self.catalog.alert_channel
        for target in [alert_channel] if alert_channel and alert_channel != error.channel else self.catalog.admins:
            self._say(target, text)

    def _say(self, to: str, text: str) -> None:
        try:
            self.notifier.tell(to, text)
        except NotifyError as failed:  # the log line above names the fix; the alert channel may be what fails
            _log.warning("slack_fix_not_told", to=to, error=str(failed))
