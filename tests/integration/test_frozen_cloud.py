"""A cloud endpoint that accepts connections and never answers: moto, in a process of its own, frozen with SIGSTOP
for 75 s over an AWS grant's end while 40 GCP grants end too. The kernel still completes each TCP handshake, so
every AWS call hangs until jitbot's read timeout: the worst case a revocation can meet, and the one that used to
take the whole sweeper (issue #19).
"""

from __future__ import annotations

import itertools
import os
import signal
import time
from datetime import datetime
from pathlib import Path

import pytest

from jitbot.store import Store
from jitbot.testing.stack import Stack
from tests.integration.drills import (
    Event,
    Record,
    expiries,
    request_grants,
    requester,
    sleep_until,
    trail,
    wait_for_event,
)
from tests.integration.helpers import denied

pytestmark = pytest.mark.timeout(300)

PROJECT = "projects/acme-analytics"
FROZEN_S = 75.0
GCP_GRANTS = 40
CATALOG = f"""
approver_channel: C0APPROVALS
alert_channel: C0SECURITY
defaults: {{min_duration: 1s, max_duration: 1h}}
resources:
  prod-db:
    provider: aws
    role_arn: arn:aws:iam::123456789012:role/jit-prod-db
    auto_approve: true
  analytics:
    provider: gcp
    resource: {PROJECT}
    role: roles/bigquery.dataViewer
    auto_approve: true
"""


def written(stack: Stack, request_id: str, event: str) -> list[tuple[datetime, float]]:
    """Each `event` record of the request: its own `at` (when the attempt began) and when Redis appended it."""
    return [
        (datetime.fromisoformat(fields["at"]), int(entry_id.split("-")[0]) / 1000)
        for entry_id, fields in Store(stack.redis()).chain.entries()
        if fields["request_id"] == request_id and fields["event"] == event
    ]


def test_revocation_when_aws_endpoint_frozen_over_a_grants_end_then_other_clouds_on_time_alert_and_cut_after_thaw(
    tmp_path: Path, report: Record
) -> None:
    with Stack(tmp_path / "stack", CATALOG, moto_process=True) as stack:
        stack.gcp.policies[PROJECT] = {"bindings": []}
        stack.slack.emails.update({requester(i): f"user{i}@example.com" for i in range(GCP_GRANTS)})
        aws = request_grants(stack, 1, 20, first=900, resource="prod-db")
        [aws_id] = aws
        seen = wait_for_event(stack, [aws_id], "granted", 30)
        [aws_due] = expiries(seen, aws)
        gcp: dict[str, int] = {}
        for i in range(GCP_GRANTS):  # ending from 3 s before the AWS grant to 7 s after it: all in the freeze
            seconds = round(aws_due - time.time()) - 3 + i % 10
            gcp.update(request_grants(stack, 1, seconds, first=i, resource="analytics"))
        seen = wait_for_event(stack, [*gcp], "granted", 30)
        assert min(expiries(seen, gcp)) > time.time() + 2, "granting was too slow to end them in the freeze"

        sleep_until(aws_due - 5)
        os.kill(stack.moto_pid, signal.SIGSTOP)
        frozen_at = time.time()
        try:
            seen = wait_for_event(stack, [*gcp], "expired", 40, "while AWS is frozen")
            gcp_late = [(seen[i]["expired"].written - due) for i, due in zip(gcp, ends(seen, gcp), strict=True)]
            report("gcp_worst_lateness_s", round(max(gcp_late), 2))
            assert max(gcp_late) < 5, "a GCP revocation waited on the frozen AWS endpoint"
            assert all(not binding_of(stack, i) for i in gcp), "a GCP binding outlived its revocation"

            alert = stack.slack.wait_for(
                lambda c: c.method == "chat.postMessage" and c.params.get("channel") == "C0SECURITY", timeout=90
            )
            alerted_after = time.time() - (time.monotonic() - alert.at) - aws_due
            report("aws_alert_after_end_s", round(alerted_after, 1))
            assert aws_id in alert.params["text"] and alerted_after < 90
            assert "expired" not in trail(stack).get(aws_id, {}), "cut while its cloud never answered"
            sleep_until(frozen_at + FROZEN_S)
        finally:
            os.kill(stack.moto_pid, signal.SIGCONT)
        thawed_at = time.time()

        seen = wait_for_event(stack, [aws_id], "expired", 30, "after the thaw")
        expired: Event = seen[aws_id]["expired"]
        report("aws_cut_after_thaw_s", round(expired.written - thawed_at, 1))
        assert expired.written - thawed_at < 15 and expired.at.timestamp() >= thawed_at - 0.5  # when AWS confirmed
        assert denied(stack, aws_id)

        attempts = written(stack, aws_id, "revocation failed")
        report("aws_failed_attempts", len(attempts))
        assert len(attempts) >= 3  # the alert's budget, each a timed-out call
        for (_, done), (began, _) in itertools.pairwise(attempts):
            assert began.timestamp() >= done - 0.5, f"two attempts at once: {attempts}"  # one thread at a time
        assert [e for e in written(stack, aws_id, "expired")] == [(expired.at, expired.written)]


def ends(seen: dict[str, dict[str, Event]], durations: dict[str, int]) -> list[float]:
    return [seen[i]["granted"].at.timestamp() + seconds for i, seconds in durations.items()]


def binding_of(stack: Stack, request_id: str) -> list[object]:
    bindings = stack.gcp.policies[PROJECT].get("bindings", [])
    return [b for b in bindings if b.get("condition", {}).get("title") == f"jitbot {request_id}"]
