"""Readiness: Slack's verdict on the bot token is asked on a cadence by a watcher, never by a probe; time is a fake
clock that the watcher's pauses advance, so minutes of re-checks take no time."""

import io
import json
import logging
from collections.abc import Callable, Iterator

import fakeredis
import pytest
import structlog

from jitbot.observability import logs
from jitbot.observability.health import CONFIRM_S, RECHECK_S, Readiness, SlackToken
from jitbot.slack.notify import Notifier, web_client
from jitbot.store import Store
from jitbot.testing.host import free_port
from jitbot.testing.slack_standin import SlackStandIn

TOKEN = "xoxb-health-test"


class Clock:
    """Stands in for `threading.Event.wait` in `SlackToken.watch`: a pause passes at once, moving `now` on; things
    scheduled with `at` happen as `now` passes them; the watch stops once `now` reaches `until`."""

    def __init__(self, until: float) -> None:
        self.now, self.until = 0.0, until
        self.pauses: list[float] = []
        self._scheduled: list[tuple[float, Callable[[], None]]] = []

    def at(self, when: float, do: Callable[[], None]) -> None:
        self._scheduled.append((when, do))

    def wait(self, seconds: float) -> bool:
        self.pauses.append(seconds)
        self.now += seconds
        for when, do in [entry for entry in self._scheduled if entry[0] <= self.now]:
            do()
            self._scheduled.remove((when, do))
        return self.now >= self.until


@pytest.fixture
def slack() -> Iterator[SlackStandIn]:
    with SlackStandIn() as standin:
        yield standin


@pytest.fixture
def log_lines() -> Iterator[Callable[[], list[dict[str, str]]]]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    stream = io.StringIO()
    logs.configure(stream)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    root.handlers, root.level = handlers, level
    structlog.reset_defaults()


def readiness(api_url: str) -> Readiness:
    store = Store(fakeredis.FakeRedis())
    return Readiness(store, SlackToken(Notifier(web_client(TOKEN, api_url, someone_waiting=True), store)))


def asked_at(slack: SlackStandIn, clock: Clock) -> list[float]:
    """The fake times at which auth.test is called (the stand-in tells before it answers)."""
    times: list[float] = []
    slack.on_call = lambda call: times.append(clock.now) if call.method == "auth.test" else None
    return times


def test_watch_when_token_refused_then_asked_every_recheck_until_accepted_then_every_confirm(
    slack: SlackStandIn,
) -> None:
    ready, clock = readiness(slack.url), Clock(until=1000)
    times = asked_at(slack, clock)
    slack.refuse_token(TOKEN)
    clock.at(65, lambda: slack.accept_token(TOKEN))
    ready.token.watch(clock.wait)
    assert RECHECK_S == 30 and CONFIRM_S == 300
    assert times == [0, 30, 60, 90, 390, 690, 990]  # refused at 0, 30, 60; accepted from 90 on
    assert clock.pauses == [30, 30, 30, 300, 300, 300, 300]
    assert ready.ready() == {"redis": "ok", "slack": "ok", "catalog": "ok"}


def test_ready_when_probed_many_times_then_no_slack_call_and_the_last_verdict(slack: SlackStandIn) -> None:
    ready = readiness(slack.url)
    assert ready.ready()["slack"] == "unchecked"  # nothing asked yet: not ready
    slack.refuse_token(TOKEN, error="token_revoked")
    ready.token.check()
    answers = [ready.ready() for _ in range(1000)]
    assert len(slack.calls_to("auth.test")) == 1
    assert answers[-1] == {"redis": "ok", "slack": "refused: token_revoked", "catalog": "ok"}
    assert TOKEN not in json.dumps(answers[-1])


def test_check_when_token_refused_again_and_again_then_one_log_line_naming_the_fix(
    slack: SlackStandIn, log_lines: Callable[[], list[dict[str, str]]]
) -> None:
    ready = readiness(slack.url)
    slack.refuse_token(TOKEN)
    for _ in range(3):
        assert ready.token.check() == RECHECK_S
    slack.accept_token(TOKEN)
    assert ready.token.check() == CONFIRM_S
    said = [line for line in log_lines() if line["logger"] == "jitbot.health"]
    events = [(line["event"], line["level"]) for line in said]
    assert events == [("slack_token_refused", "error"), ("slack_token_ok", "info")]
    assert said[0]["error"] == "invalid_auth" and "set SLACK_BOT_TOKEN" in said[0]["fix"]


def test_check_when_slack_unreachable_then_its_own_failure_rechecked_soon(
    log_lines: Callable[[], list[dict[str, str]]],
) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}/api/"  # nothing listens there
    ready = readiness(nowhere)
    assert ready.token.check() == RECHECK_S
    assert ready.ready() == {"redis": "ok", "slack": "unreachable", "catalog": "ok"}
    [line] = [line for line in log_lines() if line["logger"] == "jitbot.health"]
    assert line["event"] == "slack_token_unreachable" and nowhere in line["fix"]


def test_healthy_when_redis_down_then_redis_unreachable_and_not_ready(slack: SlackStandIn) -> None:
    server = fakeredis.FakeServer()
    store = Store(fakeredis.FakeRedis(server=server))
    ready = Readiness(store, SlackToken(Notifier(web_client(TOKEN, slack.url, someone_waiting=True), store)))
    ready.token.check()
    server.connected = False
    assert ready.healthy() == {"redis": "unreachable"}
    assert ready.ready() == {"redis": "unreachable", "slack": "ok", "catalog": "ok"}


def test_ready_when_slack_fails_after_accepting_the_token_then_still_ready_until_slack_refuses_it(
    slack: SlackStandIn,
) -> None:
    ready = readiness(slack.url)
    ready.token.check()
    slack.fail("auth.test", status=500, times=1)  # Slack itself failing: not the token's fault, nor this process's
    assert ready.token.check() == RECHECK_S and ready.token.verdict.kind == "error"
    assert ready.ready()["slack"] == "ok"
    slack.refuse_token(TOKEN)  # Slack's word on the token decides
    ready.token.check()
    assert ready.ready()["slack"] == "refused: invalid_auth"
