"""The request lifecycle as one transition table."""

from datetime import UTC, datetime, timedelta

import pytest

from jitbot.domain import (
    TRANSITIONS,
    Action,
    Status,
    apply,
    approve,
    ask_extension,
    grant,
    new_request_id,
    open_request,
    refusal,
    time_out,
)
from jitbot.errors import InvalidTransition, TimedOut

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def pending():
    request, _ = open_request("r-abc234", "U0ALICE", "prod-db", timedelta(hours=2), "INC-1", NOW)
    return request


def test_open_request_then_pending_and_requested_event() -> None:
    request, event = open_request("r-abc234", "U0ALICE", "prod-db", timedelta(hours=2), "INC-1", NOW)
    assert request.status is Status.PENDING and request.version == 0
    assert (event.event, event.actor, event.detail["duration_s"]) == ("requested", "U0ALICE", 7200)


def test_approve_when_one_required_then_approved_by_that_approver() -> None:
    request, event = approve(pending(), "U0BOB", required=1, now=NOW)
    assert request.status is Status.APPROVED and request.decided_by == "U0BOB" and request.version == 1
    assert (event.event, event.status) == ("approved", "approved")


def test_approve_when_two_required_then_endorsed_first_approved_second() -> None:
    once, first = approve(pending(), "U0BOB", required=2, now=NOW)
    twice, second = approve(once, "U0CAROL", required=2, now=NOW)
    assert (once.status, first.event) == (Status.PENDING, "endorsed")
    assert (twice.status, second.event, twice.approvals) == (Status.APPROVED, "approved", ("U0BOB", "U0CAROL"))


def test_grant_then_active_until_now_plus_duration() -> None:
    approved, _ = approve(pending(), "U0BOB", 1, NOW)
    active, event = grant(approved, {"session": "s"}, NOW)
    assert active.expires_at == NOW + timedelta(hours=2) and active.grant == {"session": "s"}
    assert "grant" not in event.detail
    assert active.time_left(NOW + timedelta(hours=1)) == timedelta(hours=1)
    assert active.time_left(NOW + timedelta(hours=3)) == timedelta(0)


@pytest.mark.parametrize("status", [s for s in Status if s.is_final])
@pytest.mark.parametrize("action", list(Action))
def test_apply_when_final_status_then_every_action_refused(status: Status, action: Action) -> None:
    from dataclasses import replace

    with pytest.raises(InvalidTransition, match="no longer"):
        apply(replace(pending(), status=status), action, "U0BOB", NOW)


def test_apply_when_pending_then_cannot_be_granted_directly() -> None:
    with pytest.raises(InvalidTransition):
        apply(pending(), Action.GRANT, "jitbot", NOW)


def test_transition_table_when_read_then_final_states_are_exactly_the_outcomes() -> None:
    assert {s for s in Status if s.is_final} == {
        Status.DENIED,
        Status.FAILED,
        Status.EXPIRED,
        Status.REVOKED,
        Status.CANCELLED,
    }
    ending = {Action.EXPIRE, Action.REVOKE, Action.FAIL}
    assert {TRANSITIONS[Status.ACTIVE][a] for a in ending} == {Status.EXPIRED, Status.REVOKED, Status.FAILED}
    assert {t for a, t in TRANSITIONS[Status.ACTIVE].items() if a not in ending} == {Status.ACTIVE}


def test_refusal_then_audit_event_without_state_change() -> None:
    event = refusal(pending(), "U0EVE", "approve", "not an approver", NOW)
    assert (event.event, event.status, event.detail["attempted"]) == ("refused", "pending", "approve")


def test_new_request_id_then_short_and_unambiguous() -> None:
    ids = {new_request_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(len(i) == 8 and i.startswith("r-") and not set(i[2:]) & set("01loi") for i in ids)


@pytest.mark.parametrize("action", [Action.APPROVE, Action.ENDORSE, Action.DENY])
def test_apply_when_decision_after_the_deadline_then_timed_out_and_at_the_deadline_still_decided(
    action: Action,
) -> None:
    from dataclasses import replace

    request = replace(pending(), decide_by=NOW + timedelta(hours=1))
    assert apply(request, action, "U0BOB", NOW + timedelta(hours=1))[0].version == 1
    with pytest.raises(TimedOut, match="Request r-abc234 timed out at 2026-11-23 13:00:00 UTC, before anyone decided"):
        apply(request, action, "U0BOB", NOW + timedelta(hours=1, seconds=1))


@pytest.mark.parametrize("action", [Action.EXTEND, Action.ENDORSE_EXTENSION, Action.DENY_EXTENSION])
def test_apply_when_extension_decided_after_its_deadline_then_timed_out_and_time_out_drops_it(action: Action) -> None:
    active, _ = grant(approve(pending(), "U0BOB", 1, NOW)[0], {}, NOW)
    asked, _ = ask_extension(active, timedelta(hours=1), "INC-2", NOW + timedelta(minutes=10), timedelta(hours=1))
    late = NOW + timedelta(hours=1, minutes=10, seconds=1)
    assert asked.extend_decide_by == NOW + timedelta(hours=1, minutes=10)
    with pytest.raises(TimedOut, match="The extension of r-abc234 timed out at 2026-11-23 13:10:00 UTC"):
        apply(asked, action, "U0BOB", late)
    dropped, event = time_out(asked, late)
    assert (dropped.status, dropped.expires_at, event.event, event.actor) == (
        Status.ACTIVE,
        active.expires_at,
        "extension timed out",
        "jitbot",
    )
    assert (dropped.extend_by, dropped.extend_decide_by, dropped.deadline) == (None, None, None)
