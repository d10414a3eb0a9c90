"""Who may approve, the bounds of a request, and the messages people see."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from jitbot.core.catalog import parse_catalog
from jitbot.core.commands import ShowList, page_value, parse_page
from jitbot.core.domain import AccessRequest, Status, approve, grant, open_request
from jitbot.core.errors import NotFound, PolicyError, UsageError
from jitbot.core.policy import check_approver, check_request, find_resource
from jitbot.slack import ids
from jitbot.slack.approval import approval_message
from jitbot.slack.dms import credentials_dm, outcome_dm, scrubbed_dm
from jitbot.slack.lists import home, request_list
from jitbot.slack.views import Reply, escape

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
CATALOG = parse_catalog(
    """
approver_channel: C0APPROVALS
admins: [U0ADMIN]
resources:
  prod-db:
    provider: aws
    role_arn: arn:aws:iam::123456789012:role/jit-prod-db
    approvers: [U0BOB, S0DBAS]
    max_duration: 4h
"""
)
DB = CATALOG.resources["prod-db"]


def request(requester: str = "U0ALICE", reason: str = "INC-1"):
    return open_request("r-abc234", requester, "prod-db", timedelta(hours=2), reason, NOW)[0]


def test_find_resource_when_unknown_then_lists_the_known_ones() -> None:
    with pytest.raises(NotFound, match="`prod-db`"):
        find_resource(CATALOG, "prod-dbx")


@pytest.mark.parametrize(
    ("duration", "needle"),
    [
        (timedelta(minutes=5), "shorter than the minimum for `prod-db`, 15m"),
        (timedelta(hours=5), "longer than the maximum for `prod-db`, 4h"),
    ],
)
def test_check_request_when_outside_bounds_then_names_the_bound(duration: timedelta, needle: str) -> None:
    with pytest.raises(PolicyError, match=needle):
        check_request(DB, duration, "INC-1")


def test_check_request_when_within_bounds_then_passes() -> None:
    check_request(DB, timedelta(hours=4), "INC-1")
    check_request(DB, timedelta(minutes=15), "INC-1")


@pytest.mark.parametrize(
    ("clicker", "groups", "needle"),
    [
        ("U0ALICE", {}, "your own request"),
        ("U0EVE", {}, "Only the approvers of `prod-db`"),
        ("U0EVE", {"S0OTHER": frozenset({"U0EVE"})}, "Only the approvers"),
    ],
)
def test_check_approver_when_not_allowed_then_policy_error(clicker: str, groups: dict, needle: str) -> None:
    with pytest.raises(PolicyError, match=needle):
        check_approver(CATALOG, DB, request(), clicker, groups)


@pytest.mark.parametrize(
    ("clicker", "groups"), [("U0BOB", {}), ("U0ADMIN", {}), ("U0DBA", {"S0DBAS": frozenset({"U0DBA"})})]
)
def test_check_approver_when_listed_member_or_admin_then_allowed(clicker: str, groups: dict) -> None:
    check_approver(CATALOG, DB, request(), clicker, groups)


def test_check_approver_when_admin_is_requester_then_refused() -> None:
    with pytest.raises(PolicyError, match="your own"):
        check_approver(CATALOG, DB, request("U0ADMIN"), "U0ADMIN", {})


def test_check_approver_when_same_approver_twice_then_refused() -> None:
    once, _ = approve(request(), "U0BOB", 2, NOW)
    with pytest.raises(PolicyError, match="already approved"):
        check_approver(CATALOG, DB, once, "U0BOB", {})


def test_escape_when_mentions_and_links_then_inert_and_truncated() -> None:
    assert (
        escape("<!channel> <@U0BOB> <https://evil|x> a&b\x07")
        == "&lt;!channel&gt; &lt;@U0BOB&gt; &lt;https://evil|x&gt; a&amp;b"
    )
    assert escape("x" * 400).endswith("… (truncated)")


def test_approval_message_when_pending_then_buttons_carry_only_the_id() -> None:
    _, blocks = approval_message(request(reason="<!here> please"), DB)
    buttons = blocks[-1]["elements"]
    assert [b["text"]["text"] for b in buttons] == ["Approve", "Deny"]
    assert [b["action_id"] for b in buttons] == [ids.APPROVE, ids.DENY]
    assert {b["value"] for b in buttons} == {"r-abc234"}
    assert "<!here>" not in str(blocks) and "&lt;!here&gt;" in str(blocks)
    assert "0 of 1" in str(blocks)


@pytest.mark.parametrize(
    ("status", "needle"),
    [
        (Status.DENIED, "Denied by <@U0BOB>"),
        (Status.EXPIRED, "Approved by <@U0BOB>; expired, access removed"),
        (Status.FAILED, "Failed: boom"),
    ],
)
def test_approval_message_when_decided_then_no_buttons_and_says_what_happened(status: Status, needle: str) -> None:
    decided = replace(request(), status=status, decided_by="U0BOB", decided_at=NOW, granted_at=NOW, note="boom")
    _, blocks = approval_message(decided, DB)
    assert needle in str(blocks) and all(b["type"] != "actions" for b in blocks)


def test_credentials_dm_and_scrub_then_secret_only_in_the_first() -> None:
    active, _ = grant(approve(request(), "U0BOB", 1, NOW)[0], {}, NOW)
    text, blocks = credentials_dm(active, {"AWS_SECRET_ACCESS_KEY": "sekrit", "AWS_REGION": "eu-west-1"}, {})
    assert "export AWS_SECRET_ACCESS_KEY=sekrit" in str(blocks) and "aws_secret_access_key = sekrit" in str(blocks)
    assert "sekrit" not in text
    assert "aws_region" not in str(blocks) and "# region: eu-west-1" in str(blocks)
    assert "sekrit" not in str(scrubbed_dm(active))


def test_outcome_dm_when_denied_then_names_who() -> None:
    assert "denied by <@U0BOB>" in outcome_dm(replace(request(), status=Status.DENIED, decided_by="U0BOB"))


def open_entries(pending: int, active: int, requester: str = "") -> list[AccessRequest]:
    """`pending` requests and `active` grants of `requester` (else of several people), as the list loads them."""
    asked = [
        open_request(f"r-{n:06d}", requester or f"U0USER{n % 7}", "prod-db", timedelta(hours=2), "INC-1", NOW)[0]
        for n in range(pending + active)
    ]
    granted = [grant(approve(r, "U0BOB", 1, NOW)[0], {}, NOW)[0] for r in asked[pending:]]
    return asked[:pending] + granted


def pages(requests: list[AccessRequest], viewer: str, everyone: bool) -> list[Reply]:
    """Every page of the list, following its More buttons as a person would."""
    shown, value = [], page_value(ShowList(everyone))
    while value:
        shown.append(request_list(requests, viewer, NOW, parse_page(value)))
        more = [e for b in shown[-1].blocks or [] if b["type"] == "actions" for e in b["elements"]]
        value = next((e["value"] for e in more if e["action_id"] == ids.MORE), "")
    return shown


@pytest.mark.parametrize(("viewer", "everyone", "requester"), [("U0BOB", True, ""), ("U0ALICE", False, "U0ALICE")])
def test_request_list_when_60_pending_and_60_active_then_pages_within_a_message_with_totals(
    viewer: str, everyone: bool, requester: str
) -> None:
    requests = open_entries(pending=60, active=60, requester=requester)
    shown = pages(requests, viewer, everyone)
    assert len(shown) == 6 and all(len(page.blocks or []) <= 50 for page in shown)  # a message's limit
    assert "showing 1\u201320 of 120: 60 pending, 60 active" in shown[0].text
    assert "showing 101\u2013120 of 120: 60 pending, 60 active" in str(shown[-1].blocks[0])
    assert "More" not in str(shown[-1].blocks) and "More (100 left)" in str(shown[0].blocks)
    listed = [b["text"]["text"].split("`")[1] for page in shown for b in page.blocks[1:] if b["type"] == "section"]
    assert listed == [r.id for r in requests]  # every entry once, in order


def test_request_list_when_the_list_shrank_before_more_then_its_last_page() -> None:
    reply = request_list(open_entries(pending=5, active=0), "U0BOB", NOW, ShowList(everyone=True, offset=20))
    assert "showing 1\u20135 of 5: 5 pending" in reply.text and "More" not in str(reply.blocks)


@pytest.mark.parametrize("value", ["all:x", "everyone:20", "all:-1", "all:20:r-abc234", "mine:1234567", ""])
def test_parse_page_when_not_a_page_value_then_usage_error(value: str) -> None:
    with pytest.raises(UsageError, match="not a page of the list"):
        parse_page(value)


def test_home_when_60_mine_and_60_waiting_then_within_100_blocks_and_says_how_many_more() -> None:
    requests = open_entries(pending=60, active=60)
    view = home("U0BOB", requests[60:], requests[:60], NOW, [DB])
    texts = str(view["blocks"])
    assert len(view["blocks"]) <= 100 and view["blocks"][-1]["elements"][0]["text"].startswith("Updated")
    assert "… and 40 more: `/access list`" in texts and "… and 45 more: `/access list all`" in texts
