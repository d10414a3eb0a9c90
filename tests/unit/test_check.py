"""`jitbot check`: a row per resource, the clouds' limits explained, and --live failures named and non-zero."""

from datetime import datetime
from pathlib import Path

import pytest

from jitbot.core.catalog import Resource, parse_catalog
from jitbot.core.domain import AccessRequest
from jitbot.core.errors import ProviderError
from jitbot.ops.check import check, people_warnings, render, render_who, who_may
from jitbot.ops.cli import main
from jitbot.providers.base import Issued

CATALOG = """
approver_channel: C0APPROVALS
resources:
  prod-db:
    provider: aws
    role_arn: arn:aws:iam::123456789012:role/jit-prod-db
    min_duration: 5m
    approvers: [U0BOB]
  analytics:
    provider: gcp
    resource: projects/acme-analytics
    role: roles/bigquery.dataViewer
    approvers: [U0DAVE]
"""


class Refusing:
    """A provider whose live check fails as a cloud without permission would."""

    def grant(self, request: AccessRequest, resource: Resource, now: datetime) -> Issued:
        raise AssertionError("check must not grant")

    extend = grant

    def revoke(self, request: AccessRequest, resource: Resource, now: datetime) -> None:
        raise AssertionError("check must not revoke")

    def check(self, resource: Resource) -> str:
        if resource.kind == "gcp":
            raise ProviderError(
                "GCP getIamPolicy refused (403): grant roles/resourcemanager.projectIamAdmin", retryable=False
            )
        return "ok: role jit-prod-db"


def test_check_offline_then_every_resource_with_its_cloud_limits_and_not_asked() -> None:
    rows = check(parse_catalog(CATALOG), None)
    assert [(r.resource, r.kind, r.ok) for r in rows] == [("prod-db", "aws", True), ("analytics", "gcp", True)]
    assert "grants under 15m: aws issues 15m, jitbot revokes at the grant's end" in rows[0].terms
    assert rows[1].terms == "15m to 4h" and rows[1].live == "not checked (--live)"


def test_check_live_when_one_cloud_refuses_then_row_failed_with_the_fix() -> None:
    rows = check(parse_catalog(CATALOG), lambda kind: Refusing())
    assert [r.ok for r in rows] == [True, False]
    table = render(rows)
    assert "ok: role jit-prod-db" in table and "FAILED: GCP getIamPolicy refused (403)" in table
    assert table.splitlines()[0].split() == ["resource", "provider", "durations", "live", "check"]


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "roles/bigquery.dataViewer",
            "bigquery viewer",
            "line 12: resources.analytics.role: 'bigquery viewer' is not of the form roles/",
        ),
        ("  analytics:\n", "  prod-db:\n", "line 9: resources.prod-db: given twice (first at line 4)"),
    ],
    ids=["bad value", "duplicate key"],
)
def test_jitbot_check_when_catalog_invalid_then_exit_2_naming_line_and_key(
    old: str,
    new: str,
    expected: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "jitbot.yml"
    path.write_text(CATALOG.replace(old, new))
    monkeypatch.setenv("JITBOT_CONFIG", str(path))
    assert main(["check"]) == 2
    [line] = capsys.readouterr().err.splitlines()  # one clean line, no traceback
    assert line.startswith(f"jitbot: {path} {expected}"), line


PEOPLE_CATALOG = """
approver_channel: C0APPROVALS
alert_channel: C0SECURITY
resources:
  staging-logs:
    provider: aws
    role_arn: arn:aws:iam::123456789012:role/jit-staging-logs
    auto_approve: true
  vault:
    provider: aws
    role_arn: arn:aws:iam::123456789012:role/jit-vault
    approvers: [U0CAROL, S0SEC]
    breakglass: true
    requesters: [S0DATA, U0GWEN]
    breakglass_requesters: [S0ONCALL]
  analytics:
    provider: gcp
    resource: projects/acme-analytics
    role: roles/bigquery.dataViewer
    approvers: [U0DAVE]
    requesters: [U0TYPO]
  lake:
    provider: gcp
    resource: projects/acme-lake
    role: roles/bigquery.dataViewer
    approvers: [U0DAVE]
    identity_domains: [example.com]
"""


def test_who_may_when_offline_then_each_resource_says_who_requests_breaks_glass_and_approves() -> None:
    rows = {row.resource: row for row in who_may(parse_catalog(PEOPLE_CATALOG))}
    assert rows["staging-logs"].request.startswith("every full member") and rows["staging-logs"].breakglass == "-"
    assert rows["vault"].request == "S0DATA, U0GWEN"
    assert rows["vault"].breakglass == "S0ONCALL (if they may request)"
    assert rows["vault"].approve == "U0CAROL, S0SEC, admins"
    assert "vault\n  request: S0DATA, U0GWEN\n  break glass: S0ONCALL" in render_who(list(rows.values()))


def test_people_warnings_when_unattended_without_requesters_or_email_without_domains_then_named() -> None:
    warnings = people_warnings(parse_catalog(PEOPLE_CATALOG))
    assert [w.split(":")[0] for w in warnings] == ["staging-logs", "analytics"]
    assert "auto_approve with no requesters" in warnings[0]
    assert "GCP member is the Slack profile email" in warnings[1] and "identity_domains" in warnings[1]
