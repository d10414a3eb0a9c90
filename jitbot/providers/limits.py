"""The limits real clouds impose, for the cloud doubles: a latency per call with a long tail, a write rate per
shared policy. Off unless asked for: functional tests run without them, benchmarks with them. It lives with the
providers because the fake provider, which a catalog may name, applies them too; the stand-ins import it from here.

Latency is lognormal (most calls near the median, a few many times slower), drawn from a seeded generator so that
a run can be repeated. The write rate is a token bucket per key (a GCP project's policy, an AWS role, an Azure
principal and subscription): a write that finds its bucket empty is refused, with the seconds until a token is
back, and the double answers as its cloud does (GCP 429 RESOURCE_EXHAUSTED, ARM 429 with Retry-After).
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

# Measured shapes, not published figures: control-plane calls (getIamPolicy, PutRolePolicy, a PIM schedule
# request) answer in ~100-200 ms from a nearby region, with a tail of seconds. sigma 0.6 puts p99 at ~4x the median.
P50_S = 0.15
SIGMA = 0.6


@dataclass(frozen=True)
class Limits:
    """`p50_s` and `sigma`: the lognormal latency of every call. `writes_per_s` and `burst`: the token bucket of
    each shared policy (None: writes are never refused). `seed`: the latency draws, for a repeatable run."""

    p50_s: float = P50_S
    sigma: float = SIGMA
    writes_per_s: float | None = None
    burst: int = 1
    seed: int = 0


@dataclass
class _Bucket:
    tokens: float
    at: float


@dataclass
class Throttle:
    """Latency and per-key write rate as `limits` says; `writes` counts the writes let through, `refused` those
    refused (the 429s answered)."""

    limits: Limits
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    writes: int = 0
    refused: int = 0
    _random: random.Random = field(init=False)
    _buckets: dict[str, _Bucket] = field(default_factory=dict, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def __post_init__(self) -> None:
        self._random = random.Random(self.limits.seed)

    def wait(self) -> None:
        """One call's latency, slept by the calling thread (outside any lock: calls overlap as on the network)."""
        with self._lock:
            draw = self._random.lognormvariate(math.log(self.limits.p50_s), self.limits.sigma)
        self.sleep(draw)

    def take(self, key: str) -> float | None:
        """A write to `key`'s policy: None when it may go ahead, else the seconds until its bucket has a token."""
        rate = self.limits.writes_per_s
        now = self.clock()
        with self._lock:
            if rate is None:
                self.writes += 1
                return None
            bucket = self._refilled(key, rate, now)
            if bucket.tokens >= 1:
                bucket.tokens -= 1
                self.writes += 1
                return None
            self.refused += 1
            return (1 - bucket.tokens) / rate

    def remaining(self, key: str) -> int | None:
        """The whole tokens in `key`'s bucket now (None: writes are never refused), what a cloud that reports its
        rate limit tells the caller (ARM's x-ms-ratelimit-remaining-* headers)."""
        rate = self.limits.writes_per_s
        if rate is None:
            return None
        now = self.clock()
        with self._lock:
            return int(self._refilled(key, rate, now).tokens)

    def _refilled(self, key: str, rate: float, now: float) -> _Bucket:
        """`key`'s bucket, topped up for the time since it was last looked at (the caller holds the lock)."""
        bucket = self._buckets.setdefault(key, _Bucket(float(self.limits.burst), now))
        bucket.tokens = min(float(self.limits.burst), bucket.tokens + (now - bucket.at) * rate)
        bucket.at = now
        return bucket
