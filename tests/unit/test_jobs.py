"""The job table: every job named once, queued under a path RQ imports, and still run when an older jitbot
queued it under its old path."""

from datetime import timedelta

import pytest
from rq.utils import import_attribute

from jitbot import runtime
from jitbot.core.domain import Status
from jitbot.jobs import entry
from jitbot.jobs.names import JobName
from jitbot.jobs.registry import JOBS
from jitbot.jobs.tasks import QUEUES, REVOKE_RETRY, SERIALIZER, URGENT_QUEUE, make_queue
from tests.unit.test_lifecycle import CATALOG, NOW, active, make_bot, status
from tests.unit.test_policies_and_timers import worker_context
from workers import worker


def test_registry_when_every_job_named_then_each_runs_from_one_entry_under_the_path_rq_imports() -> None:
    """The paths are stored in Redis and outlive a deploy: one that changes strands the jobs queued under it."""
    assert set(JOBS) == set(JobName)
    for name in JobName:
        assert name.path == f"jitbot.jobs.entry.{name}" and callable(import_attribute(name.path))


def test_entry_when_asked_for_what_is_no_job_then_no_such_attribute() -> None:
    """RQ, the import machinery and inspect probe modules with hasattr: only a job's name resolves."""
    assert not hasattr(entry, "__wrapped__") and not hasattr(entry, "revoke_now")


@pytest.mark.parametrize("name", list(JobName))
def test_old_path_when_queued_by_an_older_jitbot_then_still_importable(name: JobName) -> None:
    assert callable(import_attribute(f"workers.jobs.{name}"))


def test_worker_when_a_revocation_was_queued_under_its_old_path_then_it_still_ends_the_grant(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As an older jitbot queued it (`workers.jobs.revoke`, left in Redis across the deploy), the worker of this
    one takes it from the urgent queue and the grant ends, cut in the cloud."""
    with make_bot(CATALOG) as bot:
        request_id = active(bot)
        bot.clock.now = NOW + timedelta(hours=2)  # past its expiry
        monkeypatch.setattr(runtime, "current", lambda: worker_context(bot))
        job = make_queue(bot.redis, URGENT_QUEUE).enqueue_call(
            "workers.jobs.revoke", (request_id,), job_id=f"revoke-now-{request_id}", retry=REVOKE_RETRY
        )
        queues = [make_queue(bot.redis, name) for name in QUEUES]
        worker.JitbotWorker(queues, connection=bot.redis, serializer=SERIALIZER).work(burst=True)
        assert job.get_status() == "finished" and status(bot, request_id) is Status.EXPIRED
        assert ("revoke", request_id) in bot.fake.calls
