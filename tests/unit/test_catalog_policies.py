"""jitbot.yml's policy keys: auto-approval bounds and delays, escalation, reason rules, break-glass.

Each bad value must be refused at start-up with an error naming the line and the key, as for every other key.
"""

from datetime import timedelta

import pytest

from jitbot.core.catalog import parse_catalog
from jitbot.core.catalog_policy import ReasonRule
from jitbot.core.errors import ConfigError

BASE = """\
approver_channel: C0APPROVALS
alert_channel: C0SECURITY
resources:
  sandbox:
    provider: fake
    approvers: [U0BOB]
"""  # a resource's own keys start at line 7


def sandbox(extra: str, base: str = BASE):
    return parse_catalog(base + extra).resources["sandbox"]


def refused(extra: str, base: str = BASE) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_catalog(base + extra)
    return str(caught.value)


# --- auto_approve -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "bound"),
    [
        ("", None),
        ("    auto_approve: true\n", timedelta(hours=4)),
        ("    auto_approve: false\n", None),
        ("    auto_approve: {max_duration: 30m}\n", timedelta(minutes=30)),
        ("    auto_approve:\n      max_duration: 1h30m\n", timedelta(hours=1, minutes=30)),
        ("    auto_approve: {max_duration: 4h}\n", timedelta(hours=4)),
    ],
)
def test_parse_catalog_when_auto_approve_given_then_bound_is_true_max_or_the_mapping(
    extra: str, bound: timedelta | None
) -> None:
    assert sandbox(extra).auto_approve_up_to == bound


def test_resource_auto_approves_when_bounded_then_only_within_the_bound() -> None:
    bounded = sandbox("    auto_approve: {max_duration: 30m}\n")
    assert bounded.auto_approves(timedelta(minutes=30)) and bounded.auto_approves(timedelta(minutes=15))
    assert not bounded.auto_approves(timedelta(minutes=30, seconds=1))
    assert not sandbox("").auto_approves(timedelta(minutes=15))


def test_parse_catalog_when_bounded_auto_approve_without_approvers_then_needs_approvers() -> None:
    message = refused("    auto_approve: {max_duration: 30m}\n", BASE.replace("    approvers: [U0BOB]\n", ""))
    assert "resources.sandbox: needs approvers" in message


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            "    auto_approve: {max_duration: 5h}\n",
            "line 7: resources.sandbox.auto_approve: max_duration is above the resource's own maximum, 4h",
        ),
        (
            "    auto_approve: {max_duration: soon}\n",
            "line 7: resources.sandbox.auto_approve.max_duration: `soon` is not a duration",
        ),
        (
            "    auto_approve: {max_duration: 30m, until: 5pm}\n",
            "line 7: resources.sandbox.auto_approve.until: unknown key",
        ),
        ("    auto_approve: [30m]\n", "line 7: resources.sandbox.auto_approve: must be true or false"),
        ("    auto_approve:\n      maximum: 30m\n", "line 8: resources.sandbox.auto_approve.maximum: unknown key"),
    ],
)
def test_parse_catalog_when_auto_approve_wrong_then_error_names_line_and_key(extra: str, expected: str) -> None:
    assert expected in refused(extra)


def test_parse_catalog_when_auto_approve_mapping_lacks_max_duration_then_error_names_where() -> None:
    # BUG: reported as "jitbot.yml line 1: max_duration: missing (required)" — neither the line nor the key path
    # of the resource (catalog._auto_approve passes a bare _required(...) node with no position).
    message = refused("    auto_approve: {}\n")
    assert "line 7: resources.sandbox.auto_approve" in message and "max_duration" in message


# --- auto_approve_after -------------------------------------------------------------------------------------


def test_parse_catalog_when_auto_approve_after_then_delay_on_the_resource_or_from_defaults() -> None:
    assert sandbox("    auto_approve_after: 30m\n").auto_approve_after == timedelta(minutes=30)
    assert sandbox("").auto_approve_after is None
    with_defaults = BASE.replace("resources:\n", "defaults:\n  auto_approve_after: 45m\nresources:\n")
    assert parse_catalog(with_defaults).resources["sandbox"].auto_approve_after == timedelta(minutes=45)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("    auto_approve_after: later\n", "line 7: resources.sandbox.auto_approve_after: `later` is not a duration"),
        ("    auto_approve_after: 0m\n", "line 7: resources.sandbox.auto_approve_after: A duration must be longer"),
    ],
)
def test_parse_catalog_when_auto_approve_after_wrong_then_error_names_line_and_key(extra: str, expected: str) -> None:
    assert expected in refused(extra)


# --- escalate_after / escalate_to ---------------------------------------------------------------------------


def test_parse_catalog_when_escalation_then_delay_and_targets_kept_in_order() -> None:
    resource = sandbox("    escalate_after: 15m\n    escalate_to: [U0DAVE, S0ONCALL, C0ONCALL]\n")
    assert resource.escalate_after == timedelta(minutes=15)
    assert resource.escalate_to == ("U0DAVE", "S0ONCALL", "C0ONCALL")
    assert sandbox("    escalate_after: 1h\n    escalate_to: [G0PRIVATE, W0ENTERPRISE]\n").escalate_to == (
        "G0PRIVATE",
        "W0ENTERPRISE",
    )


def test_parse_catalog_when_escalation_split_between_defaults_and_resource_then_paired() -> None:
    text = (
        BASE.replace("resources:\n", "defaults:\n  escalate_after: 20m\nresources:\n") + "    escalate_to: [U0DAVE]\n"
    )
    resource = parse_catalog(text).resources["sandbox"]
    assert (resource.escalate_after, resource.escalate_to) == (timedelta(minutes=20), ("U0DAVE",))


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("    escalate_after: 15m\n", "line 7: resources.sandbox.escalate_after: escalate_after and escalate_to go"),
        ("    escalate_to: [U0DAVE]\n", "line 7: resources.sandbox.escalate_to: escalate_after and escalate_to go"),
        (
            "    escalate_after: 15m\n    escalate_to: [dave]\n",
            "line 8: resources.sandbox.escalate_to: 'dave' is not a user (U…), user-group (S…) or channel (C…) id",
        ),
        ("    escalate_after: 15m\n    escalate_to: U0DAVE\n", "line 8: resources.sandbox.escalate_to: must be a list"),
        (
            "    escalate_after: 15m\n    escalate_to: [C0ONE, C0TWO]\n",
            "line 8: resources.sandbox.escalate_to: at most one channel",
        ),
        (
            "    escalate_after: 15m\n    escalate_to: [C0ONE, G0TWO]\n",
            "line 8: resources.sandbox.escalate_to: at most one channel",
        ),
        ("    escalate_after: soon\n    escalate_to: [U0DAVE]\n", "line 7: resources.sandbox.escalate_after: `soon`"),
    ],
)
def test_parse_catalog_when_escalation_wrong_then_error_names_line_and_key(extra: str, expected: str) -> None:
    assert expected in refused(extra)


# --- reason -------------------------------------------------------------------------------------------------


def test_parse_catalog_when_reason_rules_then_kept() -> None:
    extra = "    reason: {min_length: 10, pattern: '^(INC|CHG)-[0-9]+', example: INC-123 disk full}\n"
    assert sandbox(extra).reason == ReasonRule(10, "^(INC|CHG)-[0-9]+", "INC-123 disk full")
    assert sandbox("").reason == ReasonRule()
    assert sandbox("    reason: {min_length: 12}\n").reason == ReasonRule(min_length=12)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            "    reason:\n      min_length: 10\n      pattern: '(INC'\n",
            "line 9: resources.sandbox.reason.pattern: not a valid regular expression",
        ),
        (
            "    reason:\n      pattern: '^INC-[0-9]+'\n      example: ticket 1\n",
            "line 9: resources.sandbox.reason.example: 'ticket 1' does not match the pattern itself",
        ),
        ("    reason: {min_length: 0}\n", "line 7: resources.sandbox.reason.min_length: must be a whole number"),
        ("    reason: {min_length: ten}\n", "line 7: resources.sandbox.reason.min_length: must be a whole number"),
        ("    reason: {minimum: 3}\n", "line 7: resources.sandbox.reason.minimum: unknown key"),
        ("    reason: INC-[0-9]+\n", "line 7: resources.sandbox.reason: must be a mapping"),
    ],
)
def test_parse_catalog_when_reason_rule_wrong_then_error_names_line_and_key(extra: str, expected: str) -> None:
    assert expected in refused(extra)


# --- break-glass --------------------------------------------------------------------------------------------


def test_parse_catalog_when_breakglass_then_allowed_with_the_default_realert() -> None:
    catalog = parse_catalog(BASE + "    breakglass: true\n")
    assert catalog.resources["sandbox"].breakglass and catalog.breakglass_realert == timedelta(hours=1)
    assert parse_catalog("breakglass_realert: 15m\n" + BASE).breakglass_realert == timedelta(minutes=15)
    assert not sandbox("").breakglass


@pytest.mark.parametrize("where", ["resource", "defaults"])
def test_parse_catalog_when_breakglass_without_alert_channel_then_refused(where: str) -> None:
    base = BASE.replace("alert_channel: C0SECURITY\n", "")
    if where == "defaults":
        message = refused("", base.replace("resources:\n", "defaults:\n  breakglass: true\nresources:\n"))
    else:
        message = refused("    breakglass: true\n", base)
    assert "resources: break-glass resources need an alert_channel" in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (BASE + "    breakglass: yes please\n", "line 7: resources.sandbox.breakglass: must be true or false"),
        ("breakglass_realert: 0m\n" + BASE, "line 1: breakglass_realert: A duration must be longer than zero"),
        ("breakglass_realert: often\n" + BASE, "line 1: breakglass_realert: `often` is not a duration"),
    ],
)
def test_parse_catalog_when_breakglass_keys_wrong_then_error_names_line_and_key(text: str, expected: str) -> None:
    assert expected in refused("", text)
