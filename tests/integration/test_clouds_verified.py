"""Azure and GCP as they really are, and access verified gone in every cloud — through the real processes.

PIM answers that are not final yet, a PIM policy jitbot cannot satisfy, the catalog refusing a role GCP never
grants for a bounded time, a read-back that keeps showing the access, and the drift scan finding what jitbot
made and no live grant explains (a binding put back, an Identity Center assignment and a PIM assignment left
behind) — each against the stricter stand-ins, through the clouds' real SDKs.
"""

import json
import re
import subprocess
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from jitbot.core.domain import Status
from jitbot.providers.aws_sso_assignment import assignment_key
from jitbot.store import Store
from jitbot.testing.identity_center import IdentityCenter
from jitbot.testing.role_management import PimPolicy
from jitbot.testing.stack import Stack
from tests.integration.helpers import (
    approve,
    assign_in_pim,
    audit_events,
    credentials_dm,
    events,
    request_access,
    wait_until,
)
from tests.integration.test_clouds import INSTANCE, PERMISSION_SET, PROJECT, SCOPE, SUBSCRIPTION, VIEWER, VM_CONTRIBUTOR

pytestmark = pytest.mark.timeout(120)

SECURE_SCOPE = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/secure"
HANK_OID = "1a2b3c4d-0000-4000-8000-00000000000a"
IVY_OID = "1a2b3c4d-0000-4000-8000-00000000000b"
JUDY_OID = "1a2b3c4d-0000-4000-8000-00000000000c"
LEFT_OID = "1a2b3c4d-0000-4000-8000-00000000000d"  # holds an assignment jitbot made for a request long gone

CATALOG = f"""
approver_channel: C0APPROVALS
alert_channel: C0SECURITY
revocation: {{retry_base: 1s, retry_cap: 2s, alert_after: 2}}
defaults:
  min_duration: 1s
  max_duration: 1h
identities:
  U0HANK: {{azure_object_id: {HANK_OID}}}
  U0IVY: {{azure_object_id: {IVY_OID}}}
  U0JUDY: {{azure_object_id: {JUDY_OID}}}
  U0KIM: {{email: kim@example.com}}
  U0LEO: {{email: leo@example.com}}
resources:
  prod-vms:
    provider: azure
    scope: {SCOPE}
    role_definition_id: {VM_CONTRIBUTOR}
    approvers: [U0CAROL]
  secure-vms:
    provider: azure
    scope: {SECURE_SCOPE}
    role_definition_id: {VM_CONTRIBUTOR}
    approvers: [U0CAROL]
  analytics:
    provider: gcp
    resource: {PROJECT}
    role: {VIEWER}
    approvers: [U0CAROL]
  prod-sso:
    provider: aws
    mode: sso
    instance_arn: {INSTANCE}
    permission_set_arn: {PERMISSION_SET}
    account_id: '123456789012'
    region: eu-west-1
    approvers: [U0CAROL]
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    home: Path = tmp_path_factory.mktemp("verified")
    with Stack(home, CATALOG) as running:
        running.arm.pim.min_active = timedelta(0)  # PIM's five-minute rule would outlast these few-second grants
        running.arm.pim.set_policy(SECURE_SCOPE, VM_CONTRIBUTOR, PimPolicy(mfa=True))  # "Require Azure MFA on active…"
        running.gcp.policies[PROJECT] = {"bindings": []}
        yield running


@pytest.fixture(scope="module")
def center(stack: Stack) -> IdentityCenter:
    return stack.identity_center("prod-sso")


def stored_status(stack: Stack, request_id: str) -> Status:
    return Store(stack.redis()).requests.get(request_id).status


def expired(stack: Stack, user: str, request_id: str) -> dict[str, Any]:
    """Wait for the requester to hear it expired; the `expired` audit record's detail."""
    stack.slack.wait_for(
        lambda c: c.params.get("channel") == user and f"(`{request_id}`) has expired" in c.params.get("text", ""), 30
    )
    (record,) = [e for e in audit_events(stack, request_id) if e["event"] == "expired"]
    detail: dict[str, Any] = json.loads(record["detail"])
    return detail


def schedule_request_calls(stack: Stack, principal: str, request_type: str) -> list[Any]:
    """Every PUT and GET of the schedule request jitbot made for `principal` and `request_type`, in order."""
    put = next(
        r
        for r in stack.arm.arm_requests("PUT")
        if r.body["properties"]["principalId"] == principal and r.body["properties"]["requestType"] == request_type
    )
    return [r for r in stack.arm.arm_requests() if r.path == put.path]


def jitbot_binding(stack: Stack, request_id: str) -> dict[str, Any] | None:
    bindings = stack.gcp.policies[PROJECT].get("bindings", [])
    return next((b for b in bindings if b.get("condition", {}).get("title") == f"jitbot {request_id}"), None)


def jitbot(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["jitbot", *args], cwd=stack.home, env=stack.env, capture_output=True, text=True, timeout=60, check=False
    )


# --- Azure: PIM's answers as they come ------------------------------------------------------------------------


def test_azure_grant_when_pim_answers_pending_provisioning_then_announced_only_once_provisioned(stack: Stack) -> None:
    stack.arm.pim.pending("PendingProvisioning", gets=2)
    request_id, posted = request_access(stack, "U0HANK", "request prod-vms 5s INC-61 patch the VMs")
    approve(stack, "U0CAROL", request_id, posted)
    dm, _ = credentials_dm(stack, "U0HANK", request_id)

    put, *gets = schedule_request_calls(stack, HANK_OID, "AdminAssign")
    assert put.method == "PUT" and [g.method for g in gets[:2]] == ["GET", "GET"]
    assert gets[1].at <= dm.at, "the DM went out before PIM said Provisioned"
    assert any(a.principal_id == HANK_OID for a in stack.arm.assignments)
    expired(stack, "U0HANK", request_id)


def test_azure_removal_when_pim_answers_pending_revocation_then_verified_gone_before_the_grant_ends(
    stack: Stack,
) -> None:
    request_id, posted = request_access(stack, "U0IVY", "request prod-vms 3s INC-62 look at a disk")
    approve(stack, "U0CAROL", request_id, posted)
    credentials_dm(stack, "U0IVY", request_id)
    stack.arm.pim.pending("PendingRevocation", gets=2)  # the next request PIM accepts is the removal

    detail = expired(stack, "U0IVY", request_id)

    put, *gets = schedule_request_calls(stack, IVY_OID, "AdminRemove")
    assert put.method == "PUT" and len(gets) >= 2
    read_back = [r for r in stack.arm.arm_requests("GET") if "roleAssignmentScheduleInstances" in r.path]
    assert read_back and read_back[-1].at >= gets[1].at, "the instances were read after PIM said Revoked"
    assert not any(a.principal_id == IVY_OID for a in stack.arm.assignments)
    assert "none from schedule" in detail["verified"] and detail["verified_at"]


def test_azure_policy_requiring_mfa_when_checked_and_requested_then_named_in_both(stack: Stack) -> None:
    checked = jitbot(stack, "check", "--live")
    assert checked.returncode == 1
    lines = checked.stdout.splitlines()
    row = {name: next(line for line in lines if line.startswith(f"{name} ")) for name in ("secure-vms", "prod-vms")}
    assert "Require Azure Multi-Factor Authentication on active assignment" in row["secure-vms"]
    assert "PIM active assignment: at most 180d, justification (jitbot sends them)" in row["prod-vms"]

    request_id, posted = request_access(stack, "U0JUDY", "request secure-vms 5m INC-63 rotate a key")
    approve(stack, "U0CAROL", request_id, posted)
    told = stack.slack.wait_for(
        lambda c: c.params.get("channel") == "U0JUDY" and f"`{request_id}`" in c.params.get("text", ""), 30
    )
    assert "failed" in told.params["text"] and "Multi-Factor Authentication" in told.params["text"]
    assert "service principal" in told.params["text"]
    assert stored_status(stack, request_id) is Status.FAILED
    assert not any(a.principal_id == JUDY_OID for a in stack.arm.assignments)


# --- GCP -------------------------------------------------------------------------------------------------------


def test_check_when_catalog_asks_for_a_gcp_basic_role_then_refused_with_the_alternative(stack: Stack) -> None:
    catalog = stack.home / "basic-role.yml"
    catalog.write_text(
        "approver_channel: C0APPROVALS\nresources:\n  everything:\n    provider: gcp\n"
        f"    resource: {PROJECT}\n    role: roles/editor\n    approvers: [U0CAROL]\n"
    )
    checked = subprocess.run(
        ["jitbot", "check"],
        cwd=stack.home,
        env={**stack.env, "JITBOT_CONFIG": str(catalog)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert checked.returncode == 2
    assert "roles/editor is a basic role" in checked.stderr and "Use a predefined role" in checked.stderr


def test_gcp_read_back_when_the_binding_keeps_coming_back_then_grant_stays_live_retried_alerted_and_ends_later(
    stack: Stack,
) -> None:
    request_id, posted = request_access(stack, "U0KIM", "request analytics 3s INC-64 export a table")
    approve(stack, "U0CAROL", request_id, posted)
    credentials_dm(stack, "U0KIM", request_id)
    binding = jitbot_binding(stack, request_id)
    assert binding is not None
    stack.gcp.put_back(PROJECT, binding, times=3)  # another writer restores it after each of jitbot's next writes

    alert = stack.slack.wait_for(
        lambda c: (
            c.params.get("channel") == "C0SECURITY" and f"`{request_id}` keeps failing" in c.params.get("text", "")
        ),
        30,
    )
    assert "still shows jitbot's binding" in alert.params["text"]
    failed = [e for e in audit_events(stack, request_id) if e["event"] == "revocation failed"]
    assert len(failed) >= 2 and all("still shows" in e["detail"] for e in failed)

    detail = expired(stack, "U0KIM", request_id)  # the writer gave up: the next attempt reads it gone
    assert jitbot_binding(stack, request_id) is None
    assert detail["verified"] == f"no jitbot binding for {request_id} in {PROJECT}'s policy"
    assert events(stack, request_id).count("revocation failed") == 3
    stack.slack.wait_for(lambda c: c.method == "chat.update" and "Resolved" in c.params.get("text", ""), 30)


def test_drift_scan_when_a_binding_is_put_back_after_its_revocation_then_the_worker_removes_it(stack: Stack) -> None:
    request_id, posted = request_access(stack, "U0LEO", "request analytics 2s INC-65 one query")
    approve(stack, "U0CAROL", request_id, posted)
    credentials_dm(stack, "U0LEO", request_id)
    binding = jitbot_binding(stack, request_id)
    assert binding is not None
    expired(stack, "U0LEO", request_id)

    later = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    restored = {**binding, "condition": {**binding["condition"], "expression": f'request.time < timestamp("{later}")'}}
    stack.gcp.add_bindings(PROJECT, restored)  # a restored backup, with the grant's marks and a live condition
    stack.redis().delete("jitbot:drift:due")  # as if 15 minutes had passed since the worker's last scan

    wait_until(lambda: jitbot_binding(stack, request_id) is None, 30, "the drift scan removing the binding")
    orphan = wait_until(
        lambda: [e for e in audit_events(stack, request_id) if e["event"] == "orphan removed"], 10, "its audit"
    )
    assert orphan[0]["actor"] == "jitbot" and "user:leo@example.com" in orphan[0]["detail"]


# --- left behind: Identity Center and PIM -------------------------------------------------------------------------


def test_drift_scan_when_assignments_outlive_their_requests_then_removed_audited_and_standing_ones_kept(
    stack: Stack, center: IdentityCenter
) -> None:
    left_behind = {  # under jitbot's ticket system, for a request jitbot no longer has (a lost store, a crash)
        "principalId": LEFT_OID,
        "roleDefinitionId": VM_CONTRIBUTOR,
        "justification": "left behind",
        "ticketInfo": {"ticketNumber": "r-gone22", "ticketSystem": "jitbot"},
        "scheduleInfo": {"expiration": {"type": "AfterDuration", "duration": "PT8H"}},
    }
    assign_in_pim(stack, SCOPE, left_behind)
    stack.arm.pim.standing(SCOPE, VM_CONTRIBUTOR, JUDY_OID, timedelta(hours=8))  # an admin's own, without a ticket
    left = center.add_user("left@example.com")
    center.assign(left)  # jitbot made it for r-gone33 (the ledger says so); that request is no more
    params = {
        "InstanceArn": INSTANCE,
        "TargetId": "123456789012",
        "PermissionSetArn": PERMISSION_SET,
        "PrincipalId": left,
    }
    Store(stack.redis()).locks.hold_shared(assignment_key(params), "r-gone33", created=True)
    standing = center.add_user("standing@example.com")
    center.assign(standing)  # nobody's ledger: someone's standing access

    scanned = jitbot(stack, "reconcile", "--clouds")

    assert scanned.returncode == 0, scanned.stdout + scanned.stderr
    assert "2 orphaned" in scanned.stdout
    assert not any(a.principal_id == LEFT_OID for a in stack.arm.assignments)
    assert any(a.principal_id == JUDY_OID for a in stack.arm.assignments)
    assert left not in center.assigned() and standing in center.assigned()
    assert Store(stack.redis()).locks.shared(assignment_key(params)) is None
    for gone, resource in (("r-gone22", "prod-vms"), ("r-gone33", "prod-sso")):
        (record,) = [e for e in audit_events(stack, gone) if e["event"] == "orphan removed"]
        assert record["resource"] == resource
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{stack.port}/metrics", timeout=10).read().decode()
    assert 'jitbot_orphaned_access{provider="azure"} 0.0' in metrics
    removed = re.search(r'jitbot_events_total\{event="orphan removed"\} (\S+)', metrics)
    assert removed and float(removed[1]) >= 2  # these two, and any an earlier test's scan removed
