"""Slack's rate-limit token buckets (jitbot.slack.pacing keeps the budgets): shared by every worker, in Redis.

Each bucket is a hash {tokens, at} under SLACK_PACE and its name (`channel:<id>`, `method:<name>`); a call takes
from all of its buckets at once, in one Lua script, or from none.
"""

from __future__ import annotations

from collections.abc import Sequence

import redis

from jitbot.store.keys import SLACK_PACE

# KEYS: the buckets a call needs, each a hash {tokens, at}. ARGV: now (s), urgent (0/1), then per key its rate
# (tokens/s), burst and reserve. Either every bucket has a token (the reserve left untouched unless urgent) and one
# is taken from each, answering 0, or none is taken and the answer is the milliseconds until all would have one.
_TAKE = """
local now, urgent, wait = tonumber(ARGV[1]), ARGV[2] == '1', 0
local levels = {}
for i, key in ipairs(KEYS) do
  local rate, burst, reserve = tonumber(ARGV[i * 3]), tonumber(ARGV[i * 3 + 1]), tonumber(ARGV[i * 3 + 2])
  local saved = redis.call('hmget', key, 'tokens', 'at')
  local tokens = burst
  if saved[1] then tokens = math.min(burst, tonumber(saved[1]) + math.max(0, now - tonumber(saved[2])) * rate) end
  local need = urgent and 1 or 1 + reserve
  if tokens < need then wait = math.max(wait, (need - tokens) / rate) end
  levels[i] = tokens
end
if wait > 0 then return math.ceil(wait * 1000) end
for i, key in ipairs(KEYS) do
  local rate, burst = tonumber(ARGV[i * 3]), tonumber(ARGV[i * 3 + 1])
  redis.call('hset', key, 'tokens', tostring(levels[i] - 1), 'at', tostring(now))
  redis.call('pexpire', key, math.ceil(burst / rate * 1000) + 1000)
end
return 0
"""


class SlackPace:
    """The token buckets every process shares (jitbot.slack.state.TokenBuckets)."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    def take(self, buckets: Sequence[tuple[str, float, float, float]], now: float, urgent: bool) -> float:
        """One try at every bucket (name, tokens per second, burst, reserve) at `now` (epoch seconds): 0 if a token
        was taken from each, else the seconds until each would have one, nothing taken."""
        keys = [f"{SLACK_PACE}{name}" for name, *_ in buckets]
        shares = [str(value) for _, *values in buckets for value in values]
        waited_ms = self.redis.eval(_TAKE, len(keys), *keys, repr(now), "1" if urgent else "0", *shares)
        return int(waited_ms) / 1000
