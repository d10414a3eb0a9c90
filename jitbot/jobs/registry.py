"""The job table: each JobName to the function that runs it. A job takes the context it runs against (the
worker's runtime, or a test's own wiring) and the ids it was queued with, never a secret, and returns nothing."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any, Concatenate, Protocol

from jitbot.app.drift import DriftScan
from jitbot.app.lifecycle import Lifecycle
from jitbot.jobs.names import JobName
from jitbot.ops import report_command


class HomeTabs(Protocol):
    """App Home, which only Slack has: the messenger publishes a person's when they open it."""

    def open_home(self, user: str) -> None: ...


class Context(report_command.Reporting, Protocol):
    """What jobs reach: the lifecycle and the drift scan, the messenger that keeps App Homes (Slack's:
    jitbot.slack.messenger), and the store, catalog and notifier the report needs."""

    @property
    def lifecycle(self) -> Lifecycle: ...

    @property
    def drift(self) -> DriftScan: ...

    @property
    def messenger(self) -> HomeTabs: ...


JobFunction = Callable[Concatenate[Context, ...], None]


def issue(context: Context, request_id: str) -> None:
    context.lifecycle.issue_access(request_id)


def revoke(context: Context, request_id: str) -> None:
    context.lifecycle.end_access(request_id)


def renew(context: Context, request_id: str) -> None:
    context.lifecycle.renew_access(request_id)


def sync_slack(context: Context, request_id: str) -> None:
    context.lifecycle.sync_slack(request_id)


def escalate(context: Context, request_id: str) -> None:
    context.lifecycle.escalate(request_id)


def remind(context: Context, request_id: str) -> None:
    context.lifecycle.remind(request_id)


def review_alert(context: Context, request_id: str) -> None:
    context.lifecycle.review_alert(request_id)


def alert_revocation(context: Context, request_id: str) -> None:
    context.lifecycle.alert_revocation(request_id)


def tell_deferral(context: Context, request_id: str, why: str) -> None:
    context.lifecycle.tell_deferral(request_id, why)


def publish_home(context: Context, user: str) -> None:
    """The person opened their Home: it is published now and kept current from now on."""
    context.messenger.open_home(user)


def scan_clouds(context: Context) -> None:
    context.drift.run()


def post_report(context: Context, user: str, period_s: int) -> None:
    """Seconds, not a timedelta: a job's arguments are JSON."""
    report_command.post_report(context, user, timedelta(seconds=period_s))


JOBS: Mapping[JobName, JobFunction] = {
    JobName.ISSUE: issue,
    JobName.REVOKE: revoke,
    JobName.RENEW: renew,
    JobName.SYNC_SLACK: sync_slack,
    JobName.ESCALATE: escalate,
    JobName.REMIND: remind,
    JobName.REVIEW_ALERT: review_alert,
    JobName.ALERT_REVOCATION: alert_revocation,
    JobName.TELL_DEFERRAL: tell_deferral,
    JobName.PUBLISH_HOME: publish_home,
    JobName.SCAN_CLOUDS: scan_clouds,
    JobName.POST_REPORT: post_report,
}


def run(context: Context, name: JobName, *args: Any) -> None:
    """Run the job `name` with the arguments it was queued with."""
    JOBS[name](context, *args)
