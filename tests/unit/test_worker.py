"""The worker process restarts RQ's loop when Redis drops it, and stops only when asked to."""

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, ClassVar

import fakeredis
import pytest
import redis

from jitbot.core import redaction
from jitbot.core.redaction import Credentials
from jitbot.jobs.tasks import SERIALIZER, make_queue
from jitbot.observability.outage import Outage
from workers import worker

SECRET = "a-secret-token-value-1234"


class ScriptedWorker:
    """Stands in for RQ's Worker: each instance plays the next step of a script."""

    script: ClassVar[list[str]] = []
    made = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if ScriptedWorker.script[0] == "redis away at start":  # RQ asks Redis for the worker's address at once
            ScriptedWorker.script.pop(0)
            raise redis.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")
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


def test_run_when_redis_away_at_start_then_drops_twice_then_restarted_with_growing_pauses_until_stopped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    catalog = SimpleNamespace(resources={})
    rt = SimpleNamespace(
        catalog=catalog,
        lifecycle=SimpleNamespace(providers=lambda name: None),
        redis=None,
        config=SimpleNamespace(redis_give_up_s=None),
    )
    monkeypatch.setattr(worker.runtime, "current", lambda: rt)
    monkeypatch.setattr(worker, "make_queue", lambda connection, name: None)
    monkeypatch.setattr(worker, "JitbotWorker", ScriptedWorker)
    ScriptedWorker.script, ScriptedWorker.made = ["redis away at start", "redis lost", "returned", "stopped"], 0
    pauses: list[float] = []
    worker.run(sleep=pauses.append)
    assert ScriptedWorker.made == 3 and pauses == [1.0, 2.0, 4.0]


def test_run_when_stopped_while_idle_then_returns_without_restarting(monkeypatch: pytest.MonkeyPatch) -> None:
    rt = SimpleNamespace(
        catalog=SimpleNamespace(resources={}), lifecycle=None, redis=None, config=SimpleNamespace(redis_give_up_s=None)
    )
    monkeypatch.setattr(worker.runtime, "current", lambda: rt)
    monkeypatch.setattr(worker, "make_queue", lambda connection, name: None)
    monkeypatch.setattr(worker, "JitbotWorker", ScriptedWorker)
    ScriptedWorker.script, ScriptedWorker.made = ["stopped while idle"], 0
    pauses: list[float] = []
    worker.run(sleep=pauses.append)
    assert ScriptedWorker.made == 1 and pauses == []


def issue_credentials() -> None:
    """A job that issues credentials: while it runs, their values are scrubbed from log text."""
    Credentials({"TOKEN": SECRET})
    assert redaction.redact(f"token {SECRET}") == f"token {redaction.MASK}"


def test_worker_when_a_job_issued_credentials_then_the_scrubber_forgets_them_after_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Jobs run in the worker's own process, which lives for months: the values the scrubber remembers must
    not pile up with every grant (a forked child per job used to take them with it)."""
    monkeypatch.setattr(worker.runtime, "current", lambda: SimpleNamespace(lifecycle=SimpleNamespace(reconcile=int)))
    connection = fakeredis.FakeRedis()
    queue = make_queue(connection)
    job = queue.enqueue(f"{__name__}.issue_credentials")
    worker.JitbotWorker([queue], connection=connection, serializer=SERIALIZER).work(burst=True)
    assert job.get_status() == "finished"  # scrubbed while it ran
    assert redaction.redact(f"token {SECRET}") == f"token {SECRET}"  # forgotten after


def test_maintenance_when_it_reaches_redis_then_the_outage_ends_and_the_next_backs_off_from_the_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    connection = fakeredis.FakeRedis()
    rt = SimpleNamespace(
        lifecycle=SimpleNamespace(reconcile=lambda: None),
        store=SimpleNamespace(locks=SimpleNamespace(claim_drift_scan=lambda every: False)),
    )
    monkeypatch.setattr(worker.runtime, "current", lambda: rt)
    served = worker.JitbotWorker([make_queue(connection)], connection=connection, serializer=SERIALIZER)
    said: list[str] = []
    served.outage = Outage(
        SimpleNamespace(warning=lambda event, **_: said.append(event), info=lambda event, **_: said.append(event))
    )
    assert [served.outage.failed("away"), served.outage.failed("away")] == [1.0, 2.0]
    served.run_maintenance_tasks()
    assert said[-1] == "redis_back" and served.outage.failed("away again") == 1.0
