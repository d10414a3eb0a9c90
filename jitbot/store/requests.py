"""Requests and their indexes (pending, expiry, undecided, a person's open ones), timers and revocation leases.

A request's state, its index entries and its audit record are written together (AuditChain.commit), and only if
the request is still as the writer read it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import partial
from typing import Any

import redis

from jitbot.app.repository import Writes
from jitbot.core.domain import AccessRequest, Change, Moved, Status
from jitbot.core.errors import NotFound
from jitbot.core.events import AuditEvent
from jitbot.core.policy import ISSUE_REDRIVE
from jitbot.store.chain import AuditChain
from jitbot.store.codec import decode, encode, text
from jitbot.store.keys import EXPIRY, PENDING, TIMERS, UNDECIDED, mine_key, request_key

_CLAIM = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(ids) do redis.call('ZADD', KEYS[1], 'XX', ARGV[3], id) end
return ids
"""
# a lease moved on for grants still being ended: never added back (a grant ended meanwhile left the index), never
# moved earlier (a failed revocation's retry time stands)
_RENEW = """
for i = 2, #ARGV do
  local score = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if score and tonumber(score) < tonumber(ARGV[1]) then redis.call('ZADD', KEYS[1], 'XX', ARGV[1], ARGV[i]) end
end
return 0
"""


class Requests:
    """Access requests, each with its place in the indexes that schedule what happens to it next."""

    def __init__(self, client: redis.Redis, chain: AuditChain) -> None:
        self.redis = client
        self.chain = chain

    def create(
        self,
        request: AccessRequest,
        event: AuditEvent,
        pending_until: datetime,
        also: Writes | None = None,
    ) -> bool:
        """Write a new request, and whatever `also` queues on the pipeline it is given (a job to announce it),
        with its audit record, at once; False (and nothing written) if the id is taken."""

        def writes(pipe: Any) -> None:
            pipe.zadd(PENDING, {request.id: pending_until.timestamp()})
            pipe.zadd(mine_key(request.requester), {request.id: request.created_at.timestamp()})
            _write_request(pipe, request, new=True)
            if also is not None:
                also(pipe)

        return self.chain.commit(event, [(("EXISTS", request_key(request.id)), "0")], writes)

    def get(self, request_id: str) -> AccessRequest:
        raw = self.redis.get(request_key(request_id))
        if raw is None:
            raise NotFound(f"There is no request `{request_id[:20]}`.")
        return decode(raw)

    def transition(self, request_id: str, change: Change) -> Moved:
        """Apply `change` to the stored request atomically; read and applied again if another writer got there
        first."""
        key = request_key(request_id)
        while True:
            raw = self.redis.get(key)
            if raw is None:
                raise NotFound(f"There is no request `{request_id[:20]}`.")
            new, event = change(decode(raw))
            if self.chain.commit(event, [(("GET", key), raw)], partial(_write_request, request=new)):
                return new, event

    def many(self, request_ids: list[str]) -> list[AccessRequest]:
        """The requests that still exist, in the order asked (one round trip)."""
        if not request_ids:
            return []
        raws = self.redis.mget([request_key(i) for i in request_ids])
        return [decode(raw) for raw in raws if raw is not None]

    def open_requests_of(self, user: str) -> list[AccessRequest]:
        return self.many([text(i) for i in self.redis.zrange(mine_key(user), 0, -1)])

    def all_open(self, limit: int) -> list[AccessRequest]:
        """Pending requests and live grants of everyone, oldest first, at most `limit` of each."""
        pending = [text(i) for i in self.redis.zrange(PENDING, 0, limit - 1)]
        live = [text(i) for i in self.redis.zrange(EXPIRY, 0, limit - 1)]
        return self.many(pending + live)

    def undecided(self, limit: int) -> list[AccessRequest]:
        """What waits for approvers, oldest first: pending requests and extensions asked for."""
        return self.many([text(i) for i in self.redis.zrange(UNDECIDED, 0, limit - 1)])

    def claim_due(self, now: datetime, limit: int, lease: timedelta) -> list[str]:
        """Up to `limit` ids due in the expiry index, oldest first, each moved `lease` ahead (atomically) so that
        no one else takes it while it is being revoked; revoking removes it, failing puts it at its retry time."""
        ids = self.redis.eval(_CLAIM, 1, EXPIRY, now.timestamp(), limit, (now + lease).timestamp())
        return [text(i) for i in ids]

    def renew_leases(self, request_ids: list[str], until: datetime) -> None:
        """The claims on `request_ids` last until `until`: their revocations are still under way."""
        self.redis.eval(_RENEW, 1, EXPIRY, until.timestamp(), *request_ids)

    def retry_revocation_at(self, request_id: str, when: datetime) -> None:
        """Move the request's place in the expiry index: the reconciler comes back for it then."""
        self.redis.zadd(EXPIRY, {request_id: when.timestamp()}, xx=True)

    def clear_timer(self, kind: str, request_id: str) -> None:
        self.redis.zrem(TIMERS, f"{kind}:{request_id}")

    def set_timer(self, kind: str, request_id: str, when: datetime) -> None:
        self.redis.zadd(TIMERS, {f"{kind}:{request_id}": when.timestamp()}, xx=True)  # only one still set


def _write_request(pipe: Any, request: AccessRequest, new: bool = False) -> None:
    """The request and its index entries; a `new` one has no entry to take away."""
    pipe.set(request_key(request.id), encode(request))
    if request.status is not Status.PENDING:
        pipe.zrem(PENDING, request.id)
    if request.status is Status.ACTIVE and request.expires_at:
        pipe.zadd(EXPIRY, {request.id: request.expires_at.timestamp()})
    elif request.status is Status.APPROVED and request.decided_at:
        pipe.zadd(EXPIRY, {request.id: (request.decided_at + request.duration).timestamp()})
    elif request.status.is_final:
        pipe.zrem(EXPIRY, request.id)
        pipe.zrem(mine_key(request.requester), request.id)
    pending = request.status is Status.PENDING
    extending = request.status is Status.ACTIVE and request.extend_by is not None
    if pending or extending:
        pipe.zadd(UNDECIDED, {request.id: request.created_at.timestamp()})
    else:
        pipe.zrem(UNDECIDED, request.id)
    _write_timers(pipe, request, pending, extending, new)


def _write_timers(pipe: Any, request: AccessRequest, pending: bool, extending: bool, new: bool) -> None:
    """The request's timers: each set one at its time, each unset one taken away (a `new` request has none)."""
    issue_at = request.decided_at + ISSUE_REDRIVE if request.status is Status.APPROVED and request.decided_at else None
    timers = {
        "extension": request.extend_decide_by if extending else None,
        "auto": request.auto_approve_at if pending else None,
        "escalate": request.escalate_at if pending and not request.escalated else None,
        "remind": request.remind_at,
        "refresh": request.refresh_at,
        "issue": issue_at,
    }
    due = {f"{kind}:{request.id}": when.timestamp() for kind, when in timers.items() if when is not None}
    if due:
        pipe.zadd(TIMERS, due)
    if not new and len(due) < len(timers):
        pipe.zrem(TIMERS, *(f"{kind}:{request.id}" for kind, when in timers.items() if when is None))
