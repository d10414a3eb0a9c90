"""The GCP provider: pure policy edits, then grant and revoke through the real SDK against the local stand-in."""

import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from google.auth import external_account_authorized_user
from google.auth.credentials import AnonymousCredentials
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError

from jitbot.core.catalog import Resource, parse_catalog
from jitbot.core.domain import AccessRequest, approve, open_request
from jitbot.core.durations import retry_after
from jitbot.core.errors import ProviderError
from jitbot.providers.base import Held
from jitbot.providers.gcp import ATTEMPTS, BACKOFF_BASE, GcpProvider
from jitbot.providers.gcp_policy import (
    add_binding,
    condition_description,
    console_url,
    held_bindings,
    member_for,
    prune_expired,
    remove_binding,
    resource_kind,
)
from jitbot.providers.gcp_settings import GcpSettings
from jitbot.testing.gcp_policy import binding_problem
from jitbot.testing.gcp_standin import GcpStandIn

PROJECT = "projects/acme-analytics"
ROLE = "roles/bigquery.dataViewer"
ALICE = "user:alice@example.com"
NOW = datetime(2026, 11, 24, 1, 0, 0, 123456, tzinfo=UTC)
BASE = parse_catalog("approver_channel: C0A\nresources:\n  analytics:\n    provider: fake\n    approvers: [U0DAVE]\n")
OWNER = {"role": "roles/owner", "members": ["user:boss@example.com"]}
ALICE_PERMANENT = {"role": ROLE, "members": [ALICE]}  # same role and member, granted by someone else, for good
OTHERS_TEMPORARY = {
    "role": ROLE,
    "members": ["user:carol@example.com"],
    "condition": {"title": "Temporary access", "expression": 'request.time < timestamp("2020-01-01T00:00:00Z")'},
}


def resource(target: str = PROJECT, role: str = ROLE) -> Resource:
    return replace(BASE.resources["analytics"], provider="gcp", settings=GcpSettings(target, role))


def request(request_id: str = "r-7k3q9x", email: str | None = "alice@example.com") -> AccessRequest:
    opened, _ = open_request(request_id, "U0ALICE", "analytics", timedelta(hours=2), "INC-1", NOW)
    approved, _ = approve(opened, "U0DAVE", 1, NOW)
    return replace(approved, identity={"email": email} if email else {})


def jitbot_binding(request_id: str, expires: str, member: str = ALICE, role: str = ROLE) -> dict:
    condition = {
        "title": f"jitbot {request_id}",
        "description": condition_description(request_id),
        "expression": f'request.time < timestamp("{expires}")',
    }
    return {"role": role, "members": [member], "condition": condition}


# --- pure policy edits ------------------------------------------------------------------------------


def test_add_binding_when_absent_then_conditional_binding_until_expiry_and_version_3() -> None:
    policy = {"bindings": [OWNER], "etag": "BwX=", "version": 1}
    edited = add_binding(policy, ROLE, ALICE, "r-7k3q9x", NOW + timedelta(hours=2))
    assert edited["bindings"] == [OWNER, jitbot_binding("r-7k3q9x", "2026-11-24T03:00:00Z")]
    assert edited["version"] == 3 and edited["etag"] == "BwX="
    assert policy == {"bindings": [OWNER], "etag": "BwX=", "version": 1}  # not mutated


def test_add_binding_when_expiry_in_another_zone_then_rfc3339_utc_with_z() -> None:
    paris = datetime(2026, 11, 24, 4, 0, 0, 999999, tzinfo=timezone(timedelta(hours=1)))
    (binding,) = add_binding({}, ROLE, ALICE, "r-7k3q9x", paris)["bindings"]
    assert binding["condition"]["expression"] == 'request.time < timestamp("2026-11-24T03:00:00Z")'


def test_add_binding_when_same_request_already_there_then_not_duplicated() -> None:
    once = add_binding({"bindings": [OWNER]}, ROLE, ALICE, "r-7k3q9x", NOW)
    assert add_binding(once, ROLE, ALICE, "r-7k3q9x", NOW + timedelta(hours=1)) is once


def test_remove_binding_when_present_then_only_that_requests_binding_goes() -> None:
    others = [OWNER, ALICE_PERMANENT, OTHERS_TEMPORARY, jitbot_binding("r-other2", "2026-11-24T05:00:00Z")]
    policy = {"bindings": [*others[:2], jitbot_binding("r-7k3q9x", "2026-11-24T03:00:00Z"), *others[2:]]}
    edited = remove_binding(policy, "r-7k3q9x")
    assert edited["bindings"] == others
    assert edited["version"] == 3  # conditions remain


def test_remove_binding_when_missing_then_same_policy_so_no_write() -> None:
    policy = {"bindings": [OWNER, ALICE_PERMANENT, jitbot_binding("r-other2", "2026-11-24T05:00:00Z")]}
    assert remove_binding(policy, "r-7k3q9x") is policy


def test_remove_binding_when_title_matches_but_not_jitbots_description_then_untouched() -> None:
    lookalike = jitbot_binding("r-7k3q9x", "2026-11-24T03:00:00Z")
    lookalike["condition"]["description"] = "made by hand"
    policy = {"bindings": [lookalike]}
    assert remove_binding(policy, "r-7k3q9x") is policy


def test_prune_expired_when_mixed_then_only_jitbot_bindings_whose_time_passed() -> None:
    foreign_description = jitbot_binding("r-hand23", "2026-11-23T00:00:00Z")
    foreign_description["condition"]["description"] = "someone's own"
    odd_expression = jitbot_binding("r-odd234", "2026-11-23T00:00:00Z")
    odd_expression["condition"]["expression"] = "request.time < timestamp('2026-11-23T00:00:00Z')"
    kept = [
        OWNER,
        OTHERS_TEMPORARY,  # expired, but not jitbot's
        foreign_description,
        odd_expression,
        jitbot_binding("r-live23", "2026-11-24T01:00:01Z"),
    ]
    expired = [jitbot_binding("r-old234", "2026-11-23T00:00:00Z"), jitbot_binding("r-edge23", "2026-11-24T01:00:00Z")]
    edited = prune_expired({"bindings": [expired[0], *kept, expired[1]]}, NOW.replace(microsecond=0))
    assert edited["bindings"] == kept


def test_prune_expired_when_nothing_expired_then_same_policy() -> None:
    policy = {"bindings": [OWNER, jitbot_binding("r-live23", "2026-11-24T05:00:00Z")], "version": 3}
    assert prune_expired(policy, NOW) is policy


def test_held_bindings_when_mixed_then_jitbots_live_bindings_of_the_role_only() -> None:
    unreadable = jitbot_binding("r-odd234", "2026-11-23T00:00:00Z")
    unreadable["condition"]["expression"] = "request.time < timestamp('2026-11-23T00:00:00Z')"  # not jitbot's form
    lookalike = jitbot_binding("r-hand23", "2026-11-25T00:00:00Z")
    lookalike["condition"]["description"] = "made by hand"
    policy = {
        "bindings": [
            OWNER,
            ALICE_PERMANENT,
            OTHERS_TEMPORARY,
            lookalike,
            jitbot_binding("r-role23", "2026-11-25T00:00:00Z", role="roles/storage.objectViewer"),
            jitbot_binding("r-old234", "2026-11-24T01:00:00Z"),  # its condition ended at `now`
            jitbot_binding("r-7k3q9x", "2026-11-24T03:00:00Z"),
            unreadable,
        ]
    }
    assert held_bindings(policy, PROJECT, ROLE, NOW.replace(microsecond=0)) == [
        Held(
            frozenset({"r-7k3q9x"}),
            f"{ROLE} for {ALICE} on {PROJECT} until 2026-11-24T03:00:00Z",
            {"resource": PROJECT, "request_id": "r-7k3q9x"},
        ),
        Held(
            frozenset({"r-odd234"}),
            f"{ROLE} for {ALICE} on {PROJECT} until an expiry jitbot cannot read",
            {"resource": PROJECT, "request_id": "r-odd234"},
        ),
    ]


@pytest.mark.parametrize(
    ("target", "kind", "console"),
    [
        ("projects/acme-analytics", "project", "https://console.cloud.google.com/iam-admin/iam?project=acme-analytics"),
        ("folders/123456", "folder", "https://console.cloud.google.com/iam-admin/iam?folder=123456"),
        ("organizations/42", "organization", "https://console.cloud.google.com/iam-admin/iam?organizationId=42"),
    ],
)
def test_resource_kind_and_console_url_when_each_kind_then_matching_forms(target: str, kind: str, console: str) -> None:
    assert resource_kind(target) == kind
    assert console_url(target) == console


@pytest.mark.parametrize("target", ["acme", "projects/", "projects/a/b", "buckets/x", ""])
def test_resource_kind_when_not_a_resource_manager_name_then_not_retryable(target: str) -> None:
    with pytest.raises(ProviderError, match="projects/<id>, folders/<number> or organizations/<number>") as raised:
        resource_kind(target)
    assert raised.value.retryable is False


def test_member_for_when_email_known_then_user_member() -> None:
    assert member_for(request()) == ALICE


def test_member_for_when_no_email_then_not_retryable_naming_what_is_missing() -> None:
    with pytest.raises(ProviderError, match="Google account email for U0ALICE") as raised:
        member_for(request(email=None))
    assert raised.value.retryable is False


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("30", NOW + timedelta(seconds=30)),
        ("Tue, 24 Nov 2026 01:05:00 GMT", datetime(2026, 11, 24, 1, 5, tzinfo=UTC)),
        ("Tue, 24 Nov 2026 01:05:00 -0000", datetime(2026, 11, 24, 1, 5, tzinfo=UTC)),  # parsed naive: UTC all the same
        ("Tue, 24 Nov 2026 02:05:00 +0100", datetime(2026, 11, 24, 1, 5, tzinfo=UTC)),
        ("soon", None),
        (None, None),
    ],
)
def test_retry_after_when_header_then_time_or_none(header: str | None, expected: datetime | None) -> None:
    assert retry_after(header, NOW) == expected


# --- through the real SDK against the stand-in ------------------------------------------------------


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[list[str]]:
    """No name but loopback resolves, and none is even asked for: no discovery, token or lookup leaves the machine."""
    asked: list[str] = []
    resolve = socket.getaddrinfo

    def getaddrinfo(host: object, *args: object, **kwargs: object) -> object:
        if host not in ("127.0.0.1", "localhost"):
            asked.append(str(host))
            raise socket.gaierror(f"test refuses to resolve {host}")
        return resolve(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    for name in ("GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CLOUD_PROJECT", "GOOGLE_CLOUD_UNIVERSE_DOMAIN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "no-gcloud"))  # no developer's gcloud login is used
    yield asked
    assert asked == []


@pytest.fixture
def standin() -> Iterator[GcpStandIn]:
    with GcpStandIn() as server:
        server.policies[PROJECT] = {"bindings": [OWNER, ALICE_PERMANENT, OTHERS_TEMPORARY]}
        yield server


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def provider(standin: GcpStandIn, tmp_path: Path, sleeps: list[float]) -> GcpProvider:
    credentials = external_account_authorized_user.Credentials.from_file(str(standin.write_adc(tmp_path)))
    return GcpProvider(endpoint=standin.url, credentials=credentials, sleep=sleeps.append)


def bindings(standin: GcpStandIn, target: str = PROJECT) -> list[dict]:
    return standin.policies[target].get("bindings", [])


def test_grant_then_revoke_when_others_have_bindings_then_theirs_survive_intact(
    standin: GcpStandIn, provider: GcpProvider
) -> None:
    before = [dict(binding) for binding in bindings(standin)]
    issued = provider.grant(request(), resource(), NOW)
    assert bindings(standin) == [*before, jitbot_binding("r-7k3q9x", "2026-11-24T03:00:00Z")]
    assert standin.policies[PROJECT]["version"] == 3
    assert issued.handle == {
        "condition_title": "jitbot r-7k3q9x",
        "member": ALICE,
        "role": ROLE,
        "resource": PROJECT,
        "expires_at": "2026-11-24T03:00:00Z",
    }
    assert issued.access == {
        "Role": ROLE,
        "Resource": PROJECT,
        "Identity": "alice@example.com",
        "Until": "2026-11-24T03:00:00Z",
        "Console": "https://console.cloud.google.com/iam-admin/iam?project=acme-analytics",
    }
    assert issued.credentials.fields() == {}
    provider.revoke(request(), resource(), NOW + timedelta(minutes=30))
    assert bindings(standin) == before


def test_grant_then_calls_read_version_3_and_write_with_the_etag_read_and_a_token(
    standin: GcpStandIn, provider: GcpProvider
) -> None:
    provider.grant(request(), resource(), NOW)
    (read,) = standin.requests_to("getIamPolicy")
    (write,) = standin.requests_to("setIamPolicy")
    assert read.body == {"options": {"requestedPolicyVersion": 3}}
    assert write.body["policy"]["etag"] and write.body["policy"]["version"] == 3
    assert set(write.body) == {"policy"}  # Resource Manager's default updateMask is "bindings,etag"
    assert read.token in standin.tokens and write.token == read.token


def test_grant_when_repeated_then_one_binding_and_no_second_write(standin: GcpStandIn, provider: GcpProvider) -> None:
    provider.grant(request(), resource(), NOW)
    provider.grant(request(), resource(), NOW + timedelta(seconds=5))
    assert len(standin.requests_to("setIamPolicy")) == 1
    assert sum(1 for b in bindings(standin) if b.get("condition", {}).get("title") == "jitbot r-7k3q9x") == 1


def test_revoke_when_never_granted_then_no_write(standin: GcpStandIn, provider: GcpProvider) -> None:
    provider.revoke(request(), resource(), NOW)
    assert len(standin.requests_to("getIamPolicy")) == 1
    assert standin.requests_to("setIamPolicy") == []


def test_grant_when_twenty_expired_grants_of_same_role_then_pruned_so_gcp_cap_is_not_hit(
    standin: GcpStandIn, provider: GcpProvider
) -> None:
    stale = [jitbot_binding(f"r-old{n:03d}", "2026-11-20T00:00:00Z") for n in range(20)]
    standin.policies[PROJECT]["bindings"] += stale
    provider.grant(request(), resource(), NOW)
    assert bindings(standin) == [
        OWNER,
        ALICE_PERMANENT,
        OTHERS_TEMPORARY,
        jitbot_binding("r-7k3q9x", "2026-11-24T03:00:00Z"),
    ]


def test_grant_when_one_concurrent_change_then_reread_retried_and_their_change_kept(
    standin: GcpStandIn, provider: GcpProvider, sleeps: list[float]
) -> None:
    standin.conflict(times=1)
    provider.grant(request(), resource(), NOW)
    assert [call.answered for call in standin.requests_to("setIamPolicy")] == [409, 200]
    assert len(standin.requests_to("getIamPolicy")) == 2
    assert {"role": "roles/viewer", "members": ["user:concurrent-writer-1@example.com"]} in bindings(standin)
    assert jitbot_binding("r-7k3q9x", "2026-11-24T03:00:00Z") in bindings(standin)
    assert len(sleeps) == 1 and BACKOFF_BASE / 2 <= sleeps[0] <= BACKOFF_BASE


def test_revoke_when_policy_keeps_changing_then_retryable_error_after_backing_off(
    standin: GcpStandIn, provider: GcpProvider, sleeps: list[float]
) -> None:
    provider.grant(request(), resource(), NOW)
    standin.conflict(times=ATTEMPTS)
    with pytest.raises(ProviderError, match=f"kept conflicting.*{ATTEMPTS} attempts") as raised:
        provider.revoke(request(), resource(), NOW)
    assert raised.value.retryable is True
    assert [call.answered for call in standin.requests_to("setIamPolicy")] == [200] + [409] * ATTEMPTS
    assert len(sleeps) == ATTEMPTS - 1
    assert all(BACKOFF_BASE * 2**n / 2 <= slept <= BACKOFF_BASE * 2**n for n, slept in enumerate(sleeps))


@pytest.mark.parametrize(
    ("target", "permission", "role"),
    [
        (PROJECT, "resourcemanager.projects.setIamPolicy", "roles/resourcemanager.projectIamAdmin"),
        ("folders/123456", "resourcemanager.folders.setIamPolicy", "roles/resourcemanager.folderIamAdmin"),
        ("organizations/42", "resourcemanager.organizations.setIamPolicy", "roles/resourcemanager.organizationAdmin"),
    ],
)
def test_grant_when_forbidden_then_not_retryable_naming_permission_and_role(
    standin: GcpStandIn, provider: GcpProvider, target: str, permission: str, role: str
) -> None:
    standin.policies[target] = {"bindings": [OWNER]}
    standin.fail("setIamPolicy", status=403)
    with pytest.raises(ProviderError) as raised:
        provider.grant(request(), resource(target), NOW)
    message = str(raised.value)
    assert raised.value.retryable is False
    assert permission in message and role in message and "The caller does not have permission" in message
    assert not any(token in message for token in standin.tokens)


def test_grant_when_resource_unknown_to_gcp_then_forbidden_error_says_it_must_exist(provider: GcpProvider) -> None:
    with pytest.raises(ProviderError, match=r"(?s)or it may not exist.*the project must exist") as raised:
        provider.grant(request(), resource("projects/no-such-project"), NOW)
    assert raised.value.retryable is False


def test_revoke_when_not_found_then_not_retryable_no_such_folder(standin: GcpStandIn, provider: GcpProvider) -> None:
    standin.policies["folders/123456"] = {"bindings": [OWNER]}
    standin.fail("getIamPolicy", status=404)
    with pytest.raises(ProviderError, match="GCP has no such folder: folders/123456") as raised:
        provider.revoke(request(), resource("folders/123456"), NOW)
    assert raised.value.retryable is False


def test_grant_when_rate_limited_then_retryable_not_before_retry_after(
    standin: GcpStandIn, provider: GcpProvider
) -> None:
    standin.fail("getIamPolicy", status=429, retry_after=30)
    with pytest.raises(ProviderError, match="HTTP 429") as raised:
        provider.grant(request(), resource(), NOW)
    assert raised.value.retryable is True and raised.value.throttled is True
    assert raised.value.not_before == NOW + timedelta(seconds=30)


def test_revoke_when_service_unavailable_then_retryable_without_not_before(
    standin: GcpStandIn, provider: GcpProvider
) -> None:
    provider.grant(request("r-old234"), resource(), NOW - timedelta(days=1))  # an expired binding to prune
    standin.fail("setIamPolicy", status=503)
    with pytest.raises(ProviderError, match="HTTP 503") as raised:
        provider.revoke(request(), resource(), NOW)
    assert raised.value.retryable is True and raised.value.not_before is None and raised.value.throttled is False


def test_grant_when_endpoint_refuses_connections_then_retryable(standin: GcpStandIn, tmp_path: Path) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{unused.getsockname()[1]}/"
    credentials = external_account_authorized_user.Credentials.from_file(str(standin.write_adc(tmp_path)))
    with pytest.raises(ProviderError, match="GCP getIamPolicy could not be reached") as raised:
        GcpProvider(endpoint=closed, credentials=credentials).grant(request(), resource(), NOW)
    assert raised.value.retryable is True and raised.value.unanswered is True


def test_grant_when_no_email_then_not_retryable_before_any_call(standin: GcpStandIn, provider: GcpProvider) -> None:
    with pytest.raises(ProviderError, match="email") as raised:
        provider.grant(request(email=None), resource(), NOW)
    assert raised.value.retryable is False
    assert standin.requests == []


@pytest.mark.parametrize("target", ["folders/123456", "organizations/42"])
def test_grant_then_revoke_when_folder_or_organization_then_same_edit_on_that_resource(
    standin: GcpStandIn, provider: GcpProvider, target: str
) -> None:
    standin.policies[target] = {"bindings": [OWNER]}
    issued = provider.grant(request(), resource(target), NOW)
    assert bindings(standin, target) == [OWNER, jitbot_binding("r-7k3q9x", "2026-11-24T03:00:00Z")]
    assert issued.access["Console"] == console_url(target)
    provider.revoke(request(), resource(target), NOW)
    assert bindings(standin, target) == [OWNER]
    assert {call.resource for call in standin.requests if call.method != "token"} == {target}


def test_verify_revoked_when_revoked_then_says_what_was_read(standin: GcpStandIn, provider: GcpProvider) -> None:
    provider.grant(request(), resource(), NOW)
    provider.revoke(request(), resource(), NOW)
    assert (
        provider.verify_revoked(request(), resource(), NOW) == f"no jitbot binding for r-7k3q9x in {PROJECT}'s policy"
    )
    *_, verify = standin.requests_to("getIamPolicy")
    assert verify.body == {"options": {"requestedPolicyVersion": 3}}  # below 3 the marks would not show


def test_verify_revoked_when_binding_put_back_behind_jitbots_back_then_retryable(
    standin: GcpStandIn, provider: GcpProvider
) -> None:
    provider.grant(request(), resource(), NOW)
    provider.revoke(request(), resource(), NOW)
    standin.add_bindings(PROJECT, jitbot_binding("r-7k3q9x", "2026-11-24T03:00:00Z"))  # e.g. a restored backup
    with pytest.raises(ProviderError, match=f"still shows jitbot's binding for r-7k3q9x in {PROJECT}") as raised:
        provider.verify_revoked(request(), resource(), NOW)
    assert raised.value.retryable is True


def test_verify_revoked_when_policy_unreadable_then_retryable(standin: GcpStandIn, provider: GcpProvider) -> None:
    standin.fail("getIamPolicy", status=503)
    with pytest.raises(ProviderError, match="HTTP 503") as raised:
        provider.verify_revoked(request(), resource(), NOW)
    assert raised.value.retryable is True


def test_held_when_granted_then_found_and_others_bindings_ignored(standin: GcpStandIn, provider: GcpProvider) -> None:
    provider.grant(request(), resource(), NOW)
    standin.add_bindings(PROJECT, jitbot_binding("r-old234", "2026-11-23T00:00:00Z"))  # ended yesterday
    (held,) = provider.held(resource(), NOW)
    assert held.holders == {"r-7k3q9x"}
    assert held.what == f"{ROLE} for {ALICE} on {PROJECT} until 2026-11-24T03:00:00Z"
    assert standin.requests_to("setIamPolicy")[1:] == []  # read-only
    assert provider.held(resource(role="roles/storage.objectViewer"), NOW) == []


def test_remove_when_held_then_binding_gone_and_repeat_writes_nothing(
    standin: GcpStandIn, provider: GcpProvider
) -> None:
    before = [dict(binding) for binding in bindings(standin)]
    standin.add_bindings(PROJECT, jitbot_binding("r-lost23", "2026-11-24T05:00:00Z"))  # its grant was lost
    (held,) = provider.held(resource(), NOW)
    assert provider.remove(held, resource(), NOW) is True
    assert provider.remove(held, resource(), NOW) is False  # gone already: nothing for the scan to record
    assert bindings(standin) == before
    assert len(standin.requests_to("setIamPolicy")) == 1
    assert provider.held(resource(), NOW) == []


def test_check_when_readable_then_counts_bindings(provider: GcpProvider) -> None:
    assert provider.check(resource()) == "ok: 3 bindings"


def test_check_when_no_token_then_stand_in_answers_401_and_error_is_not_retryable(standin: GcpStandIn) -> None:
    anonymous = GcpProvider(endpoint=standin.url, credentials=AnonymousCredentials())
    with pytest.raises(ProviderError, match=r"GCP credentials failed .*cannot be refreshed") as raised:
        anonymous.check(resource())
    assert raised.value.retryable is False
    assert [(call.method, call.token, call.answered) for call in standin.requests] == [("getIamPolicy", None, 401)]


def test_provider_when_adc_file_in_environment_then_token_from_stand_in_carried_by_calls(
    standin: GcpStandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(standin.write_adc(tmp_path)))
    provider = GcpProvider(endpoint=standin.url)
    assert standin.requests == []  # credentials are found on first use, not at construction
    provider.grant(request(), resource(), NOW)
    token, *calls = standin.requests
    assert (token.method, token.answered) == ("token", 200)
    assert [call.method for call in calls] == ["getIamPolicy", "setIamPolicy"]
    (issued,) = standin.tokens
    assert all(call.token == issued for call in calls)


def test_provider_when_adc_refresh_token_refused_then_error_without_secrets(
    standin: GcpStandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(standin.write_adc(tmp_path)))
    refresh_token, standin.refresh_token = standin.refresh_token, "1//revoked"
    with pytest.raises(ProviderError, match="GCP credentials failed") as raised:
        GcpProvider(endpoint=standin.url).check(resource())
    assert raised.value.retryable is False
    assert refresh_token not in str(raised.value) and standin.client_secret not in str(raised.value)


def test_provider_when_built_then_discovery_document_is_static(standin: GcpStandIn, provider: GcpProvider) -> None:
    provider.check(resource())
    provider.check(resource())  # one client, built once
    assert [(call.method, call.resource) for call in standin.requests] == [
        ("token", ""),
        ("getIamPolicy", PROJECT),
        ("getIamPolicy", PROJECT),
    ]  # and the autouse fixture saw no name resolved but loopback


# --- the stand-in answers as Resource Manager does ----------------------------------------------------


def test_standin_when_read_below_version_3_then_conditions_hidden_and_blind_write_refused(
    standin: GcpStandIn, tmp_path: Path
) -> None:
    credentials = external_account_authorized_user.Credentials.from_file(str(standin.write_adc(tmp_path)))
    projects = build(
        "cloudresourcemanager",
        "v3",
        credentials=credentials,
        client_options={"api_endpoint": standin.url},
        static_discovery=True,
    ).projects()
    policy = projects.getIamPolicy(resource=PROJECT, body={}).execute()
    assert policy["version"] == 1
    assert "condition" not in policy["bindings"][2] and "_withcond_" in policy["bindings"][2]["role"]
    with pytest.raises(HttpError, match="_withcond_") as raised:
        projects.setIamPolicy(resource=PROJECT, body={"policy": policy}).execute()
    assert raised.value.status_code == 400
    versioned = projects.getIamPolicy(resource=PROJECT, body={"options": {"requestedPolicyVersion": 3}}).execute()
    with pytest.raises(HttpError, match="must be version 3"):
        projects.setIamPolicy(resource=PROJECT, body={"policy": {**versioned, "version": 1}}).execute()


# --- the stand-in refuses what Resource Manager refuses --------------------------------------------------------


def conditional(role: str, **condition: str) -> dict:
    fields = {"title": "t", "expression": 'request.time < timestamp("2026-12-07T12:00:00Z")'} | condition
    return {"version": 3, "bindings": [{"role": role, "members": ["user:a@example.com"], "condition": fields}]}


@pytest.mark.parametrize(
    ("policy", "refused"),
    [
        (conditional("roles/editor"), "not supported for basic role roles/editor"),
        (conditional(ROLE, title="t" * 101), "title is at most 100"),
        (conditional(ROLE, description="d" * 257), "description 256"),
        (conditional(ROLE, expression='request.time < timestamp("tomorrow")'), "could not be parsed"),
        (
            {"version": 1, "bindings": [{"role": ROLE, "members": [f"user:u{n}@example.com" for n in range(1501)]}]},
            "1501 principals; the limit is 1500",
        ),
    ],
)
def test_standin_when_policy_breaks_iams_rules_then_refused(policy: dict, refused: str) -> None:
    assert refused in (binding_problem(policy) or "")
    assert binding_problem(conditional(ROLE)) is None


def test_standin_when_condition_for_all_users_then_refused() -> None:
    policy = conditional(ROLE)
    policy["bindings"][0]["members"] = ["allAuthenticatedUsers"]
    assert "allUsers or allAuthenticatedUsers" in (binding_problem(policy) or "")


def test_standin_when_googles_own_examples_then_accepted() -> None:
    """The Policy reference's example (single quotes, milliseconds) and a window of two timestamps are valid CEL."""
    assert binding_problem(conditional(ROLE, expression="request.time < timestamp('2020-10-01T00:00:00.000Z')")) is None
    window = 'request.time > timestamp("2026-12-07T09:00:00Z") && request.time < timestamp("2026-12-07T17:00:00+01:00")'
    assert binding_problem(conditional(ROLE, expression=window)) is None
    assert binding_problem(conditional(ROLE, expression="request.time < timestamp('2026-12-07\")")) is not None


def test_standin_when_audit_exemptions_and_bindings_pass_1500_principals_then_refused() -> None:
    exempted = [f"user:quiet{n}@example.com" for n in range(1000)]
    audit = {"service": "allServices", "auditLogConfigs": [{"logType": "DATA_READ", "exemptedMembers": exempted}]}
    members = [f"user:u{n}@example.com" for n in range(501)]
    policy = {"version": 1, "bindings": [{"role": ROLE, "members": members}], "auditConfigs": [audit]}
    assert "1501 principals; the limit is 1500" in (binding_problem(policy) or "")


def test_standin_when_bindings_added_behind_jitbots_back_then_new_etag_and_version_3(standin: GcpStandIn) -> None:
    standin.policies["folders/1"] = {"bindings": [OWNER], "etag": "BwX=", "version": 1}
    standin.add_bindings("folders/1", jitbot_binding("r-7k3q9x", "2026-11-24T03:00:00Z"))
    policy = standin.policies["folders/1"]
    assert policy["bindings"] == [OWNER, jitbot_binding("r-7k3q9x", "2026-11-24T03:00:00Z")]
    assert policy["etag"] != "BwX=" and policy["version"] == 3


def test_revoke_when_sixteen_threads_at_once_then_each_on_its_own_connection_and_all_cut(
    standin: GcpStandIn, provider: GcpProvider
) -> None:
    projects = [f"projects/acme-{n}" for n in range(16)]  # one policy each: no etag conflicts, only the connections
    issued = []
    for n, project in enumerate(projects):
        standin.policies[project] = {"bindings": []}
        issued.append((request(f"r-thrd{n:02d}"), resource(project)))
        provider.grant(*issued[-1], NOW)
    with ThreadPoolExecutor(16) as pool:  # one shared httplib2.Http answered ResponseNotReady here
        list(pool.map(lambda pair: provider.revoke(*pair, NOW), issued))
    assert all(bindings(standin, project) == [] for project in projects)
