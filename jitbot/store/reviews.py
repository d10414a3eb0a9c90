"""Break-glass reviews: open from the grant until someone other than its user closes them, re-alerted meanwhile."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import redis

from jitbot.core.events import AuditEvent
from jitbot.core.review import ReviewStatus
from jitbot.store.chain import AuditChain
from jitbot.store.codec import text
from jitbot.store.keys import REVIEWS, review_key


class Reviews:
    """Each review's state (a hash) and the schedule of open ones' next alerts; opening and closing are audited."""

    def __init__(self, client: redis.Redis, chain: AuditChain) -> None:
        self.redis = client
        self.chain = chain

    def open_review(self, event: AuditEvent, due: datetime) -> None:
        """A break-glass grant's mandatory review: open until someone other than the user acknowledges it."""

        def writes(pipe: Any) -> None:
            pipe.hset(review_key(event.request_id), mapping={"status": ReviewStatus.OPEN, "alerts": "0"})
            pipe.zadd(REVIEWS, {event.request_id: due.timestamp()})

        self.chain.commit(event, (), writes)

    def review(self, request_id: str) -> dict[str, str]:
        return {text(k): text(v) for k, v in self.redis.hgetall(review_key(request_id)).items()}

    def close_review(self, event: AuditEvent) -> bool:
        """Acknowledge or flag an open review (review.close_review's event); False (nothing written) if it was
        closed already: only an open review moves."""
        key = review_key(event.request_id)

        def writes(pipe: Any) -> None:
            pipe.hset(key, mapping={"status": event.status, "by": event.actor, "at": event.at.isoformat()})
            pipe.zrem(REVIEWS, event.request_id)

        return self.chain.commit(event, [(("HGET", key, "status"), ReviewStatus.OPEN)], writes)

    def next_review_alert(self, request_id: str, due: datetime) -> int:
        """Count one more alert of an open review and schedule the next; returns how many were sent."""
        with self.redis.pipeline() as pipe:
            pipe.hincrby(review_key(request_id), "alerts", 1)
            pipe.zadd(REVIEWS, {request_id: due.timestamp()}, xx=True)
            count, _ = pipe.execute()
        return int(count)
