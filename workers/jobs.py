"""RQ jobs: one-line wrappers around the lifecycle's use cases. They take a request id (and what else the use case
needs: never a secret) and return nothing."""

from __future__ import annotations

from datetime import timedelta

from jitbot import report_command, runtime


def issue(request_id: str) -> None:
    runtime.current().lifecycle.issue_access(request_id)


def revoke(request_id: str) -> None:
    runtime.current().lifecycle.end_access(request_id)


def sync_slack(request_id: str) -> None:
    runtime.current().lifecycle.sync_slack(request_id)


def alert_revocation(request_id: str) -> None:
    runtime.current().lifecycle.alert_revocation(request_id)


def tell_deferral(request_id: str, why: str) -> None:
    runtime.current().lifecycle.tell_deferral(request_id, why)


def post_report(user: str, period_s: int) -> None:
    report_command.post_report(runtime.current(), user, timedelta(seconds=period_s))


def renew(request_id: str) -> None:
    runtime.current().lifecycle.renew_access(request_id)


def escalate(request_id: str) -> None:
    runtime.current().lifecycle.escalate(request_id)


def remind(request_id: str) -> None:
    runtime.current().lifecycle.remind(request_id)


def review_alert(request_id: str) -> None:
    runtime.current().lifecycle.review_alert(request_id)


def scan_clouds() -> None:
    runtime.current().drift.run()


def publish_home(user: str) -> None:
    runtime.current().lifecycle.homes.opened(user)
