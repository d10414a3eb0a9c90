"""A 3-hour AWS grant while jitbot runs as a role (role chaining: STS issues an hour at most), on a clock we move.

moto refuses a chained AssumeRole over an hour (jitbot.testing.aws_limits); its clock is the test's, so the
credentials' Expiration is what AWS would answer at that moment. moto does not expire credentials itself: "works
at 2:50" is checked as AWS would decide it — the credentials last DMed have not expired and are not denied.
"""

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import boto3
import fakeredis
import pytest

from jitbot.app.guard import Guard
from jitbot.app.lifecycle import Lifecycle
from jitbot.app.people import People
from jitbot.core.catalog import parse_catalog
from jitbot.core.commands import RequestAccess
from jitbot.core.domain import AccessRequest, Status
from jitbot.jobs.tasks import Tasks
from jitbot.providers.aws import AwsProvider
from jitbot.providers.aws_denies import is_denied, role_denies
from jitbot.slack.messenger import slack_messenger
from jitbot.slack.notify import Notifier, web_client
from jitbot.slack.surface import build_surface
from jitbot.store import Store
from jitbot.testing.slack_standin import SlackStandIn
from tests.unit.test_lifecycle import Bot, Clock, RecordingProvider
from tests.unit.test_policies_and_timers import run_jobs

NOW = datetime.now(UTC).replace(microsecond=0)
CATALOG = parse_catalog(
    """
approver_channel: C0APPROVALS
resources:
  prod-db:
    provider: aws
    role_arn: arn:aws:iam::123456789012:role/jit-prod-db
    approvers: [U0BOB]
    max_duration: 4h
"""
)
TRUST = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "*"}]}


@pytest.fixture
def chained(moto_aws: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Bot]:
    """jitbot's own credentials are a session of role `jitbot` (as on ECS, EKS, Lambda or EC2)."""
    iam = boto3.client("iam")
    for role in ("jitbot", "jit-prod-db"):
        iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(TRUST), MaxSessionDuration=43200)
    own = boto3.client("sts").assume_role(RoleArn="arn:aws:iam::123456789012:role/jitbot", RoleSessionName="jitbot")
    for name, key in (("AWS_ACCESS_KEY_ID", "AccessKeyId"), ("AWS_SECRET_ACCESS_KEY", "SecretAccessKey")):
        monkeypatch.setenv(name, own["Credentials"][key])
    monkeypatch.setenv("AWS_SESSION_TOKEN", own["Credentials"]["SessionToken"])
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # the next client reads them, as a process started with
    # them would; the other tests get their session back
    client, clock = fakeredis.FakeRedis(), Clock(NOW)
    monkeypatch.setattr("moto.sts.models.utcnow", lambda: clock().replace(tzinfo=None))
    store, tasks, provider = Store(client), Tasks(client), AwsProvider()
    with SlackStandIn() as slack:
        notifier = Notifier(web_client("xoxb-t", slack.url), store)
        people = People(CATALOG, notifier, store)
        messenger = slack_messenger(CATALOG, notifier, people, clock)
        surface = build_surface(Guard(CATALOG, store, people, clock), tasks, notifier, messenger)
        lifecycle = Lifecycle(CATALOG, store, tasks, messenger, people, lambda kind: provider, clock=clock)
        yield Bot(client, store, tasks, slack, RecordingProvider(), clock, surface, lifecycle, messenger)


def at(bot: Bot, moment: timedelta) -> AccessRequest:
    """The clock at NOW + `moment`, the reconciler's pass and the jobs it queues; the request then."""
    bot.clock.now = NOW + moment
    bot.lifecycle.reconcile()
    run_jobs(bot)
    (request_id,) = {key.decode().rsplit(":", 1)[-1] for key in bot.redis.keys("jitbot:req:*")}
    return bot.store.requests.get(request_id)


def keys_sent(bot: Bot) -> list[str]:
    """The access key ids DMed to the requester, in order."""
    dms = [c for c in bot.slack.calls_to("chat.postMessage") if c.params.get("channel") == "U0ALICE"]
    return [k for dm in dms for k in re.findall(r"AWS_ACCESS_KEY_ID=(\w+)", json.dumps(dm.params))]


def works(bot: Bot, request: AccessRequest, moment: timedelta) -> bool:
    """As AWS would decide at NOW + `moment`: the latest credentials have not expired and are not denied."""
    credentials_end = datetime.fromisoformat(request.grant["credentials_expire_at"])
    denied = is_denied(role_denies(boto3.client("iam"), "jit-prod-db"), request.id)
    return credentials_end > NOW + moment and not denied


def test_three_hour_grant_when_jitbot_runs_as_a_role_then_renewed_hourly_and_cut_at_its_end(chained: Bot) -> None:
    request, _ = chained.requesting.submit("U0ALICE", RequestAccess("prod-db", timedelta(hours=3), "INC-1 migrate"))
    chained.deciding.decide(request.id, "U0BOB", approving=True)
    run_jobs(chained)
    granted = chained.store.requests.get(request.id)
    assert granted.status is Status.ACTIVE and granted.expires_at == NOW + timedelta(hours=3)
    assert datetime.fromisoformat(granted.grant["credentials_expire_at"]) == NOW + timedelta(hours=1)
    assert granted.refresh_at == NOW + timedelta(minutes=55)

    assert works(chained, at(chained, timedelta(minutes=10)), timedelta(minutes=10))
    assert works(chained, at(chained, timedelta(minutes=56)), timedelta(hours=1, minutes=2))  # renewed first
    assert works(chained, at(chained, timedelta(hours=1, minutes=52)), timedelta(hours=2))
    late = at(chained, timedelta(hours=2, minutes=50))
    assert works(chained, late, timedelta(hours=2, minutes=50)) and late.refresh_at is None  # lasts to the end
    assert len(set(keys_sent(chained))) == 4  # the first set and three renewals, each by DM

    ended = at(chained, timedelta(hours=3, seconds=31))  # the reconciler's pass (the sweeper would be sooner)
    assert ended.status is Status.EXPIRED
    assert is_denied(role_denies(boto3.client("iam"), "jit-prod-db"), request.id)  # STS's 15 minutes outlive it
