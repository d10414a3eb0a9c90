"""The worker process: an RQ worker with the scheduler that also runs the reconciler on every maintenance pass.

Jobs run in the worker's own process (RQ's SimpleWorker), one at a time. RQ's default forks a child per job:
about 50 ms of CPU each on a loaded interpreter, against ~4 ms for the job itself, so a burst of 300 requests
took 15 s to reach the approvers, and the forks took the CPU the web process needs to ack Slack in time
(bench/ack.py, README Performance). A job's timeout still holds (SIGALRM in the main thread); what forking
added, surviving a job that kills its own interpreter, is the supervisor's restart here.

It issues access, keeps Slack current and runs retries; the `sweeper` process revokes grants as they fall due.
A short maintenance interval makes the reconciler pass every ~10 s — the second net under the sweeper, for
anything overdue that no sweeper has claimed — and lets a surviving worker take over the scheduler lock quickly
when its holder dies (RQ's default interval is 600 s). A pass also queues the drift scan (jitbot.drift) when it
is due: one worker of all takes it, every 15 minutes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import redis
from rq import Queue, SimpleWorker
from rq.job import Job

from jitbot import runtime
from jitbot.app.drift import SCAN_EVERY
from jitbot.core import redaction
from jitbot.jobs.tasks import QUEUES, SERIALIZER, make_queue
from jitbot.observability import logs
from jitbot.observability.outage import Outage, describe

MAINTENANCE_INTERVAL_S = 10
WORKER_TTL_S = 25  # RQ blocks for worker_ttl - 15 s waiting for a job: a maintenance pass at least that often
_log = logs.get("jitbot.worker")


class RedisWithoutTraceback(logging.Filter):
    """RQ logs Redis dropping mid-loop (a restart, a failover) with a traceback, then returns from `work`; `run`
    below takes it from there (one line a try, backing off). Keep RQ's line, drop the traceback: an outage reads
    the same in every process."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], redis.RedisError):
            record.msg = f"{record.msg} ({describe(record.exc_info[1])})"
            record.exc_info = None
        return True


class JitbotWorker(SimpleWorker):
    outage: Outage | None = None  # run's: a maintenance pass that reached Redis ends the outage it counts

    def execute_job(self, job: Job, queue: Queue) -> None:
        try:
            super().execute_job(job, queue)
        finally:
            redaction.forget()  # the job's secrets end with it, as they did with the child that used to run it

    def run_maintenance_tasks(self) -> None:
        super().run_maintenance_tasks()  # type: ignore[no-untyped-call]
        rt = runtime.current()
        try:
            rt.lifecycle.reconcile()
            if rt.store.locks.claim_drift_scan(SCAN_EVERY):  # one worker of all, every SCAN_EVERY
                rt.tasks.scan_clouds()
            if self.outage is not None:  # one `redis_back` line, and the next outage backs off from 1 s again
                self.outage.recovered()
        except redis.RedisError as error:  # the next pass retries; RQ's own loop notices the outage too
            _log.warning("reconcile_skipped", error=describe(error))
        except Exception:  # noqa: BLE001 - the next pass retries; the worker must keep serving jobs
            _log.exception("reconcile_failed")


def run(sleep: Callable[[float], None] = time.sleep) -> None:
    """Work until asked to stop. RQ's loop returns when Redis drops mid-job (a restart, a failover), and RQ raises
    when Redis is away as a worker starts: start it again, backing off (jitbot.outage), rather than exit, since
    one exited process stops every other under honcho — unless JITBOT_REDIS_GIVE_UP_S says to exit (GaveUp)."""
    rt = runtime.current()
    logging.getLogger("rq.worker").addFilter(RedisWithoutTraceback())
    for resource in rt.catalog.resources.values():
        rt.lifecycle.providers(resource.kind)  # import SDKs and load their models once, before the first job
    options: dict[str, Any] = {"maintenance_interval": MAINTENANCE_INTERVAL_S, "worker_ttl": WORKER_TTL_S}
    outage = Outage(_log, rt.config.redis_give_up_s)
    while True:
        try:
            queues = [make_queue(rt.redis, name) for name in QUEUES]  # urgent first: RQ takes them in this order
            worker = JitbotWorker(queues, connection=rt.redis, serializer=SERIALIZER, **options)
            worker.outage = outage
            worker.work(with_scheduler=True, logging_level="INFO")
        except redis.RedisError as error:
            sleep(outage.failed(describe(error)))
            continue
        # SIGTERM or SIGINT (RQ has no public accessor): an idle worker records only the date of the request
        if worker._stop_requested or worker._shutdown_requested_date is not None:
            return
        sleep(outage.failed("RQ's loop returned: Redis dropped the connection"))
