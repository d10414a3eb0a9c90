"""What jitbot knows of its Slack messages: each request's message references, announcements held for a channel an
admin must fix, alerts of Slack misconfigurations, App Home viewers, and digests (requests announced together in one
approval message, jitbot.slack.announcer)."""

from __future__ import annotations

from datetime import timedelta

import redis

from jitbot.core.domain import AccessRequest, Status
from jitbot.store.codec import ms, text
from jitbot.store.keys import HOME_VIEWERS, UNDECIDED, blocked_key, digest_key, slack_alert_key, slack_key
from jitbot.store.requests import Requests


class SlackState:
    """Slack message state, kept beside the requests it is about (jitbot.store.requests)."""

    def __init__(self, client: redis.Redis, requests: Requests) -> None:
        self.redis = client
        self.requests = requests

    def slack_refs(self, request_id: str) -> dict[str, str]:
        raw = self.redis.hgetall(slack_key(request_id))
        return {text(k): text(v) for k, v in raw.items()}

    def set_slack_refs(self, request_id: str, **refs: str) -> None:
        self.redis.hset(slack_key(request_id), mapping=refs)  # type: ignore[arg-type]

    def drop_slack_refs(self, request_id: str, *names: str) -> None:
        self.redis.hdel(slack_key(request_id), *names)

    def block_announcement(self, request_id: str, channel: str) -> bool:
        """Note that the request's approval message cannot be posted in `channel` until an admin fixes Slack;
        True the first time (for this request)."""
        with self.redis.pipeline() as pipe:
            pipe.sadd(blocked_key(channel), request_id)
            pipe.hsetnx(slack_key(request_id), "blocked_in", channel)
            _, first = pipe.execute()
        return bool(first)

    def unblock_channel(self, channel: str) -> list[str]:
        """The requests waiting for `channel`, forgotten as waiting: the caller announces them now."""
        with self.redis.pipeline() as pipe:
            pipe.smembers(blocked_key(channel))
            pipe.delete(blocked_key(channel))
            members, _ = pipe.execute()
        waiting = sorted(text(m) for m in members)
        for request_id in waiting:
            self.drop_slack_refs(request_id, "blocked_in")
        return waiting

    def claim_slack_alert(self, channel: str, code: str, every: timedelta) -> bool:
        """One alert per Slack misconfiguration (channel and error) per `every`: True for the caller who sends it."""
        return bool(self.redis.set(slack_alert_key(channel, code), "1", nx=True, px=ms(every)))

    def home_viewers(self) -> set[str]:
        return {text(u) for u in self.redis.smembers(HOME_VIEWERS)}

    def add_home_viewer(self, user: str) -> None:
        self.redis.sadd(HOME_VIEWERS, user)

    def unannounced(self, resources: set[str], scan: int) -> list[AccessRequest]:
        """Pending requests of `resources` whose approval message is not posted yet (and not held for a channel an
        admin must fix), oldest first. Found among the `scan` newest undecided requests, the index every request
        joins when it is made: no write of its own on the way to the ack, and a request counts as waiting from the
        moment it exists, not only once a worker takes its job."""
        newest = [text(i) for i in self.redis.zrevrange(UNDECIDED, 0, scan - 1)]
        with self.redis.pipeline(transaction=False) as pipe:
            for request_id in newest:
                pipe.hmget(slack_key(request_id), "approval_ts", "blocked_in")
            marks = pipe.execute()
        waiting = self.requests.many([i for i, held in zip(newest, marks, strict=True) if held == [None, None]])
        found = [r for r in waiting if r.status is Status.PENDING and r.resource in resources]
        return sorted(found, key=lambda r: (r.created_at, r.id))

    def digest(self, channel: str, ts: str) -> dict[str, int]:
        """The requests the digest at (`channel`, `ts`) carries, each with the version of it the message shows."""
        return {text(k): int(v) for k, v in self.redis.hgetall(digest_key(channel, ts)).items()}

    def show_digest(self, channel: str, ts: str, shown: dict[str, int]) -> None:
        """The digest at (`channel`, `ts`) shows these requests at these versions, and is each one's approval message
        (its refs point at it): in one MULTI, so a request is either still waiting or recorded in its digest."""
        with self.redis.pipeline() as pipe:
            pipe.hset(digest_key(channel, ts), mapping=shown)  # type: ignore[arg-type]
            refs = {"approval_channel": channel, "approval_ts": ts, "digest": "1"}
            for request_id in shown:
                pipe.hset(slack_key(request_id), mapping=refs)  # type: ignore[arg-type]
            pipe.execute()
