"""Who may ask: standing from users.info, requesters and break-glass lists, identity domains — no fakes needed."""

from datetime import UTC, datetime, timedelta

import pytest

from jitbot.core.catalog import parse_catalog
from jitbot.core.domain import open_request
from jitbot.core.eligibility import (
    Installation,
    Person,
    Standing,
    check_identity_domain,
    classify,
    eligible,
    is_named,
    principal,
    refusal,
    requester_groups,
)
from jitbot.core.errors import ConfigError, NotEligible

CATALOG = """
approver_channel: C0APPROVALS
alert_channel: C0SECURITY
defaults:
  identity_domains: [example.com]
resources:
  open:
    provider: aws
    role_arn: arn:aws:iam::123456789012:role/jit-open
    approvers: [U0BOB]
  lake:
    provider: gcp
    resource: projects/acme-lake
    role: roles/bigquery.dataViewer
    approvers: [U0BOB]
    requesters: [U0GWEN, S0DATA]
  vault:
    provider: aws
    role_arn: arn:aws:iam::123456789012:role/jit-vault
    approvers: [U0BOB]
    breakglass: true
    requesters: [S0DATA, U0GWEN]
    breakglass_requesters: [S0ONCALL, U0GWEN]
"""
CATALOG_ = parse_catalog(CATALOG)
OPEN, LAKE, VAULT = (CATALOG_.resources[n] for n in ("open", "lake", "vault"))
HOME = Installation("T0TEAM")
GROUPS = {"S0DATA": frozenset({"U0DANA", "U0OLI"}), "S0ONCALL": frozenset({"U0OLI"})}


def member(user: str) -> Person:
    return Person(user, Standing.MEMBER)


@pytest.mark.parametrize(
    ("info", "standing"),
    [
        ({"team_id": "T0TEAM"}, Standing.MEMBER),
        ({"team_id": "T0TEAM", "is_restricted": True}, Standing.GUEST),
        ({"team_id": "T0TEAM", "is_restricted": True, "is_ultra_restricted": True}, Standing.GUEST),
        ({"team_id": "T0PARTNER"}, Standing.EXTERNAL),
        ({"team_id": "T0TEAM", "is_stranger": True}, Standing.EXTERNAL),
        ({"team_id": "T0TEAM", "is_bot": True}, Standing.BOT),
        ({"team_id": "T0TEAM", "is_app_user": True}, Standing.BOT),
        ({"team_id": "T0TEAM", "deleted": True, "is_restricted": True}, Standing.DEACTIVATED),
    ],
)
def test_classify_when_users_info_flags_then_standing(info: dict[str, object], standing: Standing) -> None:
    assert classify("U0X", info, HOME).standing is standing


def test_classify_when_grid_organisation_then_its_workspaces_are_home_and_others_external() -> None:
    grid = Installation("T0HQ", "E0ACME")
    same = {"team_id": "T0SALES", "enterprise_user": {"enterprise_id": "E0ACME"}}
    other = {"team_id": "T0ELSE", "enterprise_user": {"enterprise_id": "E0OTHER"}}
    assert classify("U0X", same, grid).standing is Standing.MEMBER
    assert classify("U0X", other, grid).standing is Standing.EXTERNAL
    assert grid.is_home("T0SALES", "E0ACME") and not grid.is_home("T0SALES", None)


def test_refusal_when_no_requesters_then_full_members_only() -> None:
    assert refusal(OPEN, member("U0EVE"), {}) is None
    for standing in (Standing.GUEST, Standing.EXTERNAL, Standing.BOT, Standing.DEACTIVATED):
        refused = refusal(OPEN, Person("U0X", standing), {})
        assert refused is not None and refused.code == standing.value


def test_refusal_when_requesters_then_listed_ids_and_group_members_and_a_group_lets_no_guest_in() -> None:
    assert refusal(LAKE, member("U0DANA"), GROUPS) is None
    assert refusal(LAKE, Person("U0GWEN", Standing.GUEST), GROUPS) is None  # named by id
    refused = refusal(LAKE, member("U0EVE"), GROUPS)
    assert refused is not None and refused.code == "not eligible" and "<!subteam^S0DATA>" in str(refused)
    guest = refusal(LAKE, Person("U0DANA", Standing.GUEST), GROUPS)
    assert guest is not None and guest.code == "guest"


def test_refusal_when_breakglass_then_both_lists_must_let_the_person_in() -> None:
    assert refusal(VAULT, member("U0OLI"), GROUPS, breakglass=True) is None
    assert refusal(VAULT, member("U0DANA"), GROUPS) is None
    refused = refusal(VAULT, member("U0DANA"), GROUPS, breakglass=True)
    assert refused is not None and "break glass on `vault`" in str(refused)
    assert is_named(VAULT, "U0GWEN", breakglass=True) and not is_named(VAULT, "U0OLI", breakglass=True)
    assert not is_named(OPEN, "U0GWEN")


def test_eligible_and_groups_when_catalog_then_only_what_the_person_may_ask_for() -> None:
    assert [r.name for r in eligible(CATALOG_.resources.values(), member("U0EVE"), GROUPS)] == ["open"]
    assert [r.name for r in eligible(CATALOG_.resources.values(), member("U0DANA"), GROUPS)] == list(CATALOG_.resources)
    assert requester_groups(CATALOG_.resources.values()) == ("S0DATA", "S0ONCALL")


def test_identity_domain_when_email_used_outside_the_domains_then_refused() -> None:
    check_identity_domain(LAKE, {"email": "dana@example.com"})
    with pytest.raises(
        NotEligible, match=r"grants only to addresses at example\.com; yours is at gmail\.com"
    ) as caught:
        check_identity_domain(LAKE, {"email": "dana@gmail.com"})
    assert caught.value.code == "identity outside allowed domains"
    check_identity_domain(OPEN, {"email": "dana@gmail.com"})  # STS does not grant to an email


def test_principal_when_each_cloud_then_what_the_grant_goes_to() -> None:
    now = datetime(2026, 12, 7, tzinfo=UTC)
    request, _ = open_request("r-abc234", "U0DANA", "lake", timedelta(hours=1), "why", now, "gcp")
    assert principal(request, OPEN) == "role session `jit-r-abc234-U0DANA` of `arn:aws:iam::123456789012:role/jit-open`"
    gcp = request.__class__(**{**vars(request), "identity": {"email": "dana@example.com"}})
    assert principal(gcp, LAKE) == "`user:dana@example.com`"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("    requesters: []\n", "lists nobody"),
        ("    requesters: [dana]\n", "'dana' is not a user"),
        ("    identity_domains: ['not a domain']\n", "is not a domain"),
    ],
)
def test_catalog_when_people_keys_wrong_then_error_names_the_key(line: str, expected: str) -> None:
    broken = CATALOG.replace("    requesters: [U0GWEN, S0DATA]\n", line)
    with pytest.raises(ConfigError, match=expected):
        parse_catalog(broken)
