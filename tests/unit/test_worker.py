"""The worker process restarts RQ's loop when Redis drops it, and stops only when asked to."""

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest
import redis

from workers import worker


class ScriptedWorker:
    """Stands in for RQ's Worker: each instance plays the next step of a script."""

    script: ClassVar[list[str]] = []
    made = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        ScriptedWorker.made += 1
        self._stop_requested = False
        self._shutdown_requested_date: datetime | None = None

    def work(self, **kwargs: Any) -> bool:
        step = ScriptedWorker.script.pop(0)
        if step == "redis lost":
            raise redis.ConnectionError("Connection closed by server.")
        self._stop_requested = step == "stopped"
        if step == "stopped while idle":  # RQ 3.0: an idle worker only records when the stop was asked
            self._shutdown_requested_date = datetime.now(UTC)
        return True


def test_run_when_redis_drops_twice_then_restarted_with_growing_pauses_until_stopped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    catalog = SimpleNamespace(resources={})
    rt = SimpleNamespace(catalog=catalog, lifecycle=SimpleNamespace(providers=lambda name: None), redis=None)
    monkeypatch.setattr(worker.runtime, "current", lambda: rt)
    monkeypatch.setattr(worker, "make_queue", lambda connection: None)
    monkeypatch.setattr(worker, "JitbotWorker", ScriptedWorker)
    ScriptedWorker.script, ScriptedWorker.made = ["redis lost", "returned", "stopped"], 0
    pauses: list[float] = []
    worker.run(sleep=pauses.append)
    assert ScriptedWorker.made == 3 and pauses == [1.0, 2.0]


def test_run_when_stopped_while_idle_then_returns_without_restarting(monkeypatch: pytest.MonkeyPatch) -> None:
    rt = SimpleNamespace(catalog=SimpleNamespace(resources={}), lifecycle=None, redis=None)
    monkeypatch.setattr(worker.runtime, "current", lambda: rt)
    monkeypatch.setattr(worker, "make_queue", lambda connection: None)
    monkeypatch.setattr(worker, "JitbotWorker", ScriptedWorker)
    ScriptedWorker.script, ScriptedWorker.made = ["stopped while idle"], 0
    pauses: list[float] = []
    worker.run(sleep=pauses.append)
    assert ScriptedWorker.made == 1 and pauses == []
