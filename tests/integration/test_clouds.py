"""Azure, GCP and AWS Identity Center end to end through the real processes and the clouds' real SDKs.

Each cloud: request → signed Approve → the access DM → the assignment or binding in the cloud stand-in (or moto)
→ removed at expiry, with everyone else's access left alone. And a person the cloud cannot know is refused when
they ask, not after an approver has said yes.
"""

import json
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from jitbot.core.domain import AccessRequest, Status
from jitbot.store import Store, audit
from jitbot.testing.arm_standin import Assignment
from jitbot.testing.identity_center import IdentityCenter
from jitbot.testing.slack_standin import Call
from jitbot.testing.stack import Stack
from tests.integration.helpers import (
    approve,
    assign_in_pim,
    audit_events,
    credentials_dm,
    events,
    request_access,
    slack_refs,
    wait_until,
)

pytestmark = pytest.mark.timeout(120)

SUBSCRIPTION = "3f6b2c1a-8d4e-4b7a-9c2d-1e5f7a9b0c3d"
SCOPE = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/prod"
ROLES = f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Authorization/roleDefinitions"
VM_CONTRIBUTOR = f"{ROLES}/9980e02c-c2be-4d73-94e8-173b1dc7cf3c"
ALICE_OID = "7d1c5e2a-4b3f-4c8d-9e1a-2b3c4d5e6f70"
GRACE_OID = "8e2d6f3b-5c4a-4d9e-8f2b-3c4d5e6f7081"
STANDING_OID = "9f3e7a4c-6d5b-4e0f-9a3c-4d5e6f708192"  # holds the role on the scope outside jitbot
PROJECT = "projects/acme-analytics"
VIEWER = "roles/bigquery.dataViewer"
INSTANCE = "arn:aws:sso:::instance/ssoins-72231a4b5c6d7e8f"
PERMISSION_SET = "arn:aws:sso:::permissionSet/ssoins-72231a4b5c6d7e8f/ps-0a1b2c3d4e5f6a7b"
PORTAL = "https://d-9067a1b2c3.awsapps.com/start"
OTHERS = [  # bindings jitbot did not make, and must leave as they are
    {"role": "roles/owner", "members": ["user:owner@example.com"]},
    {"role": VIEWER, "members": ["user:analyst@example.com", "group:data@example.com"]},
]

CATALOG = f"""
approver_channel: C0APPROVALS
alert_channel: C0SECURITY
admins: [U0ADMIN]
defaults:
  min_duration: 1s
  max_duration: 1h
identities:
  U0ALICE: {{email: alice@example.com, azure_object_id: {ALICE_OID}}}
  U0GRACE: {{azure_object_id: {GRACE_OID}}}
  U0ERIN: {{email: erin@example.com}}
  U0SAM: {{email: sam@example.com}}
resources:
  prod-vms:
    provider: azure
    scope: {SCOPE}
    role_definition_id: {VM_CONTRIBUTOR}
    approvers: [U0CAROL]
  analytics:
    provider: gcp
    resource: {PROJECT}
    role: {VIEWER}
    approvers: [U0DAVE]
  prod-sso:
    provider: aws
    mode: sso
    instance_arn: {INSTANCE}
    permission_set_arn: {PERMISSION_SET}
    account_id: '123456789012'
    region: eu-west-1
    portal_url: {PORTAL}
    approvers: [U0BOB]
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    home: Path = tmp_path_factory.mktemp("clouds")
    with Stack(home, CATALOG) as running:
        running.arm.pim.min_active = timedelta(0)  # PIM's five-minute rule would outlast these few-second grants
        running.gcp.policies[PROJECT] = {"bindings": json.loads(json.dumps(OTHERS))}
        running.slack.emails["U0FRANK"] = "frank@example.com"
        give_standing_azure_role(running, STANDING_OID)
        yield running


@pytest.fixture(scope="module")
def center(stack: Stack) -> IdentityCenter:
    return stack.identity_center("prod-sso", session_duration="PT2H")


# --- reading what happened ------------------------------------------------------------------------------


def access_dm(stack: Stack, user: str, request_id: str) -> tuple[Call, dict[str, str]]:
    """The DM that announces the access, and its `*Label:* value` lines."""
    dm, exported = credentials_dm(stack, user, request_id)
    assert exported == {}, "a cloud grant carries no secret"
    text = "\n".join(block["text"]["text"] for block in dm.params["blocks"] if block.get("type") == "section")
    return dm, {label: value for label, value in (line[1:].split(":* ", 1) for line in text.splitlines()[1:])}


def stored(stack: Stack, request_id: str) -> AccessRequest:
    return Store(stack.redis()).requests.get(request_id)


def expired_and_told(stack: Stack, user: str, request_id: str) -> AccessRequest:
    """Once the grant has expired: the requester was told, the access DM scrubbed, the audit chain intact."""
    stack.slack.wait_for(
        lambda c: c.params.get("channel") == user and f"(`{request_id}`) has expired" in c.params.get("text", ""), 30
    )
    ended = stored(stack, request_id)
    assert ended.status is Status.EXPIRED
    wait_until(lambda: "scrubbed" in slack_refs(stack, request_id), 10, "access DM scrubbed")
    store = Store(stack.redis())
    verdict = audit.verify(store.chain.entries(), store.chain.head())
    assert verdict.ok, verdict.problem
    return ended


# --- Azure ------------------------------------------------------------------------------------------------


def give_standing_azure_role(stack: Stack, principal: str) -> None:
    """An assignment someone made in PIM directly, through the same ARM API, on jitbot's scope and role."""
    standing = {
        "principalId": principal,
        "roleDefinitionId": VM_CONTRIBUTOR,
        "justification": "on call this week",  # PIM's default settings require one on active assignment
        "scheduleInfo": {"expiration": {"type": "AfterDuration", "duration": "PT8H"}},
    }
    assign_in_pim(stack, SCOPE, standing)


def assignment_of(stack: Stack, principal: str) -> Assignment | None:
    return next((a for a in stack.arm.assignments if a.principal_id == principal), None)


def pim_puts(stack: Stack, principal: str, request_type: str) -> list[dict[str, Any]]:
    bodies = [r.body["properties"] for r in stack.arm.arm_requests("PUT") if r.answered == 201]
    return [b for b in bodies if b["principalId"] == principal and b["requestType"] == request_type]


def test_azure_request_when_approved_then_pim_assignment_made_and_removed_at_expiry(stack: Stack) -> None:
    stack.arm.pim.principal_names[ALICE_OID] = "Alice Liddell"
    request_id, posted = request_access(stack, "U0ALICE", "request prod-vms 5s INC-42 restart the web VMs")
    assert stored(stack, request_id).identity == {"email": "alice@example.com", "azure_object_id": ALICE_OID}, (
        "the cloud identity is resolved when the request is made (Requesting.submit → identity_of)"
    )
    assert f"Access goes to Entra object id `{ALICE_OID}`" in json.dumps(posted.params["blocks"])
    approve(stack, "U0CAROL", request_id, posted)

    _, lines = access_dm(stack, "U0ALICE", request_id)
    ts = slack_refs(stack, request_id)["approval_ts"]
    named = f"`{ALICE_OID}` (Alice Liddell)"  # the name Azure gave at the grant, once the message is brought up to date
    wait_until(lambda: named in json.dumps(stack.slack.message(posted.params["channel"], ts)), what="the Entra name")
    assert lines["Role"] == "Virtual Machine Contributor" and lines["Scope"] == SCOPE
    assert lines["Identity"] == f"{ALICE_OID} (alice@example.com)"
    assert lines["Console"].startswith("https://portal.azure.com/")
    assert not any(token in json.dumps(lines) for token in stack.arm.tokens)

    granted = stored(stack, request_id)
    assert granted.expires_at is not None and granted.granted_at is not None
    assert granted.expires_at - granted.granted_at == timedelta(seconds=5)
    assignment = assignment_of(stack, ALICE_OID)
    assert assignment is not None and assignment.scope == SCOPE and assignment.role_definition_id == VM_CONTRIBUTOR
    assert assignment.end - assignment.start == timedelta(minutes=5)  # PIM's shortest; jitbot removes it sooner
    (assigned,) = pim_puts(stack, ALICE_OID, "AdminAssign")
    assert assigned["justification"] == "INC-42 restart the web VMs"
    assert assigned["ticketInfo"] == {"ticketNumber": request_id, "ticketSystem": "jitbot"}
    assert stack.arm.tokens and all(r.token in stack.arm.tokens for r in stack.arm.arm_requests())  # a real sign-in

    expired_and_told(stack, "U0ALICE", request_id)
    assert assignment_of(stack, ALICE_OID) is None
    (removed,) = pim_puts(stack, ALICE_OID, "AdminRemove")
    assert removed["ticketInfo"]["ticketNumber"] == request_id
    assert assignment_of(stack, STANDING_OID) is not None  # the assignment jitbot did not make is still there
    assert events(stack, request_id) == ["requested", "approved", "granted", "expired"]


def test_azure_revoke_when_pim_refuses_a_young_assignment_then_deferred_and_done_later(stack: Stack) -> None:
    stack.arm.pim.min_active = timedelta(minutes=5)  # PIM's real rule: no removal in an assignment's first 5 minutes
    try:
        request_id, posted = request_access(stack, "U0GRACE", "request prod-vms 2s INC-43 quick look")
        assert stored(stack, request_id).identity == {"azure_object_id": GRACE_OID}
        approve(stack, "U0CAROL", request_id, posted)
        access_dm(stack, "U0GRACE", request_id)
        told = stack.slack.wait_for(
            lambda c: (
                c.params.get("channel") == "U0GRACE" and f"(`{request_id}`) has to wait" in c.params.get("text", "")
            ),
            30,
        )
        assert "first 5 minutes" in told.params["text"]
        deferred = wait_until(
            lambda: [e for e in audit_events(stack, request_id) if e["event"] == "revocation deferred"], 10, "deferral"
        )
        until = datetime.fromisoformat(json.loads(deferred[0]["detail"])["until"])
        granted = stored(stack, request_id)
        assert granted.status is Status.ACTIVE and granted.granted_at is not None
        assert until >= granted.granted_at + timedelta(minutes=5)
        assert assignment_of(stack, GRACE_OID) is not None  # PIM still holds it, and will end it itself at worst
    finally:
        stack.arm.pim.min_active = timedelta(0)

    # five minutes on: PIM allows the removal, and the reconciler finds the revocation due
    Store(stack.redis()).requests.retry_revocation_at(request_id, datetime.now(UTC) - timedelta(minutes=1))
    subprocess.run(["jitbot", "reconcile"], cwd=stack.home, env=stack.env, check=True, capture_output=True, timeout=60)
    expired_and_told(stack, "U0GRACE", request_id)
    assert assignment_of(stack, GRACE_OID) is None and len(pim_puts(stack, GRACE_OID, "AdminRemove")) == 1
    assert events(stack, request_id) == ["requested", "approved", "granted", "revocation deferred", "expired"]


# --- GCP --------------------------------------------------------------------------------------------------


def jitbot_binding(stack: Stack, request_id: str) -> dict[str, Any] | None:
    bindings = stack.gcp.policies[PROJECT].get("bindings", [])
    return next((b for b in bindings if b.get("condition", {}).get("title") == f"jitbot {request_id}"), None)


def others_untouched(stack: Stack) -> bool:
    return [b for b in stack.gcp.policies[PROJECT].get("bindings", []) if "condition" not in b] == OTHERS


def test_gcp_request_when_approved_then_conditional_binding_made_and_removed_at_expiry(stack: Stack) -> None:
    request_id, posted = request_access(stack, "U0ALICE", "request analytics 5s CHG-7 quarterly numbers")
    assert stored(stack, request_id).identity == {"email": "alice@example.com", "azure_object_id": ALICE_OID}
    approve(stack, "U0DAVE", request_id, posted)

    _, lines = access_dm(stack, "U0ALICE", request_id)
    assert lines["Role"] == VIEWER and lines["Resource"] == PROJECT and lines["Identity"] == "alice@example.com"
    assert lines["Console"] == "https://console.cloud.google.com/iam-admin/iam?project=acme-analytics"
    secrets = [*stack.gcp.tokens, stack.gcp.refresh_token, stack.gcp.client_secret]
    assert not any(secret in json.dumps(lines) for secret in secrets)

    granted = stored(stack, request_id)
    binding = jitbot_binding(stack, request_id)
    assert binding is not None and binding["role"] == VIEWER and binding["members"] == ["user:alice@example.com"]
    expression = binding["condition"]["expression"]
    assert expression == f'request.time < timestamp("{granted.grant["expires_at"]}")'
    assert granted.expires_at is not None
    cloud_end = datetime.fromisoformat(granted.grant["expires_at"])
    assert granted.expires_at - timedelta(seconds=2) <= cloud_end <= granted.expires_at  # GCP's own end: never later
    assert request_id in binding["condition"]["description"] and others_untouched(stack)
    assert granted.identity["email"] == "alice@example.com"  # the catalog's, whatever her Slack profile says

    expired_and_told(stack, "U0ALICE", request_id)
    assert jitbot_binding(stack, request_id) is None and others_untouched(stack)
    assert events(stack, request_id) == ["requested", "approved", "granted", "expired"]


def test_gcp_request_when_email_only_on_slack_profile_then_binding_for_that_email(stack: Stack) -> None:
    request_id, posted = request_access(stack, "U0FRANK", "request analytics 4s INC-44 check a dashboard")
    asked = [call for call in stack.slack.calls_to("users.info") if call.params.get("user") == "U0FRANK"]
    assert asked and asked[0].at < posted.at  # when he asked: before the approvers heard of it
    assert stored(stack, request_id).identity == {"email": "frank@example.com"}
    approve(stack, "U0DAVE", request_id, posted)

    _, lines = access_dm(stack, "U0FRANK", request_id)
    assert lines["Identity"] == "frank@example.com"
    binding = jitbot_binding(stack, request_id)
    assert binding is not None and binding["members"] == ["user:frank@example.com"]

    expired_and_told(stack, "U0FRANK", request_id)
    assert jitbot_binding(stack, request_id) is None and others_untouched(stack)


# --- AWS IAM Identity Center ------------------------------------------------------------------------------


def test_sso_request_when_approved_then_account_assignment_made_and_deleted_at_expiry(
    stack: Stack, center: IdentityCenter
) -> None:
    sam = center.add_user("sam@example.com")
    ops = center.add_user("ops@example.com")
    center.assign(ops)  # someone's standing access to the same account and permission set

    request_id, posted = request_access(stack, "U0SAM", "request prod-sso 5s INC-45 read the billing console")
    assert stored(stack, request_id).identity == {"email": "sam@example.com"}
    approve(stack, "U0BOB", request_id, posted)

    _, lines = access_dm(stack, "U0SAM", request_id)
    assert lines["Account"] == "123456789012" and lines["Permission set"] == "prod-sso"
    assert lines["Identity"] == "sam@example.com" and lines["Portal"] == PORTAL
    assert "(a session lasts 2h)" in lines["Sessions already open last until"]
    assert sorted([sam, ops]) == center.assigned()
    granted = stored(stack, request_id)
    assert granted.grant["principal_id"] == sam and granted.expires_at is not None
    assert granted.expires_at - timedelta(seconds=2) <= datetime.fromisoformat(lines["Until"]) <= granted.expires_at

    expired_and_told(stack, "U0SAM", request_id)
    assert center.assigned() == [ops]
    assert events(stack, request_id) == ["requested", "approved", "granted", "expired"]


def test_sso_request_when_requester_already_holds_it_then_told_and_the_standing_assignment_survives(
    stack: Stack, center: IdentityCenter
) -> None:
    stan = center.add_user("stan@example.com")
    center.assign(stan)  # his own standing access, outside jitbot
    stack.slack.emails["U0STAN"] = "stan@example.com"
    request_id, posted = request_access(stack, "U0STAN", "request prod-sso 4s INC-46 billing")
    approve(stack, "U0BOB", request_id, posted)
    _, lines = access_dm(stack, "U0STAN", request_id)
    assert lines["Note"].startswith("you already hold this permission set on this account outside jitbot")
    expired_and_told(stack, "U0STAN", request_id)
    assert stan in center.assigned()  # not jitbot's to delete


def test_sso_requests_when_two_grants_overlap_then_the_first_ending_leaves_the_second_working(
    stack: Stack, center: IdentityCenter
) -> None:
    olga = center.add_user("olga@example.com")
    stack.slack.emails["U0OLGA"] = "olga@example.com"
    first_id, first_posted = request_access(stack, "U0OLGA", "request prod-sso 3s INC-47 short look")
    approve(stack, "U0BOB", first_id, first_posted)
    access_dm(stack, "U0OLGA", first_id)
    second_id, second_posted = request_access(stack, "U0OLGA", "request prod-sso 10s INC-47 longer look")
    approve(stack, "U0BOB", second_id, second_posted)
    access_dm(stack, "U0OLGA", second_id)

    expired_and_told(stack, "U0OLGA", first_id)
    assert olga in center.assigned() and stored(stack, second_id).status is Status.ACTIVE
    expired_and_told(stack, "U0OLGA", second_id)
    assert olga not in center.assigned()


# --- nobody the cloud can know ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("user", "resource", "missing"),
    [
        ("U0ERIN", "prod-vms", "`azure_object_id`"),  # an email is known, but Azure needs the object id
        ("U0NOBODY", "analytics", "`email`"),  # not in identities, no email on the Slack profile
    ],
)
def test_request_when_requester_has_no_usable_identity_then_refused_at_once_and_nothing_created(
    stack: Stack, user: str, resource: str, missing: str
) -> None:
    requests_before, puts_before = stack.redis().keys("jitbot:req:*"), len(stack.arm.arm_requests("PUT"))
    posts_before = len(stack.slack.calls_to("chat.postMessage"))

    reply = stack.sender.command(user, f"request {resource} 5m INC-46 need to look")
    assert reply.status == 200 and reply.json()["response_type"] == "ephemeral"
    assert missing in reply.json()["text"] and f"`{resource}`" in reply.json()["text"]

    assert stack.redis().keys("jitbot:req:*") == requests_before
    assert len(stack.arm.arm_requests("PUT")) == puts_before
    assert len(stack.slack.calls_to("chat.postMessage")) == posts_before  # no approver was asked
    refused = [e for e in audit_events(stack, "-") if e["event"] == "refused" and e["actor"] == user]
    assert refused and missing.strip("`") in refused[-1]["detail"] and refused[-1]["resource"] == resource


def test_request_when_slack_rate_limits_the_email_lookup_then_answered_in_time_and_the_retry_works(
    stack: Stack,
) -> None:
    """users.info is asked while the person waits on Slack's 3 s: a 429 asking for 30 s must not be slept out
    in the ack (Slack would show a timeout and the person could not tell whether anything was requested)."""
    stack.slack.emails["U0GINA"] = "gina@example.com"
    requests_before = stack.redis().keys("jitbot:req:*")
    stack.slack.fail("users.info", status=429, retry_after=30)
    reply = stack.sender.command("U0GINA", "request analytics 5m INC-47 check the export")
    assert reply.status == 200 and reply.elapsed < 3, reply.elapsed
    assert (
        "Slack did not say who you are just now" in reply.json()["text"]
        and "Nothing was requested" in reply.json()["text"]
    )
    assert stack.redis().keys("jitbot:req:*") == requests_before

    request_id, _ = request_access(stack, "U0GINA", "request analytics 5m INC-47 check the export")
    assert stored(stack, request_id).identity == {"email": "gina@example.com"}


def test_stack_env_when_developer_has_cloud_settings_then_only_the_stand_ins_reach_the_processes(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    azure = ["AZURE_CLIENT_SECRET", "AZURE_TENANT_ID", "MSI_ENDPOINT", "IDENTITY_HEADER", "IMDS_ENDPOINT"]
    google = ["GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CLOUD_PROJECT", "CLOUDSDK_CONFIG", "GCE_METADATA_HOST"]
    for name in azure + google:
        monkeypatch.setenv(name, "the-developers-own")
    env = stack.env
    assert [name for name, value in env.items() if value == "the-developers-own"] == []
    assert env["AZURE_ARM_ENDPOINT"] == stack.arm.url and env["IDENTITY_ENDPOINT"] == stack.arm.identity_endpoint
    assert env["IDENTITY_HEADER"] == stack.arm.identity_header
    assert env["GCP_RESOURCEMANAGER_ENDPOINT"] == stack.gcp.url
    assert json.loads(Path(env["GOOGLE_APPLICATION_CREDENTIALS"]).read_text())["token_url"] == stack.gcp.url + "token"
