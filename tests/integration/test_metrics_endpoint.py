"""GET /metrics on the real web process: what the web process, the worker and the sweeper counted.

A request is created and approved in the web process, granted by the worker and expired by the sweeper;
one scrape of any web process shows all of it. Other tests share the stack, so only deltas are compared.
"""

import urllib.request
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from jitbot import runtime
from jitbot.config import Config
from jitbot.testing.host import free_port
from jitbot.testing.stack import Stack
from jitbot.web import WebApp
from tests.integration.conftest import CATALOG
from tests.integration.helpers import approve, credentials_dm, deny, request_access, wait_until
from tests.unit.test_metrics import FAMILIES

pytestmark = pytest.mark.timeout(120)
PENDING, ACTIVE, OVERDUE = "jitbot_pending_requests{}", "jitbot_active_grants{}", "jitbot_overdue_grants{}"
LAG_COUNT = "jitbot_revocation_lag_seconds_count{}"


def scrape(stack: Stack) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{stack.port}/metrics", timeout=5) as answer:
        assert answer.status == 200
        return parse(answer.read().decode())


def parse(text: str) -> dict[str, float]:
    """`name{label="value",…}` → value, labels sorted, for every sample of the exposition."""
    return {
        sample.name + "{" + ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items())) + "}": sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def event(name: str) -> str:
    return f'jitbot_events_total{{event="{name}"}}'


def changes(before: dict[str, float], **expected: float) -> Any:
    """A predicate for wait_until: the next scrape has moved each named sample by exactly its delta."""

    def check(stack: Stack) -> dict[str, float] | None:
        now = scrape(stack)
        moved = {key: now.get(key, 0) - before.get(key, 0) for key in expected}
        return now if moved == expected else None

    return check


def test_metrics_when_scraped_then_prometheus_text_with_every_family(stack: Stack) -> None:
    with urllib.request.urlopen(f"http://127.0.0.1:{stack.port}/metrics", timeout=5) as answer:
        content_type, text = answer.headers["Content-Type"], answer.read().decode()
    assert content_type.startswith("text/plain; version=0.0.4")
    families = {family.name: family.type for family in text_string_to_metric_families(text)}
    assert families == FAMILIES


def test_metrics_when_request_lives_and_expires_then_every_process_counts_show_in_web(stack: Stack) -> None:
    before = scrape(stack)
    request_id, posted = request_access(stack, "U0ALICE", "request prod-db 3s watching the metrics INC-42")
    after_request = wait_until(lambda: changes(before, **{event("requested"): 1, PENDING: 1})(stack), 10, "pending")

    approve(stack, "U0BOB", request_id, posted)
    credentials_dm(stack, "U0ALICE", request_id)  # issued by the worker's job child
    wait_until(
        lambda: changes(after_request, **{event("approved"): 1, event("granted"): 1, PENDING: -1, ACTIVE: 1})(stack),
        10,
        "approved, granted and active",
    )

    ended = wait_until(
        lambda: changes(before, **{event("expired"): 1, LAG_COUNT: 1, PENDING: 0, ACTIVE: 0})(stack), 40, "expiry"
    )
    assert ended[OVERDUE] == before.get(OVERDUE, 0)
    assert ended['jitbot_revocation_lag_seconds_bucket{le="+Inf"}'] == ended[LAG_COUNT]


def test_metrics_when_slack_refuses_a_job_then_counted_by_the_worker_child(stack: Stack) -> None:
    before = scrape(stack)
    failure = 'jitbot_slack_api_errors_total{error="not_in_channel",method="chat.postMessage"}'
    stack.slack.fail("chat.postMessage", status=200, error="not_in_channel")  # the approval message, once
    request_id, posted = request_access(stack, "U0ALICE", "request prod-db 1m slack says no INC-43")  # on retry
    wait_until(lambda: changes(before, **{failure: 1})(stack), 10, "slack error counted")
    deny(stack, "U0BOB", request_id, posted)
    wait_until(lambda: changes(before, **{event("denied"): 1, PENDING: 0})(stack), 10, "denied")


def test_metrics_when_redis_unreachable_then_503(tmp_path: Path) -> None:
    (tmp_path / "jitbot.yml").write_text(CATALOG)
    config = Config(
        slack_bot_token="xoxb-test",
        slack_signing_secret="secret",
        slack_api_url=f"http://127.0.0.1:{free_port()}/api/",
        redis_url=f"redis://127.0.0.1:{free_port()}/0",  # nothing listens there
        config_path=str(tmp_path / "jitbot.yml"),
    )
    app = WebApp(runtime.build(config))
    answers: list[str] = []
    body = app({"REQUEST_METHOD": "GET", "PATH_INFO": "/metrics"}, lambda status, headers: answers.append(status))
    assert answers == ["503 Service Unavailable"] and b"unreachable" in b"".join(body)
