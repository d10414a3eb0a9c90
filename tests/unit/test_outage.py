"""Redis away: every process logs one line per try, backs off to a cap, says when it is back, and gives up only
when told to."""

import threading
from typing import Any

import fakeredis
import pytest

from jitbot.core.errors import GaveUp
from jitbot.observability.outage import CAP_S, Outage
from jitbot.store import Store
from jitbot.sweeper import Sweeper
from tests.unit.test_lifecycle import Bot, bot

__all__ = ["bot"]


class Log:
    """Collects what would be logged: (level, event, fields)."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str, dict[str, Any]]] = []

    def warning(self, event: str, **fields: Any) -> None:
        self.lines.append(("warning", event, fields))

    def info(self, event: str, **fields: Any) -> None:
        self.lines.append(("info", event, fields))


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_outage_when_failing_then_one_line_per_try_waits_double_to_the_cap_and_one_line_back() -> None:
    log, clock = Log(), Clock()
    outage = Outage(log, clock=clock)
    waits = []
    for _ in range(8):
        waits.append(outage.failed("ConnectionError: Error 111 connecting"))
        clock.now += waits[-1]
    assert waits == [1.0, 2.0, 4.0, 8.0, 16.0, CAP_S, CAP_S, CAP_S]
    assert [event for _, event, _ in log.lines] == ["redis_unreachable"] * 8
    assert log.lines[-1][2]["down_s"] == sum(waits[:-1])
    outage.recovered()
    outage.recovered()  # nothing to say the second time
    assert log.lines[-1] == ("info", "redis_back", {"down_s": sum(waits), "tries": 8})
    assert len(log.lines) == 9
    assert outage.failed("again") == 1.0  # a new outage backs off from the start


def test_outage_when_away_longer_than_allowed_then_gives_up_naming_the_setting() -> None:
    clock = Clock()
    outage = Outage(Log(), give_up_after=60, clock=clock)
    outage.failed("ConnectionError")
    clock.now += 59
    outage.failed("ConnectionError")
    clock.now += 1
    with pytest.raises(GaveUp, match=r"unreachable for 60 s \(ConnectionError\); JITBOT_REDIS_GIVE_UP_S"):
        outage.failed("ConnectionError")


class Stop(threading.Event):
    """The sweeper's stop event, run in the test's thread: records each wait, stops after `waits` of them, and
    brings Redis back after `back_after` of them."""

    def __init__(self, server: fakeredis.FakeServer, waits: int, back_after: int) -> None:
        super().__init__()
        self.server, self.waits, self.back_after, self.seen = server, waits, back_after, []

    def wait(self, timeout: float | None = None) -> bool:
        self.seen.append(timeout)
        self.server.connected = len(self.seen) >= self.back_after
        if len(self.seen) >= self.waits:
            self.set()
        return self.is_set()


def test_sweeper_when_redis_away_then_backs_off_one_line_a_try_and_carries_on_when_back(bot: Bot) -> None:
    server = fakeredis.FakeServer()
    server.connected = False
    log = Log()
    stop = Stop(server, waits=6, back_after=4)
    sweeper = Sweeper(bot.lifecycle, Store(fakeredis.FakeRedis(server=server)), bot.clock, 2, Outage(log))
    sweeper.run(stop)
    assert stop.seen[:4] == [1.0, 2.0, 4.0, 8.0]  # backing off, not busy-looping
    assert stop.seen[4:] == [0.2, 0.2]  # Redis back, nothing due: the idle poll
    assert [event for _, event, _ in log.lines] == ["redis_unreachable"] * 4 + ["redis_back"]
    assert all("Traceback" not in str(fields) for _, _, fields in log.lines)
