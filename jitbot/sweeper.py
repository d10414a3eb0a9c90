"""The sweeper: revokes grants as they fall due, many at a time, from the expiry index itself.

It runs as its own process (`sweeper:` in the Procfile; add more at will). Each pass claims what is due (a Lua
script moves each claimed entry a lease into the future, so that no other sweeper — nor the reconciler — takes it
meanwhile), groups it by the cloud policy each end writes (a GCP resource's policy, an AWS role's deny; an Azure
PIM removal is its own request, so its own group) and ends each group on a thread pool, with the fewest writes
(`Provider.revoke_many`): cloud calls are I/O, and one slow policy must not hold back the rest. A revoked grant
leaves the index in the transaction that records it; one whose revocation failed is put back at its retry time;
one whose sweeper died comes back when the lease runs out. There is no job per grant to
schedule, lose or fork, and no fork in this process (threads and fork do not mix).
"""

from __future__ import annotations

import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import redis

from jitbot import runtime
from jitbot.app.lifecycle import Lifecycle
from jitbot.core.clock import Clock, utcnow
from jitbot.core.domain import AccessRequest
from jitbot.core.errors import NotFound
from jitbot.observability import logs
from jitbot.observability.outage import Outage, describe
from jitbot.store import Store

THREADS = 32  # concurrent cloud calls per sweeper process
BATCH = 50  # grants claimed per free thread: a policy's due grants are ended together, on one thread
LEASE = timedelta(seconds=10)  # a claimed grant is someone else's to take after this (its sweeper died)
RENEW_EVERY = LEASE / 2  # a claim being worked on is renewed this often, however long its cloud takes
LANE_FULL_RETRY = timedelta(seconds=2)  # a grant whose cloud has all its threads busy is put back this far ahead
IDLE_S = 0.2  # how often an idle sweeper looks: the lag of a revocation when nothing else is due
HOLD = timedelta(seconds=IDLE_S)  # a policy's newly due grants wait this long while a group of it is being ended
_log = logs.get("jitbot.sweeper")
Group = tuple[tuple[str, str], list[str]]  # (cloud, policy) → the claimed grants whose ends write it


class Sweeper:
    def __init__(
        self,
        lifecycle: Lifecycle,
        store: Store,
        clock: Clock = utcnow,
        threads: int = THREADS,
        outage: Outage | None = None,
        lane_size: int | None = None,
        batch: int = BATCH,
    ) -> None:
        """`batch`: grants claimed per free thread (1: each grant ended on its own, as before batching)."""
        self.lifecycle = lifecycle
        self.store = store
        self.clock = clock
        self.slots = threading.BoundedSemaphore(threads)
        self.threads = threads
        self.batch = batch
        self.outage = outage or Outage(_log)
        self.lane_size = lane_size or share(threads, {r.provider for r in lifecycle.catalog.resources.values()})
        self._lanes: dict[str, threading.BoundedSemaphore] = {}
        self._inflight: set[str] = set()
        self._writing: set[tuple[str, str]] = set()  # the policies a group is being ended on
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
        """Claim due grants (BATCH per free thread), group them by policy, and start ending each group on a thread
        of its own; returns how many grants were claimed."""
        self._renew_leases()
        if not self.slots.acquire(timeout=IDLE_S):  # every thread busy
            return 0
        free = 1
        while free < self.threads and self.slots.acquire(blocking=False):
            free += 1
        groups: list[Group] = []
        serial: set[tuple[str, str]] = set()
        try:
            claimed = self.store.requests.claim_due(self.clock(), free * self.batch, LEASE)
            groups, serial = self._grouped(claimed, free)
        finally:  # Redis away: every slot not given a group comes back (what was claimed, the lease brings back)
            for _ in range(free - len(groups)):
                self.slots.release()
        with self._inflight_lock:
            self._inflight.update(request_id for _, ids in groups for request_id in ids)
            self._writing.update(policy for policy, _ in groups if policy in serial)
        for policy, ids in groups:
            pool.submit(self._end, policy, ids)
        return len(claimed)

    def _grouped(self, claimed: list[str], free: int) -> tuple[list[Group], set[tuple[str, str]]]:
        """`claimed` by the policy their ends write, oldest first, and which of those policies take one group at a
        time (their provider does not merge ends running at once). The groups of such a policy already being
        written wait HOLD (they go with the next group, one write, rather than racing that one for the policy and
        its rate limit); those beyond `free` (more policies due than threads free) are put back, due, for the next
        pass."""
        by_policy: dict[tuple[str, str], list[str]] = {}
        serial: set[tuple[str, str]] = set()
        found = self.store.requests.many(claimed)
        for request in found:
            policy, merges = self._policy(request)
            by_policy.setdefault(policy, []).append(request.id)
            if not merges:
                serial.add(policy)
        for request_id in set(claimed) - {request.id for request in found}:  # gone: end_many finds nothing to do
            by_policy[("", request_id)] = [request_id]
        with self._inflight_lock:
            held = [ids for policy, ids in by_policy.items() if policy in self._writing]
            groups = [(policy, ids) for policy, ids in by_policy.items() if policy not in self._writing]
        now = self.clock()
        for back_at, put_back in ((now + HOLD, held), (now, [ids for _, ids in groups[free:]])):
            for ids in put_back:
                for request_id in ids:
                    self.store.requests.retry_revocation_at(request_id, back_at)
        return groups[:free], serial

    def _policy(self, request: AccessRequest) -> tuple[tuple[str, str], bool]:
        """The request's cloud (its lane) and the policy its end writes there; whether its provider merges ends of
        that policy running at once."""
        try:
            policy, merges = self.lifecycle.policy_of(request)
        except NotFound:  # its resource left the catalog: on its own, where end_access says so
            return (request.provider, request.id), True
        return (request.provider, policy), merges

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
            self.store.requests.renew_leases(working, now + LEASE)

    def _end(self, policy: tuple[str, str], request_ids: list[str]) -> None:
        """End one policy's group on the threads of its cloud (its catalog provider): one cloud never takes them
        all, and a throttled policy holds one thread, not one per grant."""
        lane = self._lanes.setdefault(policy[0], threading.BoundedSemaphore(self.lane_size))
        try:
            if not lane.acquire(blocking=False):  # its cloud already has its share of threads (frozen, say)
                retry_at = self.clock() + LANE_FULL_RETRY
                for request_id in request_ids:
                    self.store.requests.retry_revocation_at(request_id, retry_at)
                return
            try:
                self.lifecycle.end_many(request_ids)
            finally:
                lane.release()
        except Exception:  # noqa: BLE001 - the lease brings them back; the reconciler is the second net
            _log.exception("revoke_failed", request_ids=request_ids)
        finally:
            with self._inflight_lock:
                self._inflight.difference_update(request_ids)
                self._writing.discard(policy)
            self.slots.release()


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
