"""AWS early revocation at scale through the real sweepers, against a moto that enforces IAM's quotas.

Grants are loaded through the store's real write path as ACTIVE grants of one role (as the issue job leaves
them: a session name and the credentials' end), then ended as End now or their expiry would. Two sweeper
processes revoke them at once. moto refuses an inline-policy write past IAM's 10,240 characters
(jitbot.testing.aws_limits), so a deny that did not fit would be a failed revocation, retried and alerted.
"""

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from jitbot.core.domain import Status
from jitbot.providers.aws_denies import DENY_POLICY, is_denied, role_denies
from jitbot.store import Store
from jitbot.testing.aws_limits import ROLE_INLINE_QUOTA, policy_size
from jitbot.testing.grants import load_grants
from jitbot.testing.stack import Stack
from tests.integration.helpers import wait_until

pytestmark = pytest.mark.timeout(180)

CATALOG = """
approver_channel: C0APPROVALS
alert_channel: C0SECURITY
defaults: {min_duration: 1s, max_duration: 4h}
revocation: {alert_after: 1}
resources:
  shared:
    provider: aws
    role_arn: arn:aws:iam::123456789012:role/jit-shared
    auto_approve: true
  waves:
    provider: aws
    role_arn: arn:aws:iam::123456789012:role/jit-waves
    auto_approve: true
  natural:
    provider: aws
    role_arn: arn:aws:iam::123456789012:role/jit-natural
    auto_approve: true
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    home = tmp_path_factory.mktemp("aws-revocation")
    with Stack(home, CATALOG, redis_url=os.environ.get("REDIS_URL"), sweepers=2) as running:
        yield running


def load(stack: Stack, resource: str, count: int, end: datetime, early: bool) -> list[str]:
    """`count` active grants of `resource` ending at `end`: by End now (`early`) or at their own expiry."""
    return load_grants(Store(stack.redis()), [end] * count, [resource], lambda n: early)


def ended(stack: Stack, ids: list[str], status: Status, timeout: float) -> None:
    store = Store(stack.redis())
    wait_until(lambda: all(store.requests.get(i).status is status for i in ids), timeout, f"{len(ids)} grants {status}")


def no_failure_nor_alert(stack: Stack) -> None:
    assert stack.redis().keys("jitbot:revoke_failures:*") == []  # every cut on its first attempt
    alerts = [c for c in stack.slack.calls_to("chat.postMessage") if c.params.get("channel") == "C0SECURITY"]
    assert alerts == []


def test_two_sweepers_when_64_sessions_on_one_role_end_at_once_then_all_cut_first_time(stack: Stack) -> None:
    now = datetime.now(UTC)
    ids = load(stack, "shared", 64, now, early=True)
    ended(stack, ids, Status.REVOKED, 60)
    denies = role_denies(stack.aws("iam"), "jit-shared")
    assert all(is_denied(denies, i) for i in ids)
    no_failure_nor_alert(stack)


def test_500_early_ends_on_one_role_within_a_minute_then_every_session_cut_within_iams_quota(stack: Stack) -> None:
    start = datetime.now(UTC) + timedelta(seconds=5)
    ids = []
    for batch in range(5):  # five waves two seconds apart: 500 ends well within the minute
        at = start + timedelta(seconds=2 * batch)
        ids += load(stack, "waves", 100, at, early=True)
    ended(stack, ids, Status.REVOKED, 120)
    iam = stack.aws("iam")
    denies = role_denies(iam, "jit-waves")  # a role of their own: about 530 cut sessions fit an empty role
    assert all(is_denied(denies, i) for i in ids)
    document = iam.get_role_policy(RoleName="jit-waves", PolicyName=DENY_POLICY)["PolicyDocument"]
    assert policy_size(json.dumps(document)) <= ROLE_INLINE_QUOTA
    no_failure_nor_alert(stack)


def test_natural_expiries_when_credentials_end_with_the_grant_then_no_iam_write(stack: Stack) -> None:
    end = datetime.now(UTC) + timedelta(seconds=2)
    ids = load(stack, "natural", 20, end, early=False)
    ended(stack, ids, Status.EXPIRED, 60)
    assert stack.aws("iam").list_role_policies(RoleName="jit-natural")["PolicyNames"] == []
