"""A revocation's lateness with the limits on depends neither on Slack's 429s nor on another cloud's throttling
(issue #15).

One stack whose Slack stand-in enforces Slack's rate limits (and jitbot paces itself under them). AWS grants end
first with nothing in the way: the baseline. Then, over the ends of AWS and GCP grants due within a few seconds
of each other, Slack answers every chat.postMessage and chat.update with 429 and Retry-After (the calls an ended
grant causes: its credential DM scrubbed, its requester told, its approval message edited) and GCP refuses every
setIamPolicy with 429 RESOURCE_EXHAUSTED (a write bucket that never fills: Google's answer to a write over quota,
without Retry-After); AWS (moto) answers as before.

The AWS grants must be cut and recorded as soon as the baseline's were (within a second of the baseline's worst,
and 2 s at least: the sweeper looks every 0.2 s when idle, and an AWS cut is three IAM calls to moto). The GCP
grants stay live while GCP refuses and are cut within a few seconds of the throttle's lift (the catalog caps the
retry backoff at 2 s). Every ended grant's Slack notices arrive once Slack answers again: nothing is lost.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path

import pytest

from jitbot.jobs.tasks import QUEUES, make_queue, waiting_jobs
from jitbot.providers.limits import Limits, Throttle
from jitbot.testing.slack_standin import Call
from jitbot.testing.stack import Stack
from tests.integration.drills import Event, Record, expiries, request_grants, requester, trail, wait_for_event
from tests.integration.helpers import REQUEST_ID, audit_events, denied, slack_refs, wait_until

pytestmark = pytest.mark.timeout(180)

PROJECT = "projects/acme-analytics"
BASELINE, AWS_GRANTS, GCP_GRANTS = 3, 3, 3
FIRST_BASELINE, FIRST_AWS, FIRST_GCP = 0, 100, 200  # requester numbers: one person (one DM channel) per grant
BASELINE_S, STRESSED_S = 7, 14  # durations asked: the baseline's ends, then the rest's, ~7 s later
REFUSED = ("chat.postMessage", "chat.update")  # every call an ended grant makes to Slack but its Home tab
RETRY_AFTER_S = 1
THROTTLED = Limits(writes_per_s=0.001, burst=0)  # GCP's latency, and an empty write bucket: every write refused
LIFTED = Limits(seed=1)  # GCP's latency, writes never refused
ON_TIME_FLOOR_S = 2.0  # idle poll 0.2 s + claim + three IAM calls to moto + the record, on two loaded cores
BEYOND_BASELINE_S = 1.0
GCP_AFTER_LIFT_S = 5.0  # retry_cap (2 s) + idle poll + a read-modify-write and a read-back at GCP's latency
CATALOG = f"""
approver_channel: C0APPROVALS
alert_channel: C0SECURITY
defaults: {{min_duration: 1s, max_duration: 1h}}
revocation: {{retry_base: 1s, retry_cap: 2s}}
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


def test_revocation_when_slack_429s_and_gcp_throttles_then_aws_on_time_gcp_cut_after_lift_and_nothing_lost(
    tmp_path: Path, report: Record
) -> None:
    with Stack(tmp_path / "stack", CATALOG, slack_limits=True) as stack:
        stack.gcp.policies[PROJECT] = {"bindings": []}
        stack.slack.emails.update({requester(FIRST_GCP + i): f"user{i}@example.com" for i in range(GCP_GRANTS)})
        baseline = request_grants(stack, BASELINE, BASELINE_S, first=FIRST_BASELINE, resource="prod-db")
        aws = request_grants(stack, AWS_GRANTS, STRESSED_S, stagger=3, first=FIRST_AWS, resource="prod-db")
        gcp = request_grants(stack, GCP_GRANTS, STRESSED_S, stagger=3, first=FIRST_GCP, resource="analytics")
        seen = wait_for_event(stack, [*baseline, *aws, *gcp], "granted", 30)
        stressed_from = min(expiries(seen, aws | gcp))
        assert stressed_from > max(expiries(seen, baseline)) + 3, "granting was too slow to keep the phases apart"

        # the baseline: AWS grants ending with Slack answering and no cloud throttled
        seen = wait_for_event(stack, [*baseline], "expired", 15, "(the baseline)")
        quiet = late_by(seen, baseline)
        report("baseline_worst_lateness_s", round(max(quiet.values()), 2))
        on_time = max(ON_TIME_FLOOR_S, max(quiet.values()) + BEYOND_BASELINE_S)
        assert max(quiet.values()) < ON_TIME_FLOOR_S, f"AWS grants were late with nothing in the way: {quiet}"
        assert stressed_from - time.time() > 2, "the baseline took too long: the limits would begin after the ends"

        wait_until(lambda: time.time() >= stressed_from - 1.5, 15, "the limits' start")
        opened = time.monotonic()
        for method in REFUSED:  # Slack in a bad minute: every call refused until recover()
            stack.slack.fail(method, status=429, retry_after=RETRY_AFTER_S, times=1_000_000)
        stack.gcp.throttle = Throttle(THROTTLED)

        aws_late = lateness_when_all_expired(stack, seen, aws, on_time + 30)
        report("aws_worst_lateness_s", round(max(aws_late.values()), 2))
        assert max(aws_late.values()) <= on_time, (
            f"an AWS grant was cut or recorded late while Slack answered 429 and GCP throttled: {aws_late} s past "
            f"due, against {on_time:.1f} s (the baseline: {quiet})"
        )
        assert all(denied(stack, request_id) for request_id in aws)

        # the limits held over the AWS ends and hold on until GCP has been refused twice for each grant
        wait_until(lambda: refused_notices(stack, opened, aws | gcp), 15, "a notice refused by Slack")
        wait_until(lambda: all(failures(stack, i) >= 2 for i in gcp), 15, "GCP refusing each grant twice")
        refused = refused_notices(stack, opened, aws | gcp)
        assert not outcome_dms_before(stack, time.monotonic(), aws | gcp), "Slack took a notice while refusing"
        assert all("expired" not in trail(stack).get(i, {}) for i in gcp), "a GCP grant cut while GCP refused"
        assert stack.gcp.throttle.refused >= 1 and all(binding_of(stack, i) for i in gcp)
        report("slack_refused_during_limits", len(refused))
        report("gcp_refused_during_limits", stack.gcp.throttle.refused)

        lifted, lifted_at = time.time(), time.monotonic()
        stack.gcp.throttle = Throttle(LIFTED)
        stack.slack.recover()

        seen = wait_for_event(stack, [*gcp], "expired", GCP_AFTER_LIFT_S + 20, "after GCP's throttle was lifted")
        after_lift = {i: round(seen[i]["expired"].written - lifted, 2) for i in gcp}
        report("gcp_worst_cut_after_lift_s", max(after_lift.values()))
        assert max(after_lift.values()) <= GCP_AFTER_LIFT_S, f"GCP grants cut long after the lift: {after_lift}"
        assert not any(binding_of(stack, i) for i in gcp), "a GCP binding outlived its revocation"

        everyone = baseline | aws | gcp
        wait_until(lambda: all(notified(stack, i) for i in everyone), 60, "every ended grant's notices")
        report("slack_all_told_after_lift_s", round(time.monotonic() - lifted_at, 1))
        wait_until(lambda: waiting_jobs(stack.redis()) == 0, 60, "every job done")
        assert failed_jobs(stack) == 0, "a job gave up"
        refs = {i: slack_refs(stack, i) for i in everyone}
        assert all("alert_resolved" in r for r in refs.values() if "alert_ts" in r), "a revocation alert left raised"
        told = outcome_dms(stack)
        assert {i: told.get(i, 0) for i in everyone} == dict.fromkeys(everyone, 1), "a notice lost or sent twice"


def late_by(seen: dict[str, dict[str, Event]], durations: dict[str, int]) -> dict[str, float]:
    """Seconds from each grant's due time to when its `expired` record was written (recorded lateness)."""
    return {
        i: round(seen[i]["expired"].written - seen[i]["granted"].at.timestamp() - seconds, 2)
        for i, seconds in durations.items()
    }


def lateness_when_all_expired(
    stack: Stack, granted: dict[str, dict[str, Event]], durations: dict[str, int], patience: float
) -> dict[str, float]:
    """late_by once each grant is recorded expired, or `patience` seconds after the last is due: a grant not
    recorded by then counts as that late (infinity), so that the assertion shows every figure."""
    last_due = max(expiries(granted, durations))
    while True:
        seen = trail(stack)
        done = [i for i in durations if "expired" in seen.get(i, {})]
        if len(done) == len(durations) or time.time() > last_due + patience:
            late = late_by(seen, {i: durations[i] for i in done})
            return {i: late.get(i, float("inf")) for i in durations}
        time.sleep(0.1)


def failures(stack: Stack, request_id: str) -> int:
    return sum(1 for event in audit_events(stack, request_id) if event["event"] == "revocation failed")


def binding_of(stack: Stack, request_id: str) -> list[object]:
    bindings = stack.gcp.policies[PROJECT].get("bindings", [])
    return [b for b in bindings if b.get("condition", {}).get("title") == f"jitbot {request_id}"]


def about(call: Call, request_ids: Iterable[str]) -> bool:
    text = str(call.params.get("text", ""))
    return any(f"`{i}`" in text for i in request_ids)


def refused_notices(stack: Stack, since: float, request_ids: dict[str, int]) -> list[Call]:
    """Slack's 429s since `since` to the calls that tell of, or scrub, these grants' ends (an approval message's
    text names its request without the backticks)."""
    return [c for c in stack.slack.calls if c.at >= since and c.answered == 429 and about(c, request_ids)]


def is_outcome_dm(call: Call) -> bool:
    return call.method == "chat.postMessage" and "has expired" in str(call.params.get("text", ""))


def outcome_dms_before(stack: Stack, moment: float, request_ids: dict[str, int]) -> list[Call]:
    """The outcome DMs about these grants that Slack accepted before `moment`."""
    return [
        c
        for c in stack.slack.calls
        if c.at < moment and c.answered == 200 and is_outcome_dm(c) and about(c, request_ids)
    ]


def outcome_dms(stack: Stack) -> dict[str, int]:
    """Request id → the outcome DMs Slack accepted for it."""
    counts: dict[str, int] = {}
    for call in stack.slack.calls_to("chat.postMessage"):
        found = REQUEST_ID.search(str(call.params.get("text", "")))
        if call.answered == 200 and is_outcome_dm(call) and found:
            counts[found.group(0)] = counts.get(found.group(0), 0) + 1
    return counts


def notified(stack: Stack, request_id: str) -> bool:
    """Its requester told of the end, and the credential DM scrubbed (jitbot marks each once Slack took it)."""
    refs = slack_refs(stack, request_id)
    return "told_expired" in refs and "scrubbed" in refs


def failed_jobs(stack: Stack) -> int:
    return sum(make_queue(stack.redis(), name).failed_job_registry.count for name in QUEUES)
