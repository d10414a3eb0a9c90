"""Slack's rate limits, kept by jitbot instead of learnt from 429s: token buckets that every worker shares (in Redis:
jitbot.store.pacing, through jitbot.slack.state.TokenBuckets).

Slack's published limits are the facts at the top; the Slack stand-in enforces the same facts (its own burst
allowance on top), and jitbot's budgets stay below them: MARGIN of each rate, and a smaller burst.

Priority: an urgent call (a credential DM, a secret scrub, a revocation notice) may spend a bucket's last tokens;
any other call (an approval message, an edit, an App Home) leaves `reserve` of them for the urgent ones, so that a
backlog of edits never spends what a scrub needs. The queues order the jobs (jitbot.jobs.tasks.URGENT_QUEUE); the
reserve orders the calls of jobs already running. Only the worker paces: the web process calls Slack while a
person waits on the ack, and fails fast instead (jitbot.slack.notify.web_client).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from jitbot.slack.state import TokenBuckets

# Web API tiers, calls per minute "per API method per workspace per app": Tier 2 "20+ per minute", Tier 3 "50+
# per minute", Tier 4 "100+ per minute" (https://docs.slack.dev/apis/web-api/rate-limits, "Overview").
TIER_PER_MINUTE = {2: 20, 3: 50, 4: 100}
# Each method's tier, as the "Rate limits" fact of its reference page says
# (https://docs.slack.dev/reference/methods/<method>; checked against the JSON copies of those pages in
# slack-ruby/slack-api-ref and against Slack's Java SDK, slack-api-client MethodsRateLimits.java); the methods
# jitbot calls that are not listed (auth.test, Special tier; apps.connections.open; the files.* upload steps, Tier 4)
# are called rarely and are not paced.
METHOD_TIER = {
    "chat.update": 3,
    "chat.postEphemeral": 4,
    "conversations.open": 3,
    "conversations.info": 3,
    "users.info": 4,
    "usergroups.list": 2,
    "usergroups.users.list": 2,
    "views.open": 4,
    "views.publish": 4,
}
# chat.postMessage is in the Special tier: it "generally allows posting one message per second per channel, while
# also maintaining a workspace-wide limit" (same page); "Short bursts >1 allowed" ("Posting messages"). Its method
# page puts the workspace-wide limit at "several hundred messages per minute", far above what one approver channel
# and DMs need, so none is modelled.
POSTS_PER_SECOND = 1.0
POST = "chat.postMessage"

MARGIN = 0.9  # jitbot's share of each rate: clocks and the network never let two calls land exactly as sent
PATIENCE_S = 5.0  # a call waits this long for its turn at most (then its job is retried); an urgent one longer
URGENT_PATIENCE_S = 10.0


@dataclass(frozen=True)
class Budget:
    """jitbot's share of one Slack limit: tokens per second, how many may be saved up, and how many of those only
    an urgent call may spend."""

    per_second: float
    burst: float
    reserve: float


CHANNEL_BUDGET = Budget(POSTS_PER_SECOND * MARGIN, burst=2, reserve=1)


def tier_budget(tier: int) -> Budget:
    per_minute = TIER_PER_MINUTE[tier]
    burst = per_minute / 10
    return Budget(per_minute / 60 * MARGIN, burst=burst, reserve=burst / 4)


def buckets(method: str, channel: str) -> list[tuple[str, Budget]]:
    """The buckets a call spends from, by name: a post, its channel's; any tiered method, its own."""
    found = [(f"channel:{channel}", CHANNEL_BUDGET)] if method == POST and channel else []
    tier = METHOD_TIER.get(method)
    return found + ([(f"method:{method}", tier_budget(tier))] if tier else [])


class Pacer:
    """Makes a worker's Slack calls wait for their turn, in buckets every process shares."""

    def __init__(
        self,
        shared: TokenBuckets,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.shared = shared
        self.clock = clock  # epoch seconds: every worker, on any machine, reads the same buckets
        self.sleep = sleep

    def wait_turn(self, method: str, channel: str, urgent: bool) -> float:
        """Wait until the call may be made, then spend its tokens and answer 0; or, if its turn is further off than
        its patience, spend nothing and answer the seconds still to wait (the caller gives up and is retried)."""
        needed = buckets(method, channel)
        patience = URGENT_PATIENCE_S if urgent else PATIENCE_S
        waited = 0.0
        while needed and (wait := self.take(needed, urgent)) > 0:
            if waited + wait > patience:
                return wait
            self.sleep(wait)
            waited += wait
        return 0.0

    def take(self, needed: list[tuple[str, Budget]], urgent: bool) -> float:
        """One try: 0 if a token was taken from every bucket, else the seconds until there would be one in each."""
        shares = [(name, b.per_second, b.burst, b.reserve) for name, b in needed]
        return self.shared.take(shares, self.clock(), urgent)
