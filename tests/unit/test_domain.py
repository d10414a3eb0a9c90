"""The request lifecycle as one transition table."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from jitbot.core.domain import (
    TRANSITIONS,
    AccessRequest,
    Action,
    Status,
    _apply,
    approve,
    approve_by_policy,
    ask_extension,
    break_glass,
    cancel,
    confirm_end,
    end_now,
    fail,
    grant,
    new_request_id,
    open_request,
    refusal,
    time_out,
)
from jitbot.core.errors import InvalidTransition, TimedOut
from jitbot.core.events import EventName

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
        _apply(replace(pending(), status=status), action, "U0BOB", NOW)


def test_apply_when_pending_then_cannot_be_granted_directly() -> None:
    with pytest.raises(InvalidTransition):
        _apply(pending(), Action.GRANT, "jitbot", NOW)


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
    assert _apply(request, action, "U0BOB", NOW + timedelta(hours=1))[0].version == 1
    with pytest.raises(TimedOut, match="Request r-abc234 timed out at 2026-11-23 13:00:00 UTC, before anyone decided"):
        _apply(request, action, "U0BOB", NOW + timedelta(hours=1, seconds=1))


@pytest.mark.parametrize("action", [Action.EXTEND, Action.ENDORSE_EXTENSION, Action.DENY_EXTENSION])
def test_apply_when_extension_decided_after_its_deadline_then_timed_out_and_time_out_drops_it(action: Action) -> None:
    active, _ = grant(approve(pending(), "U0BOB", 1, NOW)[0], {}, NOW)
    asked, _ = ask_extension(active, timedelta(hours=1), "INC-2", NOW + timedelta(minutes=10), timedelta(hours=1))
    late = NOW + timedelta(hours=1, minutes=10, seconds=1)
    assert asked.extend_decide_by == NOW + timedelta(hours=1, minutes=10)
    with pytest.raises(TimedOut, match="The extension of r-abc234 timed out at 2026-11-23 13:10:00 UTC"):
        _apply(asked, action, "U0BOB", late)
    dropped, event = time_out(asked, late)
    assert (dropped.status, dropped.expires_at, event.event, event.actor) == (
        Status.ACTIVE,
        active.expires_at,
        "extension timed out",
        "jitbot",
    )
    assert (dropped.extend_by, dropped.extend_decide_by, dropped.deadline) == (None, None, None)


def active(ending_by: str | None = None) -> AccessRequest:
    granted, _ = grant(approve(pending(), "U0BOB", 1, NOW)[0], {}, NOW)
    return end_now(granted, ending_by, NOW)[0] if ending_by else granted


@pytest.mark.parametrize(
    ("request_", "status", "actor", "note"),
    [
        (active(), Status.EXPIRED, "jitbot", None),
        (active("U0ALICE"), Status.REVOKED, "U0ALICE", None),
        (replace(active(), ending_by="jitbot", note="not delivered"), Status.FAILED, "jitbot", "not delivered"),
        (approve(pending(), "U0BOB", 1, NOW)[0], Status.FAILED, "jitbot", "not issued in time"),
    ],
)
def test_confirm_end_then_expired_revoked_or_failed_by_whoever_ended_it(
    request_: AccessRequest, status: Status, actor: str, note: str | None
) -> None:
    ended, event = confirm_end(request_, "gone", NOW)
    assert (ended.status, ended.note, ended.verified, event.actor) == (status, note, "gone", actor)
    assert event.detail == {"note": note, "verified_at": NOW.isoformat(), "verified": "gone"}


def test_end_now_then_ends_at_once_and_the_note_only_when_jitbot_says_why() -> None:
    asked, event = end_now(active(), "U0ALICE", NOW)
    assert (asked.status, asked.ending_by, asked.expires_at, event.event) == (
        Status.ACTIVE,
        "U0ALICE",
        NOW,
        "end requested",
    )
    assert event.detail == {"ending_by": "U0ALICE", "expires_at": NOW.isoformat()}
    assert end_now(active(), "jitbot", NOW, "not delivered")[1].detail["note"] == "not delivered"


def test_named_moves_when_policy_or_person_acts_then_fields_set_by_the_move() -> None:
    by_policy, event = approve_by_policy(pending(), NOW)
    assert (by_policy.decided_by, by_policy.decided_at, event.actor, event.event) == (
        "jitbot",
        NOW,
        "jitbot",
        "approved",
    )
    glass, event = break_glass(pending(), "U0ALICE", NOW)
    assert (glass.status, glass.decided_by, event.event) == (Status.APPROVED, "U0ALICE", "break-glass")
    withdrawn, event = cancel(pending(), "U0ALICE", NOW)
    assert (withdrawn.status, withdrawn.decided_at, event.detail) == (
        Status.CANCELLED,
        NOW,
        {"decided_at": NOW.isoformat()},
    )
    failed, event = fail(approve(pending(), "U0BOB", 1, NOW)[0], "boom", NOW)
    assert (failed.status, failed.note, event.actor, event.event) == (Status.FAILED, "boom", "jitbot", "failed")


def test_actions_when_read_then_each_names_its_own_event() -> None:
    assert all(isinstance(action.value, EventName) for action in Action)
    assert len({action.value for action in Action}) == len(Action)
