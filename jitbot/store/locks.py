"""Taking turns across processes: exclusive sections, the holders of cloud objects grants share, and the claims
that let one caller in a window act (the drift scan and its result, the audit record of unverified requests)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import redis

from jitbot.store.codec import ms, text
from jitbot.store.keys import (
    COUNTERS,
    DRIFT,
    DRIFT_DUE,
    UNVERIFIED_SINCE,
    lock_key,
    shared_key,
    unverified_window_key,
)

_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
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


class Locks:
    """Locks, shared holds and once-per-window claims, every one a key that outlives no holder for long."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    @contextmanager
    def lock(self, name: str, ttl: timedelta) -> Iterator[bool]:
        """A best-effort exclusive section across processes; yields False if someone else holds it."""
        key, token = lock_key(name), secrets.token_hex(8)
        got = bool(self.redis.set(key, token, nx=True, px=ms(ttl)))
        try:
            yield got
        finally:
            if got:  # only our own: a holder that outlived the ttl must not free the next holder's lock
                self.redis.eval(_RELEASE, 1, key, token)

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

    def shared(self, key: str) -> tuple[bool, set[str]] | None:
        """Who holds a cloud object jitbot shares between grants (an Identity Center assignment): whether jitbot
        created it, and the requests holding it; None when jitbot knows of no holder."""
        raw = {text(k): text(v) for k, v in self.redis.hgetall(shared_key(key)).items()}
        if not raw:
            return None
        return raw.get("created") == "1", {k.removeprefix("holder:") for k in raw if k.startswith("holder:")}

    def hold_shared(self, key: str, holder: str, created: bool | None) -> None:
        """`holder` holds the object; `created` says whether jitbot made it (None: as recorded before)."""
        with self.redis.pipeline() as pipe:
            if created is not None:
                pipe.hset(shared_key(key), "created", "1" if created else "0")
            pipe.hset(shared_key(key), f"holder:{holder}", "1")
            pipe.execute()

    def release_shared(self, key: str, holder: str) -> None:
        """`holder` no longer holds the object; the record goes with its last holder."""
        self.redis.hdel(shared_key(key), f"holder:{holder}")
        if not any(text(k).startswith("holder:") for k in self.redis.hkeys(shared_key(key))):
            self.redis.delete(shared_key(key))

    def note_unverified(self, reason: str, window: timedelta) -> int:
        """Count one request refused before it could be verified; how many to put in an audit record now (all of
        `reason` since its last record), or 0 while a record of it is younger than `window`."""
        keys = (COUNTERS, UNVERIFIED_SINCE, unverified_window_key(reason))
        return int(self.redis.eval(_UNVERIFIED, len(keys), *keys, reason, ms(window)))

    def claim_drift_scan(self, every: timedelta) -> bool:
        """True for one caller every `every`: the worker that gets it queues the drift scan."""
        return bool(self.redis.set(DRIFT_DUE, "1", nx=True, px=ms(every)))

    def save_drift(self, orphaned: dict[str, int], at: datetime, findings: str) -> str:
        """Record a scan's orphans left in the clouds, by provider; the previous scan's `findings` are returned."""
        fields: dict[Any, str | float] = {f"orphaned:{provider}": count for provider, count in orphaned.items()}
        with self.redis.pipeline() as pipe:
            pipe.hget(DRIFT, "findings")
            pipe.delete(DRIFT)
            pipe.hset(DRIFT, mapping=fields | {"scanned_at": at.timestamp(), "findings": findings})
            before, *_ = pipe.execute()
        return text(before or b"")
