"""Redis: requests, the expiry and pending indexes, Slack message references and the audit stream.

A change of state, its index entries and its audit record are written by one Lua script, and only if the request
is still as the writer read it, so two writers racing (two approvers clicking at once) get one outcome.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import redis

from jitbot import audit, logs, metrics
from jitbot.domain import AccessRequest, Status
from jitbot.errors import ConfigError, NotFound
from jitbot.events import AuditEvent
from jitbot.redis_url import Replicas
from jitbot.review import ReviewStatus

EXPIRY = "jitbot:expiry"  # ACTIVE grants by expiry; APPROVED ones by the latest their grant could end: the schedule
PENDING = "jitbot:pending"  # PENDING requests by the time they time out
TIMERS = "jitbot:timers"  # `<kind>:<request id>` by when the reconciler should act (auto-approve, escalate, …)
UNDECIDED = "jitbot:undecided"  # requests (or extensions) waiting for approvers, by when they were asked
HOME_VIEWERS = "jitbot:home_viewers"  # people who have opened jitbot's App Home: theirs is kept current
REVIEWS = "jitbot:reviews"  # open break-glass reviews by their next re-alert
DRIFT = "jitbot:drift"  # the last drift scan: `orphaned:<provider>` counts, `scanned_at`, `findings` (a hash)
DRIFT_DUE = "jitbot:drift:due"  # held while the scan is not due: the worker that takes it queues one
# an approved request not yet granted this long after its decision has its issue job queued again (unless one is
# queued or running): a job lost with its worker or its Redis (a failover mid-job, AOF's last second) is re-driven
ISSUE_REDRIVE = timedelta(seconds=30)
_DATETIMES = (
    "created_at",
    "decided_at",
    "granted_at",
    "expires_at",
    "auto_approve_at",
    "escalate_at",
    "decide_by",
    "extend_decide_by",
    "verified_at",
)
_TUPLES = ("approvals", "extend_approvals")
_log = logs.get("jitbot.store")


def _unset(field: dataclasses.Field[Any]) -> Any:
    factory: Any = field.default_factory
    return factory() if factory is not dataclasses.MISSING else field.default


_UNSET = {  # fields that are empty unless set (None, False, 0, nothing): stored only once set
    field.name: _unset(field) for field in dataclasses.fields(AccessRequest) if not _unset(field)
}
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
_CLAIM = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(ids) do redis.call('ZADD', KEYS[1], 'XX', ARGV[3], id) end
return ids
"""
# one unverified request: counted exactly (metrics), and whether to audit it — the first of its reason in a window,
# with everything of that reason since the last record. O(1) storage whatever the flood: one field per reason.
_UNVERIFIED = """
redis.call('HINCRBY', KEYS[1], 'unverified:' .. ARGV[1], 1)
local since = redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
if redis.call('SET', KEYS[3], '1', 'NX', 'PX', ARGV[2]) then
  redis.call('HDEL', KEYS[2], ARGV[1])
  return since
end
return 0
"""
# a lease moved on for grants still being ended: never added back (a grant ended meanwhile left the index), never
# moved earlier (a failed revocation's retry time stands)
_RENEW = """
for i = 2, #ARGV do
  local score = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if score and tonumber(score) < tonumber(ARGV[1]) then redis.call('ZADD', KEYS[1], 'XX', ARGV[1], ARGV[i]) end
end
return 0
"""
# One audited write, whole or not at all, in one round trip: if the chain's head is still the one the record was
# hashed on (else its head is returned, to hash again) and every guard still holds (what the writer read: else -1,
# nothing written), the writes, then the record, then the new head. The writes are the commands a redis-py
# pipeline recorded (jitbot's own and RQ's, exactly as they would have gone into a MULTI); their keys travel in the
# plan rather than KEYS, as jitbot runs on one Redis (REDIS_URL has no Cluster scheme), where a script may write
# any key.
# KEYS: the head, the trail. ARGV: the head hashed on, the new `seq:hash`, the record's fields and values (JSON),
# the plan (JSON: guards, each a read command and what it must answer, and writes), then the binary parts the
# JSON cannot carry, which it names by their index in ARGV (every other part of a command is a string).
_APPEND = """
local head = redis.call('GET', KEYS[1]) or ''
if head ~= ARGV[1] then return {0, head} end
local plan = cjson.decode(ARGV[4])
local function part(value) if type(value) == 'number' then return ARGV[value] end return value end
local function run(command)
  local parts = {}
  for i, value in ipairs(command) do parts[i] = part(value) end
  return redis.call(unpack(parts))
end
for _, guard in ipairs(plan.guards) do
  if tostring(run(guard[1])) ~= part(guard[2]) then return {-1} end
end
for _, write in ipairs(plan.writes) do run(write) end
redis.call('XADD', KEYS[2], '*', unpack(cjson.decode(ARGV[3])))
redis.call('SET', KEYS[1], ARGV[2])
return {1}
"""
_BINARY_FROM = 5  # _APPEND's ARGV index of the first binary part
UNSEEN_HEAD = "?"  # what a Store that has not seen the chain's head yet says it is: no head is, so it is told
# a command's delivery claimed (first_delivery), what Slack said of its sender (cached_person), the chain's head
_FIRST_COMMAND = """
local first = redis.call('SET', KEYS[1], '', 'NX', 'PX', ARGV[1])
return {first and 1 or 0, redis.call('GET', KEYS[2]), redis.call('GET', KEYS[3])}
"""
UNVERIFIED_SINCE = "jitbot:unverified:since"  # per reason: refused since its last audit record
PERSON_TTL = timedelta(minutes=10)  # what users.info said of someone (standing, email): a guest made so stays out
GROUP_TTL = timedelta(seconds=60)  # a requester group's members: approval and auto-approval ask Slack afresh
DELIVERY_TTL = timedelta(minutes=10)  # longer than the 5 minutes a signed Slack request can be replayed
Change = Callable[[AccessRequest], tuple[AccessRequest, AuditEvent]]
Writes = Callable[[Any], None]  # queues commands on a pipeline (recorded, never executed)
Guard = tuple[tuple[str, ...], str | bytes]  # a read command, and what it must still answer for a write to go ahead


def request_key(request_id: str) -> str:
    return f"jitbot:req:{request_id}"


def slack_key(request_id: str) -> str:
    return f"jitbot:slack:{request_id}"


def mine_key(user: str) -> str:
    """A person's open requests (pending, approved, active), by creation: their list and App Home."""
    return f"jitbot:mine:{user}"


def review_key(request_id: str) -> str:
    return f"jitbot:review:{request_id}"


class Store:
    def __init__(self, client: redis.Redis, replicas: Replicas | None = None) -> None:
        """`replicas`: behind Sentinel, each audited write reaches a replica before it returns (redis_url.Replicas)."""
        self.redis = client
        self.replicas = replicas or Replicas(client, 0)
        self._append = client.register_script(_APPEND)
        self._first_command = client.register_script(_FIRST_COMMAND)
        # Every audited write appends to the one chain, hashed on the head this process last saw (None: not seen
        # yet); another process's record in between costs one more round trip. Threads of one process take turns,
        # so that they never hash on a head another of them has just replaced.
        self._head: str | None = None
        self._chain = threading.RLock()

    def ping(self) -> bool:
        return bool(self.redis.ping())

    def create(
        self,
        request: AccessRequest,
        event: AuditEvent,
        pending_until: datetime,
        also: Writes | None = None,
    ) -> bool:
        """Write a new request, and whatever `also` queues on the pipeline it is given (a job to announce it),
        with its audit record, at once; False (and nothing written) if the id is taken."""

        def writes(pipe: Any) -> None:
            pipe.zadd(PENDING, {request.id: pending_until.timestamp()})
            pipe.zadd(mine_key(request.requester), {request.id: request.created_at.timestamp()})
            _write_request(pipe, request, new=True)
            if also is not None:
                also(pipe)

        return self._commit(event, [(("EXISTS", request_key(request.id)), "0")], writes)

    def get(self, request_id: str) -> AccessRequest:
        raw = self.redis.get(request_key(request_id))
        if raw is None:
            raise NotFound(f"There is no request `{request_id[:20]}`.")
        return decode(raw)

    def transition(self, request_id: str, change: Change) -> tuple[AccessRequest, AuditEvent]:
        """Apply `change` to the stored request atomically; read and applied again if another writer got there
        first."""
        key = request_key(request_id)
        while True:
            raw = self.redis.get(key)
            if raw is None:
                raise NotFound(f"There is no request `{request_id[:20]}`.")
            new, event = change(decode(raw))
            if self._commit(event, [(("GET", key), raw)], partial(_write_request, request=new)):
                return new, event

    def record(self, event: AuditEvent) -> None:
        """An audit record with no change of state (a refused click, a refused request)."""
        self._commit(event)

    def _commit(self, event: AuditEvent, guards: Sequence[Guard] = (), writes: Writes | None = None) -> bool:
        """`event`'s chained record, its count and whatever `writes` queues, in one script run (_APPEND), if every
        guard still holds; False (nothing written) if one does not. A record hashed on a head another process has
        replaced is hashed again on the new one."""
        with self.redis.pipeline() as pipe:
            pipe.multi()  # never executed: a recorder, in MULTI as RQ expects of a caller's pipeline
            if writes is not None:
                writes(pipe)
            metrics.count_event(pipe, event.event)  # with the record: one count per audit record
            plan, binary = _plan(guards, [args for args, _ in pipe.command_stack])
        with self._chain:
            while True:
                seen = self._head
                fields = audit.chain(event, audit.parse_head(seen))
                head = f"{fields['seq']}:{fields['hash']}"
                record = json.dumps([part for pair in fields.items() for part in pair], ensure_ascii=False)
                hashed_on = UNSEEN_HEAD if seen is None else seen
                answer = self._append([audit.HEAD, audit.STREAM], [hashed_on, head, record, plan, *binary])
                if answer[0] == -1:
                    return False
                if answer[0] == 1:
                    self._head = head
                    break
                self._head = _text(answer[1])  # another process's record came first: hashed again, on it
        self.replicas.wait()
        audit.emit(fields)
        return True

    def audit_entries(self, start: str = "-", end: str = "+") -> Iterator[tuple[str, dict[str, str]]]:
        """The trail in order, as (stream id, fields), read in pages."""
        cursor = start
        while True:
            page: Any = self.redis.xrange(audit.STREAM, cursor, end, count=1000)
            for entry_id, fields in page:
                yield _text(entry_id), {_text(k): _text(v) for k, v in fields.items()}
            if len(page) < 1000:
                return
            cursor = "(" + _text(page[-1][0])

    def audit_head(self) -> tuple[int, str]:
        return audit.parse_head(self.redis.get(audit.HEAD))

    def note_revocation_failure(self, request_id: str, error: str, now: datetime) -> int:
        """Count one more failed attempt to revoke (and keep the error); returns how many in a row."""
        key = _failures_key(request_id)
        with self.redis.pipeline() as pipe:
            pipe.hincrby(key, "count", 1)
            pipe.hset(key, "last_error", error[:500])
            pipe.hsetnx(key, "first_failed_at", now.isoformat())
            count, *_ = pipe.execute()
        return int(count)

    def revocation_failures(self, request_id: str) -> dict[str, str]:
        return {_text(k): _text(v) for k, v in self.redis.hgetall(_failures_key(request_id)).items()}

    def claim_revocation_alert(self, request_id: str) -> bool:
        """True once per failing revocation: the one caller that should raise the alert."""
        return bool(self.redis.hsetnx(_failures_key(request_id), "alerted", "1"))

    def close_revocation_failures(self, request_id: str) -> None:
        """Revoked at last: the record of failures stays a day, for the alert's resolution message."""
        self.redis.expire(_failures_key(request_id), int(timedelta(days=1).total_seconds()))

    def retry_revocation_at(self, request_id: str, when: datetime) -> None:
        """Move the request's place in the expiry index: the reconciler comes back for it then."""
        self.redis.zadd(EXPIRY, {request_id: when.timestamp()}, xx=True)

    def cached_person(self, user: str) -> dict[str, str] | None:
        """What Slack said about `user` (standing, email) within the last PERSON_TTL, if anything."""
        return _facts(self.redis.get(_person_key(user)))

    def cache_person(self, user: str, facts: dict[str, str]) -> None:
        self.redis.set(_person_key(user), json.dumps(facts, separators=(",", ":")), px=_ms(PERSON_TTL))

    def cached_members(self, group: str) -> frozenset[str] | None:
        """A user group's members as Slack listed them within the last GROUP_TTL, if it did."""
        raw = self.redis.get(_group_key(group))
        return frozenset(json.loads(raw)) if raw is not None else None

    def cache_members(self, group: str, members: frozenset[str]) -> None:
        self.redis.set(_group_key(group), json.dumps(sorted(members), separators=(",", ":")), px=_ms(GROUP_TTL))

    def first_delivery(self, delivery: str) -> bool:
        """True the first time Slack's delivery id (trigger_id) is seen within the replay window."""
        return bool(self.redis.set(_delivery_key(delivery), "", nx=True, px=_ms(DELIVERY_TTL)))

    def first_command(self, delivery: str, user: str) -> tuple[bool, dict[str, str] | None]:
        """first_delivery of a command, and cached_person of the person who sent it, in one round trip: nearly
        every command needs both, first. The chain's head comes with them: the command's audited write is hashed
        on it, and one hashed on a head another process has replaced costs a round trip more (_commit)."""
        keys = (_delivery_key(delivery), _person_key(user), audit.HEAD)
        first, facts, head = self._first_command(keys, [_ms(DELIVERY_TTL)])
        # A hint only, so never waited for: a thread of this process holding the chain is appending, and leaves
        # the head it appended on (waiting for it queued every command behind the audited write in flight)
        if self._chain.acquire(blocking=False):
            try:  # the later of the two: another thread of this process may have written since
                if self._head is None or audit.parse_head(head)[0] > audit.parse_head(self._head)[0]:
                    self._head = _text(head or b"")
            finally:
                self._chain.release()
        return bool(first), _facts(facts)

    def forget_delivery(self, delivery: str) -> None:
        self.redis.delete(_delivery_key(delivery))

    def save_delivery_reply(self, delivery: str, reply: str, pipe: Any = None) -> None:
        """The answer to the first delivery; on `pipe`, with whatever else it writes (a request and its reply)."""
        (self.redis if pipe is None else pipe).set(_delivery_key(delivery), reply, xx=True, px=_ms(DELIVERY_TTL))

    def delivery_reply(self, delivery: str, wait: timedelta) -> str | None:
        """The answer given to the first delivery, waiting up to `wait` while it is being worked out."""
        deadline = time.monotonic() + wait.total_seconds()
        while True:
            raw = self.redis.get(_delivery_key(delivery))
            if raw or time.monotonic() > deadline:
                return _text(raw) if raw else None
            time.sleep(0.05)

    def due(self, index: str, now: datetime, limit: int = 500) -> list[str]:
        """Ids in `index` whose time has come, oldest first (one range query)."""
        ids = self.redis.zrangebyscore(index, "-inf", now.timestamp(), start=0, num=limit)
        return [_text(i) for i in ids]

    def home_viewers(self) -> set[str]:
        return {_text(u) for u in self.redis.smembers(HOME_VIEWERS)}

    def add_home_viewer(self, user: str) -> None:
        self.redis.sadd(HOME_VIEWERS, user)

    def undecided(self, limit: int) -> list[AccessRequest]:
        """What waits for approvers, oldest first: pending requests and extensions asked for."""
        return self.many([_text(i) for i in self.redis.zrange(UNDECIDED, 0, limit - 1)])

    def claim_due(self, now: datetime, limit: int, lease: timedelta) -> list[str]:
        """Up to `limit` ids due in the expiry index, oldest first, each moved `lease` ahead (atomically) so that
        no one else takes it while it is being revoked; revoking removes it, failing puts it at its retry time."""
        ids = self.redis.eval(_CLAIM, 1, EXPIRY, now.timestamp(), limit, (now + lease).timestamp())
        return [_text(i) for i in ids]

    def renew_leases(self, request_ids: list[str], until: datetime) -> None:
        """The claims on `request_ids` last until `until`: their revocations are still under way."""
        self.redis.eval(_RENEW, 1, EXPIRY, until.timestamp(), *request_ids)

    def clear_timer(self, kind: str, request_id: str) -> None:
        self.redis.zrem(TIMERS, f"{kind}:{request_id}")

    def set_timer(self, kind: str, request_id: str, when: datetime) -> None:
        self.redis.zadd(TIMERS, {f"{kind}:{request_id}": when.timestamp()}, xx=True)  # only one still set

    def many(self, request_ids: list[str]) -> list[AccessRequest]:
        """The requests that still exist, in the order asked (one round trip)."""
        if not request_ids:
            return []
        raws = self.redis.mget([request_key(i) for i in request_ids])
        return [decode(raw) for raw in raws if raw is not None]

    def open_requests_of(self, user: str) -> list[AccessRequest]:
        return self.many([_text(i) for i in self.redis.zrange(mine_key(user), 0, -1)])

    def all_open(self, limit: int) -> list[AccessRequest]:
        """Pending requests and live grants of everyone, oldest first, at most `limit` of each."""
        pending = [_text(i) for i in self.redis.zrange(PENDING, 0, limit - 1)]
        live = [_text(i) for i in self.redis.zrange(EXPIRY, 0, limit - 1)]
        return self.many(pending + live)

    def open_review(self, event: AuditEvent, due: datetime) -> None:
        """A break-glass grant's mandatory review: open until someone other than the user acknowledges it."""

        def writes(pipe: Any) -> None:
            pipe.hset(review_key(event.request_id), mapping={"status": ReviewStatus.OPEN, "alerts": "0"})
            pipe.zadd(REVIEWS, {event.request_id: due.timestamp()})

        self._commit(event, (), writes)

    def review(self, request_id: str) -> dict[str, str]:
        return {_text(k): _text(v) for k, v in self.redis.hgetall(review_key(request_id)).items()}

    def close_review(self, event: AuditEvent) -> bool:
        """Acknowledge or flag an open review (review.close_review's event); False (nothing written) if it was
        closed already: only an open review moves."""
        key = review_key(event.request_id)

        def writes(pipe: Any) -> None:
            pipe.hset(key, mapping={"status": event.status, "by": event.actor, "at": event.at.isoformat()})
            pipe.zrem(REVIEWS, event.request_id)

        return self._commit(event, [(("HGET", key, "status"), ReviewStatus.OPEN)], writes)

    def next_review_alert(self, request_id: str, due: datetime) -> int:
        """Count one more alert of an open review and schedule the next; returns how many were sent."""
        with self.redis.pipeline() as pipe:
            pipe.hincrby(review_key(request_id), "alerts", 1)
            pipe.zadd(REVIEWS, {request_id: due.timestamp()}, xx=True)
            count, _ = pipe.execute()
        return int(count)

    def slack_refs(self, request_id: str) -> dict[str, str]:
        raw = self.redis.hgetall(slack_key(request_id))
        return {_text(k): _text(v) for k, v in raw.items()}

    def set_slack_refs(self, request_id: str, **refs: str) -> None:
        self.redis.hset(slack_key(request_id), mapping=refs)  # type: ignore[arg-type]

    def drop_slack_refs(self, request_id: str, *names: str) -> None:
        self.redis.hdel(slack_key(request_id), *names)

    def block_announcement(self, request_id: str, channel: str) -> bool:
        """Note that the request's approval message cannot be posted in `channel` until an admin fixes Slack;
        True the first time (for this request)."""
        with self.redis.pipeline() as pipe:
            pipe.sadd(_blocked_key(channel), request_id)
            pipe.hsetnx(slack_key(request_id), "blocked_in", channel)
            _, first = pipe.execute()
        return bool(first)

    def unblock_channel(self, channel: str) -> list[str]:
        """The requests waiting for `channel`, forgotten as waiting: the caller announces them now."""
        with self.redis.pipeline() as pipe:
            pipe.smembers(_blocked_key(channel))
            pipe.delete(_blocked_key(channel))
            members, _ = pipe.execute()
        waiting = sorted(_text(m) for m in members)
        for request_id in waiting:
            self.drop_slack_refs(request_id, "blocked_in")
        return waiting

    def claim_slack_alert(self, channel: str, code: str, every: timedelta) -> bool:
        """One alert per Slack misconfiguration (channel and error) per `every`: True for the caller who sends it."""
        return bool(self.redis.set(f"jitbot:slack_alert:{channel}:{code}", "1", nx=True, px=_ms(every)))

    @contextmanager
    def lock(self, name: str, ttl: timedelta) -> Iterator[bool]:
        """A best-effort exclusive section across processes; yields False if someone else holds it."""
        key, token = f"jitbot:lock:{name}", secrets.token_hex(8)
        got = bool(self.redis.set(key, token, nx=True, px=_ms(ttl)))
        try:
            yield got
        finally:
            if got:  # only our own: a holder that outlived the ttl must not free the next holder's lock
                self.redis.eval(_RELEASE, 1, key, token)

    def shared(self, key: str) -> tuple[bool, set[str]] | None:
        """Who holds a cloud object jitbot shares between grants (an Identity Center assignment): whether jitbot
        created it, and the requests holding it; None when jitbot knows of no holder."""
        raw = {_text(k): _text(v) for k, v in self.redis.hgetall(_shared_key(key)).items()}
        if not raw:
            return None
        return raw.get("created") == "1", {k.removeprefix("holder:") for k in raw if k.startswith("holder:")}

    def hold_shared(self, key: str, holder: str, created: bool | None) -> None:
        """`holder` holds the object; `created` says whether jitbot made it (None: as recorded before)."""
        with self.redis.pipeline() as pipe:
            if created is not None:
                pipe.hset(_shared_key(key), "created", "1" if created else "0")
            pipe.hset(_shared_key(key), f"holder:{holder}", "1")
            pipe.execute()

    def release_shared(self, key: str, holder: str) -> None:
        """`holder` no longer holds the object; the record goes with its last holder."""
        self.redis.hdel(_shared_key(key), f"holder:{holder}")
        if not any(_text(k).startswith("holder:") for k in self.redis.hkeys(_shared_key(key))):
            self.redis.delete(_shared_key(key))

    def note_unverified(self, reason: str, window: timedelta) -> int:
        """Count one request refused before it could be verified; how many to put in an audit record now (all of
        `reason` since its last record), or 0 while a record of it is younger than `window`."""
        window_key = f"jitbot:unverified:window:{reason}"
        keys = (metrics.COUNTERS, UNVERIFIED_SINCE, window_key)
        return int(self.redis.eval(_UNVERIFIED, len(keys), *keys, reason, _ms(window)))

    def claim_drift_scan(self, every: timedelta) -> bool:
        """True for one caller every `every`: the worker that gets it queues the drift scan."""
        return bool(self.redis.set(DRIFT_DUE, "1", nx=True, px=_ms(every)))

    def save_drift(self, orphaned: dict[str, int], at: datetime, findings: str) -> str:
        """Record a scan's orphans left in the clouds, by provider; the previous scan's `findings` are returned."""
        fields: dict[Any, str | float] = {f"orphaned:{provider}": count for provider, count in orphaned.items()}
        with self.redis.pipeline() as pipe:
            pipe.hget(DRIFT, "findings")
            pipe.delete(DRIFT)
            pipe.hset(DRIFT, mapping=fields | {"scanned_at": at.timestamp(), "findings": findings})
            before, *_ = pipe.execute()
        return _text(before or b"")

    @contextmanager
    def serial(self, name: str, ttl: timedelta, wait: timedelta) -> Iterator[None]:
        """Writers of one shared thing (a role's inline policy) take turns across processes: wait up to `wait`
        for the holder, then hold it for at most `ttl`; TimeoutError if it never came free."""
        deadline = time.monotonic() + wait.total_seconds()
        while True:
            with self.lock(name, ttl) as mine:
                if mine:
                    yield
                    return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name} stayed taken for {wait.total_seconds():g} s")
            time.sleep(0.01)

    # digests: requests announced together in one approval message (jitbot.slack.notify)

    def unannounced(self, resources: set[str], scan: int) -> list[AccessRequest]:
        """Pending requests of `resources` whose approval message is not posted yet (and not held for a channel an
        admin must fix), oldest first. Found among the `scan` newest undecided requests, the index every request
        joins when it is made: no write of its own on the way to the ack, and a request counts as waiting from the
        moment it exists, not only once a worker takes its job."""
        newest = [_text(i) for i in self.redis.zrevrange(UNDECIDED, 0, scan - 1)]
        with self.redis.pipeline(transaction=False) as pipe:
            for request_id in newest:
                pipe.hmget(slack_key(request_id), "approval_ts", "blocked_in")
            marks = pipe.execute()
        waiting = self.many([i for i, held in zip(newest, marks, strict=True) if held == [None, None]])
        found = [r for r in waiting if r.status is Status.PENDING and r.resource in resources]
        return sorted(found, key=lambda r: (r.created_at, r.id))

    def digest(self, channel: str, ts: str) -> dict[str, int]:
        """The requests the digest at (`channel`, `ts`) carries, each with the version of it the message shows."""
        return {_text(k): int(v) for k, v in self.redis.hgetall(_digest_key(channel, ts)).items()}

    def show_digest(self, channel: str, ts: str, shown: dict[str, int]) -> None:
        """The digest at (`channel`, `ts`) shows these requests at these versions, and is each one's approval message
        (its refs point at it): in one MULTI, so a request is either still waiting or recorded in its digest."""
        with self.redis.pipeline() as pipe:
            pipe.hset(_digest_key(channel, ts), mapping=shown)  # type: ignore[arg-type]
            refs = {"approval_channel": channel, "approval_ts": ts, "digest": "1"}
            for request_id in shown:
                pipe.hset(slack_key(request_id), mapping=refs)  # type: ignore[arg-type]
            pipe.execute()


def _digest_key(channel: str, ts: str) -> str:
    return f"jitbot:digest:{channel}:{ts}"


def _plan(guards: Sequence[Guard], writes: list[tuple[Any, ...]]) -> tuple[str, list[bytes]]:
    """_APPEND's plan, and the binary parts it names. One JSON argument rather than the ~130 of a request's write:
    redis-py encodes each argument of a command in Python, which cost more than the rest of the write."""
    binary: list[bytes] = []

    def part(value: Any) -> str | int:
        if isinstance(value, str):
            return value
        if isinstance(value, bytes):
            binary.append(value)
            return _BINARY_FROM + len(binary) - 1
        if isinstance(value, int | float) and not isinstance(value, bool):
            return repr(value)  # as redis-py sends a number
        raise TypeError(f"a Redis command argument cannot be {type(value).__name__}")

    def parts(command: Sequence[Any]) -> list[str | int]:
        return [value if type(value) is str else part(value) for value in command]  # most are text: no call

    plan = {"guards": [[parts(read), part(answer)] for read, answer in guards], "writes": [parts(c) for c in writes]}
    return json.dumps(plan, ensure_ascii=False), binary


def _write_request(pipe: Any, request: AccessRequest, new: bool = False) -> None:
    """The request and its index entries; a `new` one has no entry to take away."""
    pipe.set(request_key(request.id), encode(request))
    if request.status is not Status.PENDING:
        pipe.zrem(PENDING, request.id)
    if request.status is Status.ACTIVE and request.expires_at:
        pipe.zadd(EXPIRY, {request.id: request.expires_at.timestamp()})
    elif request.status is Status.APPROVED and request.decided_at:
        pipe.zadd(EXPIRY, {request.id: (request.decided_at + request.duration).timestamp()})
    elif request.status.is_final:
        pipe.zrem(EXPIRY, request.id)
        pipe.zrem(mine_key(request.requester), request.id)
    pending = request.status is Status.PENDING
    extending = request.status is Status.ACTIVE and request.extend_by is not None
    if pending or extending:
        pipe.zadd(UNDECIDED, {request.id: request.created_at.timestamp()})
    else:
        pipe.zrem(UNDECIDED, request.id)
    issue_at = request.decided_at + ISSUE_REDRIVE if request.status is Status.APPROVED and request.decided_at else None
    timers = {
        "extension": request.extend_decide_by if extending else None,
        "auto": request.auto_approve_at if pending else None,
        "escalate": request.escalate_at if pending and not request.escalated else None,
        "remind": request.remind_at,
        "refresh": request.refresh_at,
        "issue": issue_at,
    }
    due = {f"{kind}:{request.id}": when.timestamp() for kind, when in timers.items() if when is not None}
    if due:
        pipe.zadd(TIMERS, due)
    if not new and len(due) < len(timers):
        pipe.zrem(TIMERS, *(f"{kind}:{request.id}" for kind, when in timers.items() if when is None))


def check_durability(client: redis.Redis, allow_unsafe: bool) -> None:
    """Refuse a production Redis that could evict or forget a grant; the message says how to fix it."""
    memory, persistence = client.info("memory"), client.info("persistence")
    try:
        save = _text(client.config_get("save").get("save", ""))
    except redis.ResponseError:  # managed services often disable CONFIG
        save = ""
    problems = durability_problems(str(memory.get("maxmemory_policy", "")), bool(persistence.get("aof_enabled")), save)
    if problems and not allow_unsafe:
        raise ConfigError(
            "REDIS_URL points at a Redis that can lose grants: " + "; ".join(problems) + ". Fix it with "
            "`CONFIG SET maxmemory-policy noeviction` and `CONFIG SET appendonly yes` (or your provider's "
            "parameter group), or set JITBOT_ALLOW_UNSAFE_REDIS=1 if it persists in a way jitbot cannot see."
        )


def durability_problems(maxmemory_policy: str, aof_enabled: bool, save: str) -> list[str]:
    problems = []
    if maxmemory_policy != "noeviction":
        problems.append(f"maxmemory-policy is {maxmemory_policy or 'unknown'}, so keys can be evicted")
    if not aof_enabled and not save.strip():
        problems.append("neither AOF nor RDB snapshots are on, so a restart forgets everything")
    return problems


def _blocked_key(channel: str) -> str:
    return f"jitbot:blocked:{channel}"


def _failures_key(request_id: str) -> str:
    return f"jitbot:revoke_failures:{request_id}"


def _shared_key(key: str) -> str:
    return "jitbot:shared:" + hashlib.sha256(key.encode()).hexdigest()[:32]


def _person_key(user: str) -> str:
    return f"jitbot:person:{user}"


def _group_key(group: str) -> str:
    return f"jitbot:group:{group}"


def _delivery_key(delivery: str) -> str:
    return "jitbot:delivery:" + hashlib.sha256(delivery.encode()).hexdigest()[:32]  # any text in, a bounded key out


def _facts(raw: bytes | str | None) -> dict[str, str] | None:
    return dict(json.loads(raw)) if raw else None


def _ms(span: timedelta) -> int:
    return int(span.total_seconds() * 1000)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def encode(request: AccessRequest) -> str:
    """Compact JSON of the fields that differ from their defaults (decode restores those): a grant is about
    550 bytes instead of 780, most of what Redis holds per grant."""
    data: dict[str, Any] = {}
    for name, value in vars(request).items():
        if name in _UNSET and value == _UNSET[name]:
            continue
        if isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, timedelta):
            value = value.total_seconds()
        elif isinstance(value, tuple):
            value = list(value)
        data[name] = value
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def decode(raw: bytes | str) -> AccessRequest:
    data = json.loads(raw)
    for name in _DATETIMES:
        data[name] = datetime.fromisoformat(data[name]).astimezone(UTC) if data.get(name) else None
    data["duration"] = timedelta(seconds=data["duration"])
    if data.get("extend_by") is not None:
        data["extend_by"] = timedelta(seconds=data["extend_by"])
    data["status"] = Status(data["status"])
    for name in _TUPLES:
        data[name] = tuple(data.get(name, ()))
    return AccessRequest(**data)
