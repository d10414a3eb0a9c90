"""`jitbot check`: a row per resource, the clouds' limits explained, and --live failures named and non-zero."""

from datetime import datetime
from pathlib import Path

import pytest

from jitbot.catalog import Resource, parse_catalog
from jitbot.check import check, render
from jitbot.cli import main
from jitbot.domain import AccessRequest
from jitbot.errors import ProviderError
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


def test_jitbot_check_when_catalog_invalid_then_exit_2_naming_line_and_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "jitbot.yml"
    path.write_text(CATALOG.replace("roles/bigquery.dataViewer", "bigquery viewer"))
    monkeypatch.setenv("JITBOT_CONFIG", str(path))
    assert main(["check"]) == 2
    assert "line 12: resources.analytics.role: 'bigquery viewer' is not of the form roles/" in capsys.readouterr().err
