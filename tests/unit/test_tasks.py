"""The announcement job written in the request's own Lua script is RQ's own: an RQ worker runs it."""

from datetime import UTC, datetime, timedelta
from functools import partial
from types import SimpleNamespace

import fakeredis
import pytest
from rq import SimpleWorker
from rq.job import Job

from jitbot.core.domain import open_request
from jitbot.jobs import entry, tasks
from jitbot.jobs.names import JobName
from jitbot.jobs.tasks import QUEUE, SERIALIZER, Tasks, make_queue
from jitbot.store import Store

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def test_sync_slack_when_queued_with_a_request_then_an_rq_worker_runs_it_with_its_argument(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The announcement goes into Redis in the request's own write (Store's Lua script replays the commands), and
    a stock RQ worker takes it from there: data, retries and all."""
    connection = fakeredis.FakeRedis()
    store, queued = Store(connection), Tasks(connection)
    request, event = open_request("r-abc234", "U0ALICE", "prod-db", timedelta(hours=1), "INC-1", NOW)
    assert store.requests.create(request, event, NOW + timedelta(hours=1), also=partial(queued.sync_slack, request.id))
    [job_id] = [i.decode() for i in connection.lrange(f"rq:queue:{QUEUE}", 0, -1)]
    job = Job.fetch(job_id, connection=connection, serializer=SERIALIZER)
    assert (job.func_name, job.args, job.kwargs, job.retries_left) == (JobName.SYNC_SLACK.path, [request.id], {}, 10)
    ran: list[str] = []
    monkeypatch.setattr(
        entry.runtime, "current", lambda: SimpleNamespace(lifecycle=SimpleNamespace(sync_slack=ran.append))
    )
    SimpleWorker([make_queue(connection)], connection=connection, serializer=SERIALIZER).work(burst=True)
    assert ran == [request.id] and job.get_status() == "finished"


def test_sync_slack_without_a_transaction_then_queued_at_once() -> None:
    connection = fakeredis.FakeRedis()
    Tasks(connection).sync_slack("r-abc234", urgent=True)
    [job] = make_queue(connection, tasks.URGENT_QUEUE).jobs
    assert (job.func_name, job.args, job.origin) == (JobName.SYNC_SLACK.path, ["r-abc234"], tasks.URGENT_QUEUE)
