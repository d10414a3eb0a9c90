"""The limits Slack puts on Web API calls, as the Slack stand-in enforces them: its rate limits (once a test or a
benchmark switches them on, `SlackStandIn.limits`) and Block Kit's block counts (always)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from jitbot.slack.pacing import METHOD_TIER, POST, POSTS_PER_SECOND, TIER_PER_MINUTE
from jitbot.testing.loopback import Answer
from jitbot.testing.slack_http import view_param
from jitbot.testing.slack_methods_chat import dm_channel

MESSAGE_METHODS = ("chat.postMessage", "chat.update", "chat.postEphemeral")
VIEW_METHODS = ("views.open", "views.publish", "views.update", "views.push")
MESSAGE_BLOCKS, VIEW_BLOCKS = 50, 100  # Block Kit's limits: see over_block_limit
# The calls Slack lets come at once beyond its rate: its docs say only "Short bursts >1 allowed" (posting), and
# "occasional bursts" (Tier 2), "Sporadic bursts are welcome" (Tier 3), "generous burst behavior" (Tier 4)
# (https://docs.slack.dev/apis/web-api/rate-limits), so these figures are the stand-in's own.
POST_BURST = 3
TIER_BURST = {2: 5, 3: 10, 4: 20}


class SlackLimits:
    """Slack's rate limits as the stand-in enforces them once switched on (`SlackStandIn.limits`): chat.postMessage
    about one message a second per channel, every tiered method its tier's calls a minute across the workspace
    (jitbot.slack.pacing has the facts and their sources), each a token bucket holding a short burst. A call over
    its limit is answered as Slack answers it: HTTP 429, `{"ok": false, "error": "ratelimited"}` and `Retry-After`,
    the whole seconds until the call would pass ("Responding to rate limiting conditions" on the same page)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # bucket → (tokens, when counted)

    def refuse(self, method: str, params: dict[str, Any]) -> Answer | None:
        """The 429 for a call over its limit, or None (and the call counted against it)."""
        limit = _limit_of(method, params)
        if limit is None:
            return None
        key, per_second, burst = limit
        now = self.clock()
        tokens, at = self._buckets.get(key, (burst, now))
        tokens = min(burst, tokens + (now - at) * per_second)
        if tokens >= 1:
            self._buckets[key] = (tokens - 1, now)
            return None
        self._buckets[key] = (tokens, now)
        retry_after = math.ceil((1 - tokens) / per_second)
        return 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(retry_after)}


def _limit_of(method: str, params: dict[str, Any]) -> tuple[str, float, float] | None:
    """The bucket a call counts against: (its key, tokens a second, burst); None for a method not limited here."""
    if method == POST:
        return f"channel:{dm_channel(str(params.get('channel', '')))}", POSTS_PER_SECOND, POST_BURST
    tier = METHOD_TIER.get(method)
    return None if tier is None else (f"method:{method}", TIER_PER_MINUTE[tier] / 60, TIER_BURST[tier])


def over_block_limit(method: str, params: dict[str, Any]) -> dict[str, Any] | None:
    """Slack's refusal of a message or a view with more blocks than Block Kit allows, None within the limit.

    Source: "You can include up to 50 blocks in each message, and 100 blocks in modals or Home tabs"
    (https://docs.slack.dev/reference/block-kit/blocks). A message over it answers `invalid_blocks` with
    `errors: ["no more than 50 items allowed [json-pointer:/blocks]"]` (chat.postMessage, quoted in
    ryanrosello-og/playwright-slack-report#180); a view answers `invalid_arguments` with
    `response_metadata.messages: ["[ERROR] no more than 100 items allowed [json-pointer:/view/blocks]"]`
    (views.* schema errors as in grafana/oncall#210 and slack-web's failed_view_publish.json)."""
    blocks = params.get("blocks") if method in MESSAGE_METHODS else None
    if isinstance(blocks, list) and len(blocks) > MESSAGE_BLOCKS:
        errors = [f"no more than {MESSAGE_BLOCKS} items allowed [json-pointer:/blocks]"]
        return {"ok": False, "error": "invalid_blocks", "errors": errors}
    view = view_param(params) if method in VIEW_METHODS else None
    if view is not None and len(view.get("blocks") or []) > VIEW_BLOCKS:
        messages = [f"[ERROR] no more than {VIEW_BLOCKS} items allowed [json-pointer:/view/blocks]"]
        return {"ok": False, "error": "invalid_arguments", "response_metadata": {"messages": messages}}
    return None
