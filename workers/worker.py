"""The worker process: an RQ worker with the scheduler that also runs the reconciler on every maintenance pass.

A short maintenance interval makes the reconciler sweep every ~10 s and lets a surviving worker take over
the scheduler lock quickly when its holder dies (RQ's default interval is 600 s).
"""

from __future__ import annotations

from typing import Any

from rq import Worker

from jitbot import logs, runtime
from jitbot.tasks import SERIALIZER, make_queue

MAINTENANCE_INTERVAL_S = 10
WORKER_TTL_S = 25  # RQ blocks for worker_ttl - 15 s waiting for a job: a maintenance pass at least that often
_log = logs.get("jitbot.worker")


class JitbotWorker(Worker):
    def run_maintenance_tasks(self) -> None:
        super().run_maintenance_tasks()  # type: ignore[no-untyped-call]
        try:
            runtime.current().lifecycle.reconcile()
        except Exception:  # noqa: BLE001 - the next pass retries; the worker must keep serving jobs
            _log.exception("reconcile_failed")


def run() -> None:
    rt = runtime.current()
    for resource in rt.catalog.resources.values():
        rt.lifecycle.providers(resource.provider)  # import SDKs once, before RQ forks a child per job
    options: dict[str, Any] = {"maintenance_interval": MAINTENANCE_INTERVAL_S, "worker_ttl": WORKER_TTL_S}
    worker = JitbotWorker([make_queue(rt.redis)], connection=rt.redis, serializer=SERIALIZER, **options)
    worker.work(with_scheduler=True, logging_level="INFO")
