"""`/metrics`: what every process counted (jitbot.metrics) and the store's gauges, read from Redis per scrape."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from jitbot.core.clock import Clock
from jitbot.core.domain import Status
from jitbot.observability.metrics import COUNTER_FAMILIES, KNOWN_EVENTS, LAG_BUCKETS, OVERDUE_S
from jitbot.store import Store, keys
from jitbot.store.codec import decode, text

_MGET_PAGE = 500


class RedisCollector(Collector):
    """Everything every process counted, and the store's gauges, read from Redis at each scrape.

    Register it on a fresh `CollectorRegistry`, not the global one: this process's own metrics (memory,
    CPU) would be one process's among many behind a load balancer. A Redis failure propagates.
    """

    def __init__(self, store: Store, clock: Clock) -> None:
        self.client = store.redis  # read in one MULTI with the store's keys and codec: a scrape is one moment
        self.clock = clock

    def collect(self) -> Iterable[Metric]:
        cutoff = self.clock().timestamp() - OVERDUE_S
        with self.client.pipeline() as pipe:  # one MULTI: all figures of a scrape come from the same moment
            pipe.hgetall(keys.COUNTERS)
            pipe.hgetall(keys.REVOCATION_LAG)
            pipe.zcard(keys.PENDING)
            pipe.zcount(keys.EXPIRY, "-inf", cutoff)
            pipe.zrange(keys.EXPIRY, 0, -1)
            pipe.hgetall(keys.DRIFT)
            counters, lag, pending, overdue, tracked, drift = pipe.execute()
        yield from _counter_families(_decoded(counters))
        yield _gauge("jitbot_pending_requests", "Requests waiting for a decision.", pending)
        yield _gauge("jitbot_active_grants", "Grants in force now (issued and not yet ended).", self._active(tracked))
        yield _gauge(
            "jitbot_overdue_grants",
            f"Grants, or approved requests never issued, not ended {OVERDUE_S} s after their end.",
            overdue,
        )
        yield _lag_family(_decoded(lag))
        yield from _drift_families(_decoded(drift))

    def _active(self, tracked: list[bytes]) -> int:
        """The expiry index also holds approved requests not yet issued: count only those that are active."""
        found = [keys.request_key(text(request_id)) for request_id in tracked]
        pages = (self.client.mget(found[i : i + _MGET_PAGE]) for i in range(0, len(found), _MGET_PAGE))
        return sum(1 for page in pages for raw in page if raw is not None and decode(raw).status is Status.ACTIVE)


def _counter_families(fields: dict[str, str]) -> Iterator[CounterMetricFamily]:
    """The counters hash, field `<prefix>:<label>:<label…>`, as one family per prefix."""
    samples: dict[str, dict[tuple[str, ...], float]] = {prefix: {} for prefix in COUNTER_FAMILIES}
    samples["events"] = {(event,): 0.0 for event in KNOWN_EVENTS}
    for field, count in fields.items():
        prefix, _, rest = field.partition(":")
        if prefix in COUNTER_FAMILIES:
            labels = tuple(rest.split(":", len(COUNTER_FAMILIES[prefix][2]) - 1))
            samples[prefix][labels] = float(count)
    for prefix, (name, documentation, label_names) in COUNTER_FAMILIES.items():
        family = CounterMetricFamily(name, documentation, labels=label_names)
        for labels, value in sorted(samples[prefix].items()):
            if len(labels) == len(label_names):
                family.add_metric(labels, value)
        yield family


def _lag_family(fields: dict[str, str]) -> HistogramMetricFamily:
    family = HistogramMetricFamily(
        "jitbot_revocation_lag_seconds",
        "How long after its end a grant was cut and recorded as expired.",
        labels=(),
    )
    buckets = [(bucket, float(fields.get(bucket, 0))) for bucket in LAG_BUCKETS]
    family.add_metric((), buckets, float(fields.get("sum", 0)))
    return family


def _drift_families(fields: dict[str, str]) -> Iterator[GaugeMetricFamily]:
    """The last drift scan (jitbot.drift): access left in each cloud that no live grant explains, and when."""
    orphaned = GaugeMetricFamily(
        "jitbot_orphaned_access",
        "Access jitbot made that the last drift scan found in the cloud, no live grant explaining it, and could "
        "not remove.",
        labels=("provider",),
    )
    for field, count in sorted(fields.items()):
        if field.startswith("orphaned:"):
            orphaned.add_metric((field.removeprefix("orphaned:"),), float(count))
    yield orphaned
    yield _gauge(
        "jitbot_drift_scan_timestamp_seconds",
        "When the last drift scan of the clouds ended (0: none yet).",
        float(fields.get("scanned_at", 0)),
    )


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _decoded(raw: dict[Any, Any]) -> dict[str, str]:
    return {text(k): text(v) for k, v in raw.items()}
