"""Slack deliveries seen (a repeat gets the first one's reply) and what Slack said of people and user groups, kept
a short while so that a command asks Slack once."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import Any

import redis

from jitbot.store.chain import AuditChain
from jitbot.store.codec import ms, text
from jitbot.store.keys import AUDIT_HEAD, delivery_key, group_key, person_key

PERSON_TTL = timedelta(minutes=10)  # what users.info said of someone (standing, email): a guest made so stays out
GROUP_TTL = timedelta(seconds=60)  # a requester group's members: approval and auto-approval ask Slack afresh
DELIVERY_TTL = timedelta(minutes=10)  # longer than the 5 minutes a signed Slack request can be replayed
# a command's delivery claimed (first_delivery), what Slack said of its sender (cached_person), the chain's head
_FIRST_COMMAND = """
local first = redis.call('SET', KEYS[1], '', 'NX', 'PX', ARGV[1])
return {first and 1 or 0, redis.call('GET', KEYS[2]), redis.call('GET', KEYS[3])}
"""


class Deliveries:
    """Deliveries by Slack's id, with their replies, and the person and group caches."""

    def __init__(self, client: redis.Redis, chain: AuditChain) -> None:
        self.redis = client
        self.chain = chain
        self._first_command = client.register_script(_FIRST_COMMAND)

    def first_delivery(self, delivery: str) -> bool:
        """True the first time Slack's delivery id (trigger_id) is seen within the replay window."""
        return bool(self.redis.set(delivery_key(delivery), "", nx=True, px=ms(DELIVERY_TTL)))

    def first_command(self, delivery: str, user: str) -> tuple[bool, dict[str, str] | None]:
        """first_delivery of a command, and cached_person of the person who sent it, in one round trip: nearly
        every command needs both, first. The chain's head comes with them: the command's audited write is hashed
        on it, and one hashed on a head another process has replaced costs a round trip more (AuditChain.commit)."""
        keys = (delivery_key(delivery), person_key(user), AUDIT_HEAD)
        first, facts, head = self._first_command(keys, [ms(DELIVERY_TTL)])
        self.chain.hint(head)
        return bool(first), _facts(facts)

    def forget_delivery(self, delivery: str) -> None:
        self.redis.delete(delivery_key(delivery))

    def save_delivery_reply(self, delivery: str, reply: str, pipe: Any = None) -> None:
        """The answer to the first delivery; on `pipe`, with whatever else it writes (a request and its reply)."""
        (self.redis if pipe is None else pipe).set(delivery_key(delivery), reply, xx=True, px=ms(DELIVERY_TTL))

    def delivery_reply(self, delivery: str, wait: timedelta) -> str | None:
        """The answer given to the first delivery, waiting up to `wait` while it is being worked out."""
        deadline = time.monotonic() + wait.total_seconds()
        while True:
            raw = self.redis.get(delivery_key(delivery))
            if raw or time.monotonic() > deadline:
                return text(raw) if raw else None
            time.sleep(0.05)

    def cached_person(self, user: str) -> dict[str, str] | None:
        """What Slack said about `user` (standing, email) within the last PERSON_TTL, if anything."""
        return _facts(self.redis.get(person_key(user)))

    def cache_person(self, user: str, facts: dict[str, str]) -> None:
        self.redis.set(person_key(user), json.dumps(facts, separators=(",", ":")), px=ms(PERSON_TTL))

    def cached_members(self, group: str) -> frozenset[str] | None:
        """A user group's members as Slack listed them within the last GROUP_TTL, if it did."""
        raw = self.redis.get(group_key(group))
        return frozenset(json.loads(raw)) if raw is not None else None

    def cache_members(self, group: str, members: frozenset[str]) -> None:
        self.redis.set(group_key(group), json.dumps(sorted(members), separators=(",", ":")), px=ms(GROUP_TTL))


def _facts(raw: bytes | str | None) -> dict[str, str] | None:
    return dict(json.loads(raw)) if raw else None
