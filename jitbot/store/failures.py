"""Failed revocations of one grant: how many in a row, the last error, and whether the alert was raised."""

from __future__ import annotations

from datetime import datetime, timedelta

import redis

from jitbot.store.codec import text
from jitbot.store.keys import failures_key


class RevocationFailures:
    """One hash per grant whose revocation failed, kept until a day after it was revoked at last."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    def note_revocation_failure(self, request_id: str, error: str, now: datetime) -> int:
        """Count one more failed attempt to revoke (and keep the error); returns how many in a row."""
        key = failures_key(request_id)
        with self.redis.pipeline() as pipe:
            pipe.hincrby(key, "count", 1)
            pipe.hset(key, "last_error", error[:500])
            pipe.hsetnx(key, "first_failed_at", now.isoformat())
            count, *_ = pipe.execute()
        return int(count)

    def revocation_failures(self, request_id: str) -> dict[str, str]:
        return {text(k): text(v) for k, v in self.redis.hgetall(failures_key(request_id)).items()}

    def claim_revocation_alert(self, request_id: str) -> bool:
        """True once per failing revocation: the one caller that should raise the alert."""
        return bool(self.redis.hsetnx(failures_key(request_id), "alerted", "1"))

    def close_revocation_failures(self, request_id: str) -> None:
        """Revoked at last: the record of failures stays a day, for the alert's resolution message."""
        self.redis.expire(failures_key(request_id), int(timedelta(days=1).total_seconds()))
