"""Whether a Redis keeps what jitbot writes: a production one that could evict or forget a grant is refused."""

from __future__ import annotations

import redis

from jitbot.core.errors import ConfigError
from jitbot.store.codec import text


def check_durability(client: redis.Redis, allow_unsafe: bool) -> None:
    """Refuse a production Redis that could evict or forget a grant; the message says how to fix it."""
    memory, persistence = client.info("memory"), client.info("persistence")
    try:
        save = text(client.config_get("save").get("save", ""))
    except redis.ResponseError:  # managed services often disable CONFIG
        save = ""
    problems = durability_problems(str(memory.get("maxmemory_policy", "")), bool(persistence.get("aof_enabled")), save)
    if problems and not allow_unsafe:
        raise ConfigError(
            "REDIS_URL points at a Redis that can lose grants: " + "; ".join(problems) + ". Fix it with "
            "`CONFIG SET maxmemory-policy noeviction` and `CONFIG SET appendonly yes` (or your provider's "
            "parameter group), or set JITBOT_ALLOW_UNSAFE_REDIS=1 if it persists in a way jitbot cannot see."
        )


def durability_problems(maxmemory_policy: str, aof_enabled: bool, save: str) -> list[str]:
    problems = []
    if maxmemory_policy != "noeviction":
        problems.append(f"maxmemory-policy is {maxmemory_policy or 'unknown'}, so keys can be evicted")
    if not aof_enabled and not save.strip():
        problems.append("neither AOF nor RDB snapshots are on, so a restart forgets everything")
    return problems
