"""A cloud outage through the real processes: the grant stays live and listed, one alert, revoked on recovery."""

import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from jitbot.testing.stack import Stack
from tests.integration.helpers import audit_events, credentials_dm, request_access, wait_until

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def outage_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    home: Path = tmp_path_factory.mktemp("outage")
    catalog = f"""
approver_channel: C0APPROVALS
alert_channel: C0SECURITY
revocation: {{retry_base: 1s, retry_cap: 4s, alert_after: 3}}
defaults: {{min_duration: 1s}}
resources:
  flaky:
    provider: fake
    auto_approve: true
    fail_when_exists: {home / "outage"}
"""
    with Stack(home, catalog) as running:
        yield running


def test_revocation_when_the_cloud_is_down_then_alert_once_grant_live_and_revoked_after_recovery(
    outage_stack: Stack,
) -> None:
    stack, outage = outage_stack, outage_stack.home / "outage"
    request_id, _ = request_access(stack, "U0ALICE", "request flaky 3s INC-15 outage")
    credentials_dm(stack, "U0ALICE", request_id)
    outage.touch()
    granted = next(e for e in audit_events(stack, request_id) if e["event"] == "granted")
    expires = datetime.fromisoformat(granted["at"]).timestamp() + 3

    alert = stack.slack.wait_for(
        lambda c: c.method == "chat.postMessage" and c.params.get("channel") == "C0SECURITY", timeout=90
    )
    assert (
        f"Revoking `{request_id}` keeps failing" in alert.params["text"] and "fake cloud outage" in alert.params["text"]
    )
    events = [e["event"] for e in audit_events(stack, request_id)]
    assert events.count("revocation failed") >= 3 and "expired" not in events  # still live, still being retried
    alerted_after = wall_time(alert.at) - expires
    assert alerted_after < 60

    outage.unlink()
    expired = wait_until(
        lambda: [e for e in audit_events(stack, request_id) if e["event"] == "expired"], 60, "recovery"
    )
    stack.slack.wait_for(
        lambda c: (
            c.method == "chat.update"
            and c.params.get("channel") == "C0SECURITY"
            and "Resolved" in c.params.get("text", "")
        ),
        timeout=30,
    )
    alerts = [c for c in stack.slack.calls_to("chat.postMessage") if c.params.get("channel") == "C0SECURITY"]
    assert len(alerts) == 1
    print(f"alert {alerted_after:.1f} s after expiry; revoked at {expired[0]['at']}")


def wall_time(monotonic_at: float) -> float:
    """The stand-in stamps calls with time.monotonic(); the audit trail with wall-clock UTC."""
    return time.time() - (time.monotonic() - monotonic_at)
