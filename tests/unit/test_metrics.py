"""Metrics kept in Redis: counts from several processes add up, and the exposition says what happened.

Two "processes" are two clients on one fakeredis server; a third client scrapes, as a web process would.
"""

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import fakeredis
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from jitbot.app.lifecycle import Lifecycle
from jitbot.app.people import People
from jitbot.core.catalog import parse_catalog
from jitbot.core.domain import AccessRequest, Status, approve, confirm_end, grant, open_request
from jitbot.core.errors import ProviderError
from jitbot.jobs.tasks import Tasks
from jitbot.observability import metrics
from jitbot.observability.metrics_collector import RedisCollector
from jitbot.providers.fake import FakeProvider
from jitbot.slack.messenger import slack_messenger
from jitbot.slack.notify import Notifier, NotifyError, web_client
from jitbot.store import Store
from jitbot.store.counters import MetricsSink
from jitbot.store.keys import EXPIRY
from jitbot.testing.slack_standin import SlackStandIn

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
CATALOG = parse_catalog("approver_channel: C0APPROVALS\nresources:\n  sandbox: {provider: fake, approvers: [U0BOB]}\n")


@pytest.fixture
def server() -> fakeredis.FakeServer:
    return fakeredis.FakeServer()


def process(server: fakeredis.FakeServer) -> Store:
    """One process's own connection to the shared Redis."""
    return Store(fakeredis.FakeRedis(server=server))


def scrape(server: fakeredis.FakeServer, now: datetime = NOW) -> dict[str, float]:
    """What a web process's /metrics shows, parsed back: `name{label="value",…}` → value."""
    registry = CollectorRegistry()
    registry.register(RedisCollector(process(server), lambda: now))
    text = generate_latest(registry).decode()
    return {sample_key(s.name, s.labels): s.value for f in text_string_to_metric_families(text) for s in f.samples}


def sample_key(name: str, labels: dict[str, str]) -> str:
    return name + "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


def requested(store: Store, request_id: str) -> AccessRequest:
    request, event = open_request(request_id, "U0ALICE", "sandbox", HOUR, "INC-1", NOW, "fake")
    assert store.requests.create(request, event, NOW + HOUR)
    return request


def approved(store: Store, request_id: str) -> AccessRequest:
    requested(store, request_id)
    return store.requests.transition(request_id, lambda r: approve(r, "U0BOB", 1, NOW))[0]


def active(store: Store, request_id: str) -> AccessRequest:
    approved(store, request_id)
    return store.requests.transition(request_id, lambda r: grant(r, {}, NOW))[0]


def expire(store: Store, request_id: str) -> None:
    store.requests.transition(request_id, lambda r: confirm_end(r, "gone", NOW + HOUR))


# --- counters and gauges across processes -----------------------------------------------------------


def test_count_event_when_two_processes_commit_then_one_count_per_audit_record(server: fakeredis.FakeServer) -> None:
    first, second = process(server), process(server)
    active(first, "r-aaaaaa")
    active(second, "r-bbbbbb")
    expire(first, "r-bbbbbb")  # a request need not stay with the process that started it
    requested(second, "r-cccccc")
    shown = scrape(server)
    events = {e: shown[f'jitbot_events_total{{event="{e}"}}'] for e in ("requested", "approved", "granted", "expired")}
    assert events == {"requested": 3, "approved": 2, "granted": 2, "expired": 1}
    assert len(first.redis.xrange("jitbot:audit")) == sum(events.values())
    assert shown['jitbot_events_total{event="denied"}'] == 0  # known events are there before they happen


def test_count_event_when_transition_refused_then_nothing_counted(server: fakeredis.FakeServer) -> None:
    store = process(server)
    requested(store, "r-aaaaaa")
    with pytest.raises(Exception, match="can no longer be"):
        store.requests.transition("r-aaaaaa", lambda r: confirm_end(r, "gone", NOW))
    assert scrape(server)['jitbot_events_total{event="expired"}'] == 0


def test_collector_when_requests_in_each_state_then_gauges_from_the_indexes(server: fakeredis.FakeServer) -> None:
    store = process(server)
    requested(store, "r-pending")
    approved(store, "r-approvd")  # in the expiry index, but not a grant yet
    active(store, "r-active1")
    active(store, "r-active2")
    expire(store, "r-active2")
    shown = scrape(server)
    assert shown["jitbot_pending_requests{}"] == 1
    assert shown["jitbot_active_grants{}"] == 1
    assert shown["jitbot_overdue_grants{}"] == 0
    assert store.redis.zcard(EXPIRY) == 2


def test_collector_when_grant_past_its_end_then_overdue_after_thirty_seconds(server: fakeredis.FakeServer) -> None:
    store = process(server)
    active(store, "r-active1")
    approved(store, "r-approvd")  # never issued: its grant would have ended by now as well
    assert scrape(server, NOW + HOUR + timedelta(seconds=29))["jitbot_overdue_grants{}"] == 0
    assert scrape(server, NOW + HOUR + timedelta(seconds=31))["jitbot_overdue_grants{}"] == 2


def test_counters_when_errors_from_two_processes_then_labelled_and_summed(server: fakeredis.FakeServer) -> None:
    first, second = process(server).metrics, process(server).metrics
    first.count_provider_error("aws", retryable=True)
    second.count_provider_error("aws", retryable=True)
    second.count_provider_error("gcp", retryable=False)
    first.count_slack_error("chat.update", "message_not_found")
    second.count_slack_error("chat.update", "message_not_found")
    shown = scrape(server)
    assert shown['jitbot_provider_errors_total{kind="retryable",provider="aws"}'] == 2
    assert shown['jitbot_provider_errors_total{kind="fatal",provider="gcp"}'] == 1
    assert shown['jitbot_slack_api_errors_total{error="message_not_found",method="chat.update"}'] == 2


# --- the revocation lag histogram -------------------------------------------------------------------


def test_observe_revocation_lag_when_two_processes_then_cumulative_buckets_add_up(
    server: fakeredis.FakeServer,
) -> None:
    first, second = process(server).metrics, process(server).metrics
    first.observe_revocation_lag(0.3)
    second.observe_revocation_lag(7)
    second.observe_revocation_lag(1000)
    first.observe_revocation_lag(-0.5)  # an early job: no lag, not a negative one
    shown = scrape(server)
    buckets = {le: shown[f'jitbot_revocation_lag_seconds_bucket{{le="{le}"}}'] for le in metrics.LAG_BUCKETS}
    assert buckets == {
        **dict.fromkeys(["0.5", "1.0", "2.0", "5.0"], 2),
        **dict.fromkeys(["10.0", "30.0", "60.0", "120.0", "300.0", "600.0"], 3),
        "+Inf": 4,
    }
    assert shown["jitbot_revocation_lag_seconds_count{}"] == 4
    assert shown["jitbot_revocation_lag_seconds_sum{}"] == pytest.approx(1007.3)


def test_collector_when_redis_empty_then_every_family_present_at_zero(server: fakeredis.FakeServer) -> None:
    registry = CollectorRegistry()
    registry.register(RedisCollector(process(server), lambda: NOW))
    families = {f.name: f.type for f in text_string_to_metric_families(generate_latest(registry).decode())}
    assert families == FAMILIES
    assert scrape(server)['jitbot_revocation_lag_seconds_bucket{le="+Inf"}'] == 0


# --- a metric never breaks what it measures ---------------------------------------------------------


@pytest.mark.parametrize(
    "record",
    [
        lambda sink: sink.count_slack_error("chat.postMessage", "channel_not_found"),
        lambda sink: sink.count_provider_error("aws", retryable=False),
        lambda sink: sink.observe_revocation_lag(3.0),
    ],
)
def test_recording_when_redis_down_then_dropped_without_raising(
    server: fakeredis.FakeServer, record: Callable[[MetricsSink], None]
) -> None:
    server.connected = False
    record(process(server).metrics)


def test_notifier_when_slack_refuses_then_counted_by_method_and_code(server: fakeredis.FakeServer) -> None:
    with SlackStandIn() as slack:
        notifier = Notifier(web_client("xoxb-t", slack.url), process(server))
        slack.fail("chat.postEphemeral", status=200, error="channel_not_found")
        with pytest.raises(NotifyError, match="channel_not_found"):
            notifier.ephemeral("C0NOPE", "U0ALICE", "hello")
    assert scrape(server)['jitbot_slack_api_errors_total{error="channel_not_found",method="chat.postEphemeral"}'] == 1


def test_notifier_when_slack_refuses_and_redis_down_then_still_the_slack_error(server: fakeredis.FakeServer) -> None:
    with SlackStandIn() as slack:
        notifier = Notifier(web_client("xoxb-t", slack.url), process(server))
        slack.fail("chat.postEphemeral", status=200, error="channel_not_found")
        server.connected = False
        with pytest.raises(NotifyError, match="channel_not_found"):
            notifier.ephemeral("C0NOPE", "U0ALICE", "hello")


# --- the lifecycle's hooks --------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def lifecycle(server: fakeredis.FakeServer) -> Iterator[tuple[Lifecycle, FakeProvider, Clock]]:
    store, fake, clock = process(server), FakeProvider(), Clock()
    with SlackStandIn() as slack:
        notifier = Notifier(web_client("xoxb-t", slack.url), store)
        people = People(CATALOG, notifier, store)
        messenger = slack_messenger(CATALOG, notifier, people, clock)
        yield Lifecycle(CATALOG, store, Tasks(store.redis), messenger, people, lambda name: fake, clock), fake, clock


def test_issue_access_when_cloud_refuses_then_provider_error_counted_by_kind(
    server: fakeredis.FakeServer, lifecycle: tuple[Lifecycle, FakeProvider, Clock]
) -> None:
    life, fake, _ = lifecycle
    approved(life.store, "r-aaaaaa")
    fake.fail_next.append(ProviderError("AccessDenied", retryable=False))
    life.issue_access("r-aaaaaa")
    assert life.store.requests.get("r-aaaaaa").status is Status.FAILED
    assert scrape(server)['jitbot_provider_errors_total{kind="fatal",provider="fake"}'] == 1


def test_end_access_when_expired_then_lag_observed_once_and_revoke_errors_counted(
    server: fakeredis.FakeServer, lifecycle: tuple[Lifecycle, FakeProvider, Clock]
) -> None:
    life, fake, clock = lifecycle
    approved(life.store, "r-aaaaaa")
    life.issue_access("r-aaaaaa")
    assert scrape(server)["jitbot_active_grants{}"] == 1
    clock.now = NOW + HOUR + timedelta(seconds=3)
    fake.fail_next.append(ProviderError("Throttling", retryable=True))
    life.end_access("r-aaaaaa")  # fails: recorded, and retried later by the reconciler
    assert life.store.requests.get("r-aaaaaa").status is Status.ACTIVE
    life.end_access("r-aaaaaa")
    life.end_access("r-aaaaaa")  # a repeat changes nothing, and observes nothing
    shown = scrape(server, clock.now)
    assert shown['jitbot_provider_errors_total{kind="retryable",provider="fake"}'] == 1
    assert shown["jitbot_revocation_lag_seconds_count{}"] == 1
    assert shown["jitbot_revocation_lag_seconds_sum{}"] == 3
    assert shown['jitbot_revocation_lag_seconds_bucket{le="2.0"}'] == 0
    assert shown['jitbot_revocation_lag_seconds_bucket{le="5.0"}'] == 1
    assert shown["jitbot_active_grants{}"] == 0 and shown['jitbot_events_total{event="expired"}'] == 1


FAMILIES = {  # every family /metrics serves, and its type (the integration test checks the same)
    "jitbot_events": "counter",
    "jitbot_provider_errors": "counter",
    "jitbot_slack_api_errors": "counter",
    "jitbot_unverified_requests": "counter",
    "jitbot_pending_requests": "gauge",
    "jitbot_active_grants": "gauge",
    "jitbot_overdue_grants": "gauge",
    "jitbot_revocation_lag_seconds": "histogram",
    "jitbot_orphaned_access": "gauge",
    "jitbot_drift_scan_timestamp_seconds": "gauge",
}
