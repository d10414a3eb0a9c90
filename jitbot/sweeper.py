"""The sweeper: revokes grants as they fall due, many at a time, from the expiry index itself.

It runs as its own process (`sweeper:` in the Procfile; add more at will). Each pass claims what is due (a Lua
script moves each claimed entry a lease into the future, so that no other sweeper — nor the reconciler — takes it
meanwhile) and ends it on a thread pool: cloud calls are I/O, and one slow call must not hold back the rest. A
revoked grant leaves the index in the transaction that records it; one whose revocation failed is put back at
its retry time; one whose sweeper died comes back when the lease runs out. There is no job per grant to
schedule, lose or fork, and no fork in this process (threads and fork do not mix).
"""

from __future__ import annotations

import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import redis

from jitbot import logs, runtime
from jitbot.clock import Clock, utcnow
from jitbot.errors import NotFound
from jitbot.lifecycle import Lifecycle
from jitbot.outage import Outage, describe
from jitbot.store import Store

THREADS = 32  # concurrent cloud calls per sweeper process
LEASE = timedelta(seconds=10)  # a claimed grant is someone else's to take after this (its sweeper died)
RENEW_EVERY = LEASE / 2  # a claim being worked on is renewed this often, however long its cloud takes
LANE_FULL_RETRY = timedelta(seconds=2)  # a grant whose cloud has all its threads busy is put back this far ahead
IDLE_S = 0.2  # how often an idle sweeper looks: the lag of a revocation when nothing else is due
_log = logs.get("jitbot.sweeper")


class Sweeper:
    def __init__(
        self,
        lifecycle: Lifecycle,
        store: Store,
        clock: Clock = utcnow,
        threads: int = THREADS,
        outage: Outage | None = None,
        lane_size: int | None = None,
    ) -> None:
        self.lifecycle = lifecycle
        self.store = store
        self.clock = clock
        self.slots = threading.BoundedSemaphore(threads)
        self.threads = threads
        self.outage = outage or Outage(_log)
        self.lane_size = lane_size or share(threads, {r.provider for r in lifecycle.catalog.resources.values()})
        self._lanes: dict[str, threading.BoundedSemaphore] = {}
        self._inflight: set[str] = set()
        self._inflight_lock = threading.Lock()
        self._renewed: datetime | None = None

    def run(self, stop: threading.Event) -> None:
        """Sweep until `stop` is set; never dies of an error (the next pass tries again). Redis away: one line
        per try, backing off (jitbot.outage), until it answers — or GaveUp, if the operator asked for that."""
        with ThreadPoolExecutor(self.threads, thread_name_prefix="sweeper") as pool:
            while not stop.is_set():
                try:
                    claimed = self.sweep(pool)
                except redis.RedisError as error:
                    stop.wait(self.outage.failed(describe(error)))
                    continue
                except Exception:  # noqa: BLE001 - anything else: log, wait, go on
                    _log.exception("sweep_failed")
                    claimed = 0
                else:
                    self.outage.recovered()
                if not claimed:
                    stop.wait(IDLE_S)

    def sweep(self, pool: ThreadPoolExecutor) -> int:
        """Claim as many due grants as there are free threads, and start ending each; returns how many."""
        self._renew_leases()
        if not self.slots.acquire(timeout=IDLE_S):  # every thread busy
            return 0
        free = 1
        while free < self.threads and self.slots.acquire(blocking=False):
            free += 1
        claimed: list[str] = []
        try:
            claimed = self.store.claim_due(self.clock(), free, LEASE)
        finally:  # Redis away: every slot taken for this pass comes back
            for _ in range(free - len(claimed)):
                self.slots.release()
        with self._inflight_lock:
            self._inflight.update(claimed)
        for request_id in claimed:
            pool.submit(self._end, request_id)
        return len(claimed)

    def _renew_leases(self) -> None:
        """Every grant being ended keeps its claim while its cloud call runs (each call is bounded, a revocation
        makes several): no other sweeper, nor the reconciler, starts the same revocation beside it."""
        now = self.clock()
        if self._renewed is not None and now - self._renewed < RENEW_EVERY:
            return
        self._renewed = now
        with self._inflight_lock:
            working = sorted(self._inflight)
        if working:
            self.store.renew_leases(working, now + LEASE)

    def _end(self, request_id: str) -> None:
        try:
            lane = self._lane(request_id)  # reads Redis: inside, so that its failure too gives the thread back
            if not lane.acquire(blocking=False):  # its cloud already has its share of threads (frozen, say)
                self.store.retry_revocation_at(request_id, self.clock() + LANE_FULL_RETRY)
                return
            try:
                self.lifecycle.end_access(request_id)
            finally:
                lane.release()
        except Exception:  # noqa: BLE001 - the lease brings it back; the reconciler is the second net
            _log.exception("revoke_failed", request_id=request_id)
        finally:
            with self._inflight_lock:
                self._inflight.discard(request_id)
            self.slots.release()

    def _lane(self, request_id: str) -> threading.BoundedSemaphore:
        """The threads of the request's cloud (its catalog provider): one cloud never takes them all."""
        try:
            provider = self.store.get(request_id).provider
        except NotFound:  # ended and gone meanwhile: end_access finds nothing to do
            provider = ""
        return self._lanes.setdefault(provider, threading.BoundedSemaphore(self.lane_size))


def share(threads: int, providers: set[str]) -> int:
    """One cloud's share of the threads: all of them when the catalog has one cloud, else half, so that a frozen
    endpoint holds no more than that while the other clouds' revocations go on."""
    return threads if len(providers) <= 1 else max(1, threads // 2)


def run() -> None:
    """The `sweeper` process: sweep until SIGTERM or SIGINT, letting the revocations under way finish."""
    rt = runtime.current()
    for resource in rt.catalog.resources.values():
        rt.lifecycle.providers(resource.kind)  # import the SDKs before the first grant falls due
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    _log.info("sweeper_started", threads=THREADS, lease_s=LEASE.total_seconds())
    Sweeper(rt.lifecycle, rt.store, outage=Outage(_log, rt.config.redis_give_up_s)).run(stop)
