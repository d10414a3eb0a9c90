"""The metrics every process writes to Redis (jitbot.metrics reads them as metric families): counters and the
revocation-lag histogram, bumped with HINCRBY so that every web and worker process adds up.

Audit events are counted in the chain's own audited write (count_event), so exactly once per audit record. Every
other write here is best effort: a metric must never break what it measures, so a Redis failure is logged and
dropped.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis

from jitbot.core.events import EventName
from jitbot.observability import logs
from jitbot.observability.metrics import LAG_BOUNDS
from jitbot.store.keys import COUNTERS, REVOCATION_LAG

_log = logs.get("jitbot.metrics")


def count_event(pipe: Any, event: EventName) -> None:
    """Queue +1 for `event` on the pipeline of an audited write: counted if and only if its record is written."""
    pipe.hincrby(COUNTERS, f"events:{event}", 1)


class MetricsSink:
    """The best-effort counters and histogram that code outside the store bumps."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    def count_provider_error(self, provider: str, retryable: bool) -> None:
        with _best_effort("provider_errors"):
            self.redis.hincrby(COUNTERS, f"provider_errors:{provider}:{'retryable' if retryable else 'fatal'}", 1)

    def count_slack_error(self, method: str, code: str) -> None:
        with _best_effort("slack_errors"):
            self.redis.hincrby(COUNTERS, f"slack_errors:{method}:{code}", 1)

    def observe_revocation_lag(self, seconds: float) -> None:
        """One observation: +1 in every bucket whose bound is ≥ the lag (Prometheus buckets are cumulative)."""
        seconds = max(seconds, 0.0)
        with _best_effort("revocation_lag"), self.redis.pipeline() as pipe:  # MULTI: a scrape never sees half of it
            for bound in LAG_BOUNDS:
                if seconds <= bound:
                    pipe.hincrby(REVOCATION_LAG, str(bound), 1)
            pipe.hincrby(REVOCATION_LAG, "+Inf", 1)
            pipe.hincrbyfloat(REVOCATION_LAG, "sum", seconds)
            pipe.execute()


@contextmanager
def _best_effort(metric: str) -> Iterator[None]:
    try:
        yield
    except redis.RedisError as error:
        _log.warning("metric_dropped", metric=metric, error=type(error).__name__)
