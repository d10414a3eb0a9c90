"""Redis, all of jitbot's: one object per concern, all on one client, composed by Store.

keys         every key jitbot writes, named once
codec        the request codec
chain        AuditChain: the audit trail, and the one write of state with its record (a Lua script)
requests     Requests: requests, their indexes, timers and revocation leases
schedule     Schedule: what is due in those indexes (the reconciler's questions)
reviews      Reviews: break-glass reviews
failures     RevocationFailures: failed revocations of a grant
slack_state  SlackState: Slack message references, held announcements, alerts, App Home viewers, digests
deliveries   Deliveries: Slack deliveries and their replies, the person and group caches
locks        Locks: exclusive sections, shared holds, once-per-window claims (drift scan, unverified requests)
counters     MetricsSink: the best-effort counters and histogram (jitbot.metrics reads them)
pacing       SlackPace: the token buckets that pace Slack calls, shared by every worker
durability   whether a Redis keeps what jitbot writes
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import redis

from jitbot.store.chain import AuditChain
from jitbot.store.counters import MetricsSink
from jitbot.store.deliveries import Deliveries
from jitbot.store.failures import RevocationFailures
from jitbot.store.locks import Locks
from jitbot.store.requests import Requests
from jitbot.store.reviews import Reviews
from jitbot.store.schedule import Schedule
from jitbot.store.slack_state import SlackState

if TYPE_CHECKING:
    from jitbot.store.redis_url import Replicas  # which imports the keys: typing only, so neither waits for the other


class Store:
    """The concerns, built on one client: callers name the one they use (`store.requests.get(…)`). The use cases
    see it as their jitbot.app.repository.Repository."""

    def __init__(self, client: redis.Redis, replicas: Replicas | None = None) -> None:
        """`replicas`: behind Sentinel, each audited write reaches a replica before it returns (redis_url.Replicas)."""
        self.redis = client
        self.chain = AuditChain(client, replicas)
        self.requests = Requests(client, self.chain)
        self.schedule = Schedule(client)
        self.reviews = Reviews(client, self.chain)
        self.failures = RevocationFailures(client)
        self.slack = SlackState(client, self.requests)
        self.deliveries = Deliveries(client, self.chain)
        self.locks = Locks(client)
        self.metrics = MetricsSink(client)

    def ping(self) -> bool:
        return bool(self.redis.ping())
