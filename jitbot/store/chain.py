"""The audited write: a change of state and its hash-chained audit record, whole or not at all, in one script run.

A change of state, its index entries and its audit record are written by one Lua script, and only if what the
writer read still holds, so two writers racing (two approvers clicking at once) get one outcome. Every other part
of the store that writes state with its audit record goes through AuditChain.commit.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import redis

from jitbot.app.repository import Writes
from jitbot.core.events import AuditEvent
from jitbot.store import audit
from jitbot.store.codec import text
from jitbot.store.counters import count_event
from jitbot.store.keys import AUDIT, AUDIT_HEAD

if TYPE_CHECKING:
    from jitbot.store.redis_url import Replicas  # which imports the keys: typing only, so neither waits for the other

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
UNSEEN_HEAD = "?"  # what a chain that has not seen the head yet says it is: no head is, so it is told
Guard = tuple[tuple[str, ...], str | bytes]  # a read command, and what it must still answer for a write to go ahead


class AuditChain:
    """The audit trail and the one way to write state with its record (commit)."""

    def __init__(self, client: redis.Redis, replicas: Replicas | None = None) -> None:
        """`replicas`: behind Sentinel, each audited write reaches a replica before it returns (redis_url.Replicas)."""
        self.redis = client
        self.replicas = replicas
        self._append = client.register_script(_APPEND)
        # Every audited write appends to the one chain, hashed on the head this process last saw (None: not seen
        # yet); another process's record in between costs one more round trip. Threads of one process take turns,
        # so that they never hash on a head another of them has just replaced.
        self._head: str | None = None
        self._lock = threading.RLock()

    def record(self, event: AuditEvent) -> None:
        """An audit record with no change of state (a refused click, a refused request)."""
        self.commit(event)

    def commit(self, event: AuditEvent, guards: Sequence[Guard] = (), writes: Writes | None = None) -> bool:
        """`event`'s chained record, its count and whatever `writes` queues, in one script run (_APPEND), if every
        guard still holds; False (nothing written) if one does not. A record hashed on a head another process has
        replaced is hashed again on the new one."""
        with self.redis.pipeline() as pipe:
            pipe.multi()  # never executed: a recorder, in MULTI as RQ expects of a caller's pipeline
            if writes is not None:
                writes(pipe)
            count_event(pipe, event.event)  # with the record: one count per audit record
            plan, binary = _plan(guards, [args for args, _ in pipe.command_stack])
        with self._lock:
            while True:
                seen = self._head
                fields = audit.chain(event, audit.parse_head(seen))
                head = f"{fields['seq']}:{fields['hash']}"
                record = json.dumps([part for pair in fields.items() for part in pair], ensure_ascii=False)
                hashed_on = UNSEEN_HEAD if seen is None else seen
                answer = self._append([AUDIT_HEAD, AUDIT], [hashed_on, head, record, plan, *binary])
                if answer[0] == -1:
                    return False
                if answer[0] == 1:
                    self._head = head
                    break
                self._head = text(answer[1])  # another process's record came first: hashed again, on it
        if self.replicas is not None:
            self.replicas.wait()
        audit.emit(fields)
        return True

    def hint(self, head: bytes | str | None) -> None:
        """The head as read along with something else (Deliveries.first_command), for the next commit to hash on.
        A hint only, so never waited for: a thread of this process holding the chain is appending, and leaves the
        head it appended on (waiting for it queued every command behind the audited write in flight)."""
        if self._lock.acquire(blocking=False):
            try:  # the later of the two: another thread of this process may have written since
                if self._head is None or audit.parse_head(head)[0] > audit.parse_head(self._head)[0]:
                    self._head = text(head or b"")
            finally:
                self._lock.release()

    def entries(self, start: str = "-", end: str = "+") -> Iterator[tuple[str, dict[str, str]]]:
        """The trail in order, as (stream id, fields), read in pages."""
        cursor = start
        while True:
            page: Any = self.redis.xrange(AUDIT, cursor, end, count=1000)
            for entry_id, fields in page:
                yield text(entry_id), {text(k): text(v) for k, v in fields.items()}
            if len(page) < 1000:
                return
            cursor = "(" + text(page[-1][0])

    def head(self) -> tuple[int, str]:
        return audit.parse_head(self.redis.get(AUDIT_HEAD))


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
