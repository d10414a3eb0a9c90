"""jitbot.yml validation: good files load, bad ones name the line and the key."""

import json
from datetime import timedelta
from pathlib import Path

import pytest

from jitbot.core.catalog import parse_catalog
from jitbot.core.errors import ConfigError
from jitbot.providers.aws_settings import AwsSettings
from jitbot.providers.azure_settings import AzureSettings

GOOD = """\
approver_channel: C0APPROVALS
alert_channel: C0SECURITY
admins: [U0ADMIN]
defaults:
  duration: 1h
  min_duration: 15m
  max_duration: 4h
  approvals: 1
resources:
  prod-db:
    description: Read the production exports bucket
    provider: aws
    role_arn: arn:aws:iam::123456789012:role/jit-prod-db
    region: eu-west-1
    session_policy:
      Version: "2012-10-17"
      Statement: [{Effect: Allow, Action: ["s3:GetObject"], Resource: ["arn:aws:s3:::production-data/*"]}]
    approvers: [U0BOB, S0DBAS]
    approvals: 2
    max_duration: 2h
    channel: C0DBA
  staging-logs:
    provider: aws
    role_arn: arn:aws:iam::123456789012:role/jit-staging-logs
    auto_approve: true
    max_duration: 30m
    duration: 30m
"""


def test_parse_catalog_when_valid_then_typed_with_defaults_applied() -> None:
    catalog = parse_catalog(GOOD)
    db, logs = catalog.resources["prod-db"], catalog.resources["staging-logs"]
    assert (catalog.approver_channel, catalog.alert_channel, catalog.admins) == (
        "C0APPROVALS",
        "C0SECURITY",
        ("U0ADMIN",),
    )
    assert (db.approvals, db.max_duration, db.min_duration, db.channel) == (
        2,
        timedelta(hours=2),
        timedelta(minutes=15),
        "C0DBA",
    )
    assert db.approvers == ("U0BOB", "S0DBAS") and db.settings_as(AwsSettings).region == "eu-west-1"
    assert db.settings_as(AwsSettings).session_policy["Version"] == "2012-10-17"
    assert (logs.auto_approve_up_to, logs.channel, logs.approvals) == (logs.max_duration, "C0APPROVALS", 1)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "    max_duration: 2h\n",
            "    max_duration: 2x\n",
            r"line 20: resources\.prod-db\.max_duration: .*not a duration",
        ),
        ("    approvals: 2\n", "    aprovals: 2\n", r"line 19: resources\.prod-db\.aprovals: unknown key"),
        ("    approvals: 2\n", "    requestors: [U0EVE]\n", r"requestors: unknown key \(known here: approvals"),
        (
            "    provider: aws\n    role_arn: arn:aws:iam::123456789012:role/jit-prod-db",
            "    provider: azure\n    role_arn: x",
            r"line 13: resources\.prod-db\.role_arn: unknown key \(known here: .*role_definition_id",
        ),
        ("role/jit-prod-db", "user/bob", r"line 13: resources\.prod-db\.role_arn"),
        ("    provider: aws\n", "    provider: oracle\n", r"line 12: resources\.prod-db\.provider: .*aws, azure, gcp"),
        ("    provider: aws\n", "    provider: aws\n    mode: federated\n", r"mode is sts .* or sso"),
        ("[U0BOB, S0DBAS]", "[bob]", r"resources\.prod-db\.approvers: 'bob' is not"),
        ("approver_channel: C0APPROVALS", "approver_channel: '#approvals'", r"line 1: approver_channel: .*channel id"),
        ("    approvals: 2\n", "    approvals: 0\n", r"approvals: must be a whole number"),
        ("    auto_approve: true\n", "    auto_approve: yes please\n", r"auto_approve: must be true or false"),
        ("    auto_approve: true\n", "", r"line 23: resources\.staging-logs: needs approvers"),
        (  # both on the resource, and in conflict: an error (an inherited default is moved inside, below)
            "    max_duration: 30m\n    duration: 30m\n",
            "    max_duration: 30m\n    duration: 1h\n",
            r"min_duration \(15m\) ≤ duration \(1h\) ≤ max_duration \(30m\)",
        ),
        ("approver_channel: C0APPROVALS\n", "", r"approver_channel: missing"),
        (
            "    max_duration: 2h\n",
            "    max_duration: 13h\n",
            r"line 20: resources\.prod-db\.max_duration: .*at most 12h",
        ),
    ],
)
def test_parse_catalog_when_one_key_wrong_then_error_names_line_and_key(old: str, new: str, expected: str) -> None:
    assert old in GOOD
    with pytest.raises(ConfigError, match=expected):
        parse_catalog(GOOD.replace(old, new))


def test_parse_catalog_when_own_bounds_exclude_the_inherited_default_then_the_default_moves_inside_them() -> None:
    catalog = parse_catalog(
        "approver_channel: C0APPROVALS\ndefaults: {duration: 1h, min_duration: 15m, max_duration: 4h}\nresources:\n"
        "  short: {provider: fake, approvers: [U0BOB], max_duration: 30m}\n"
        "  long: {provider: fake, approvers: [U0BOB], min_duration: 2h}\n"
        "  plain: {provider: fake, approvers: [U0BOB]}\n"
    )
    durations = {name: r.duration for name, r in catalog.resources.items()}
    assert durations == {"short": timedelta(minutes=30), "long": timedelta(hours=2), "plain": timedelta(hours=1)}


def test_parse_catalog_when_a_default_is_not_a_duration_then_an_error_even_if_every_resource_sets_its_own() -> None:
    with pytest.raises(ConfigError, match=r"defaults\.max_duration: .*not a duration"):
        parse_catalog(
            "approver_channel: C0APPROVALS\ndefaults: {max_duration: forever}\nresources:\n"
            "  plain: {provider: fake, approvers: [U0BOB], max_duration: 2h}\n"
        )


def test_parse_catalog_when_the_defaults_contradict_themselves_then_still_an_error() -> None:
    with pytest.raises(ConfigError, match=r"duration \(5h\) ≤ max_duration \(4h\)"):
        parse_catalog(
            "approver_channel: C0APPROVALS\ndefaults: {duration: 5h, max_duration: 4h}\nresources:\n"
            "  plain: {provider: fake, approvers: [U0BOB]}\n"
        )


def test_parse_catalog_when_session_policy_too_long_then_names_sts_limit() -> None:
    long = GOOD.replace('["s3:GetObject"]', "[" + ", ".join(f'"s3:Get{i:04d}"' for i in range(200)) + "]")
    with pytest.raises(ConfigError, match=r"session_policy is \d+ characters packed; STS allows 2048"):
        parse_catalog(long)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("  staging-logs:\n", "  prod-db:\n", r"line 22: resources\.prod-db: given twice \(first at line 10\)"),
        (
            "    approvals: 2\n",
            "    approvals: 2\n    approvals: 1\n",
            r"line 20: resources\.prod-db\.approvals: .*line 19",
        ),
        (
            "  approvals: 1\n",
            "  approvals: 1\n  duration: 2h\n",
            r"line 9: defaults\.duration: given twice \(first at line 5",
        ),
        (
            '      Version: "2012-10-17"\n',
            '      Version: "2012-10-17"\n      Version: "2008-10-17"\n',
            r"line 17: resources\.prod-db\.session_policy\.Version: given twice \(first at line 16\)",
        ),
    ],
    ids=["resource", "key in a resource", "key in defaults", "key in a session policy"],
)
def test_parse_catalog_when_a_key_is_given_twice_then_error_names_the_path_and_both_lines(
    old: str, new: str, expected: str
) -> None:
    assert old in GOOD
    with pytest.raises(ConfigError, match=expected):
        parse_catalog(GOOD.replace(old, new))


def test_parse_catalog_when_session_policy_version_unquoted_then_the_string_as_written_in_json() -> None:
    catalog = parse_catalog(GOOD.replace('Version: "2012-10-17"', "Version: 2012-10-17"))
    policy = catalog.resources["prod-db"].settings_as(AwsSettings).session_policy
    assert json.dumps(policy).startswith('{"Version": "2012-10-17"')


def test_parse_catalog_when_a_date_where_text_is_meant_then_read_as_written() -> None:
    catalog = parse_catalog(GOOD.replace("    description: Read", "    description: 2026-01-05T12:00:00Z\n    #"))
    assert catalog.resources["prod-db"].description == "2026-01-05T12:00:00Z"


def test_parse_catalog_when_session_policy_holds_what_json_cannot_then_error_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"line 16: resources\.prod-db\.session_policy: .*only JSON values"):
        parse_catalog(GOOD.replace('Version: "2012-10-17"', "Version: !!binary aGk="))


@pytest.mark.parametrize("text", ["", "- a list", "approver_channel: [", "resources: {}\napprover_channel: C0A"])
def test_parse_catalog_when_not_a_catalog_then_config_error(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_catalog(text)


def test_parse_catalog_when_revocation_block_then_backoff_settings_or_named_error() -> None:
    tuned = parse_catalog(GOOD + "revocation: {retry_base: 1s, retry_cap: 20s, alert_after: 2}\n")
    assert (tuned.revocation.retry_base, tuned.revocation.retry_cap, tuned.revocation.alert_after) == (
        timedelta(seconds=1),
        timedelta(seconds=20),
        2,
    )
    assert parse_catalog(GOOD).revocation.retry_cap == timedelta(minutes=5)
    with pytest.raises(ConfigError, match=r"revocation\.retry_cap: retry_cap must be at least retry_base"):
        parse_catalog(GOOD + "revocation: {retry_base: 1m, retry_cap: 20s}\n")


def test_readme_catalog_example_when_parsed_then_valid_with_every_provider() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    example = readme.split("### The catalog, `jitbot.yml`", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    catalog = parse_catalog(example)
    assert {r.kind for r in catalog.resources.values()} == {"aws", "aws-sso", "azure", "gcp"}
    assert catalog.resources["analytics"].breakglass and catalog.identities["U0ALICE"]["email"] == "alice@example.com"


@pytest.mark.parametrize("role", ["roles/owner", "roles/editor", "roles/viewer"])
def test_parse_catalog_when_gcp_basic_role_then_refused_naming_why_and_what_instead(role: str) -> None:
    text = f"""
approver_channel: C0APPROVALS
resources:
  analytics:
    provider: gcp
    resource: projects/acme-analytics
    role: {role}
    approvers: [U0DAVE]
"""
    with pytest.raises(ConfigError, match=rf"line 7: resources\.analytics\.role: {role} is a basic role, and Google"):
        parse_catalog(text)


SUB = "/subscriptions/3f6b2c1a-8d4e-4b7a-9c2d-1e5f7a9b0c3d"
ROLE_GUID = "9980e02c-c2be-4d73-94e8-173b1dc7cf3c"
MANAGEMENT_GROUP = "/providers/Microsoft.Management/managementGroups/platform"


def azure_catalog(scope: str, role: str) -> str:
    return (
        "approver_channel: C0APPROVALS\nresources:\n  vms:\n    provider: azure\n"
        f"    scope: {scope}\n    role_definition_id: {role}\n    approvers: [U0BOB]\n"
    )


@pytest.mark.parametrize(
    ("scope", "role"),
    [
        (f"{SUB}/resourceGroups/prod", f"{SUB}/providers/Microsoft.Authorization/roleDefinitions/{ROLE_GUID}"),
        (MANAGEMENT_GROUP, f"/providers/Microsoft.Authorization/roleDefinitions/{ROLE_GUID}"),
    ],
)
def test_parse_catalog_when_azure_role_in_the_form_of_its_scope_then_accepted(scope: str, role: str) -> None:
    settings = parse_catalog(azure_catalog(scope, role)).resources["vms"].settings_as(AzureSettings)
    assert settings.role_definition_id == role


@pytest.mark.parametrize(
    ("scope", "role", "expected"),
    [
        (  # the tenant form under a subscription: PIM answers ScopeDoesNotMatchRoleDefinition
            f"{SUB}/resourceGroups/prod",
            f"/providers/Microsoft.Authorization/roleDefinitions/{ROLE_GUID}",
            f"{SUB}/providers/Microsoft.Authorization/roleDefinitions/{ROLE_GUID}",
        ),
        (  # another subscription's form
            f"{SUB}/resourceGroups/prod",
            f"/subscriptions/00000000-0000-0000-0000-000000000000/providers/Microsoft.Authorization/roleDefinitions/{ROLE_GUID}",
            f"{SUB}/providers/Microsoft.Authorization/roleDefinitions/{ROLE_GUID}",
        ),
        (  # a subscription's form at a management group
            MANAGEMENT_GROUP,
            f"{SUB}/providers/Microsoft.Authorization/roleDefinitions/{ROLE_GUID}",
            f"/providers/Microsoft.Authorization/roleDefinitions/{ROLE_GUID}",
        ),
    ],
)
def test_parse_catalog_when_azure_role_not_in_the_form_of_its_scope_then_refused_naming_the_form(
    scope: str, role: str, expected: str
) -> None:
    with pytest.raises(ConfigError, match=r"line 6: resources\.vms\.role_definition_id: PIM accepts") as raised:
        parse_catalog(azure_catalog(scope, role))
    assert f"only as {expected} " in str(raised.value)
