"""The break-glass review as a second small table: each move returns the event the trail keeps."""

from datetime import UTC, datetime, timedelta

from jitbot.core.domain import open_request
from jitbot.core.review import REVIEW_TRANSITIONS, ReviewAction, ReviewStatus, close_review, open_review, realert_review

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
USED, _ = open_request("r-abc234", "U0ALICE", "prod-db", timedelta(hours=2), "INC-9", NOW, "aws")


def test_open_review_then_open_by_jitbot_with_the_provider() -> None:
    event = open_review(USED, NOW)
    assert (event.event, event.actor, event.status, event.provider) == ("review opened", "jitbot", "open", "aws")


def test_close_review_then_acknowledged_or_flagged_by_the_reviewer() -> None:
    acknowledged = close_review(USED, "U0BOB", True, NOW)
    flagged = close_review(USED, "U0ADMIN", False, NOW)
    assert (acknowledged.event, acknowledged.actor, acknowledged.status) == (
        "review acknowledged",
        "U0BOB",
        "acknowledged",
    )
    assert (flagged.event, flagged.actor, flagged.status, flagged.provider) == (
        "review flagged",
        "U0ADMIN",
        "flagged",
        "aws",
    )


def test_realert_review_then_still_open_with_the_count_and_no_provider_as_before() -> None:
    event = realert_review(USED, 2, NOW)
    assert (event.event, event.status, event.detail, event.provider) == ("review re-alerted", "open", {"alerts": 2}, "")


def test_review_table_when_read_then_only_an_open_review_moves_and_closed_ones_are_final() -> None:
    assert set(REVIEW_TRANSITIONS) == {ReviewStatus.OPEN}
    assert set(REVIEW_TRANSITIONS[ReviewStatus.OPEN]) == set(ReviewAction)
    assert {s for s in ReviewStatus if s.is_final} == {ReviewStatus.ACKNOWLEDGED, ReviewStatus.FLAGGED}
