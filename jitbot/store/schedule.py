"""What is due, read from the indexes that keep times as data (sorted sets scored by time): the reconciler's
questions, each one range query."""

from __future__ import annotations

from datetime import datetime

import redis

from jitbot.store.codec import text
from jitbot.store.keys import EXPIRY, PENDING, REVIEWS, TIMERS

LIMIT = 500  # at most this many of each per pass: the next pass takes the rest


def due(client: redis.Redis, index: str, now: datetime, limit: int = LIMIT) -> list[str]:
    """Members of `index` whose time has come, oldest first (one range query)."""
    return [text(i) for i in client.zrangebyscore(index, "-inf", now.timestamp(), start=0, num=limit)]


class Schedule:
    """The expiry index, the policies' timers, the pending requests' timeouts and the reviews' next alerts."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    def overdue(self, before: datetime) -> list[str]:
        """Grants (and approvals never issued) whose end came before `before`."""
        return due(self.redis, EXPIRY, before)

    def due_timers(self, now: datetime) -> list[tuple[str, str]]:
        """The policies' timers whose time has come, as (kind, request id)."""
        return [_timer(member) for member in due(self.redis, TIMERS, now)]

    def timed_out(self, now: datetime) -> list[str]:
        """Pending requests past their timeout."""
        return due(self.redis, PENDING, now)

    def due_reviews(self, now: datetime) -> list[str]:
        """Open break-glass reviews whose next alert is due."""
        return due(self.redis, REVIEWS, now)


def _timer(member: str) -> tuple[str, str]:
    kind, request_id = member.split(":", 1)  # as Requests.set_timer writes it: `kind:request id`
    return kind, request_id
