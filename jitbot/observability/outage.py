"""Living through Redis going away: one log line per try, capped exponential backoff, one line when it is back.

Every long-running process (worker, sweeper) goes through the same steps, so that an outage reads the same in
each log and none of them busy-loops or exits on a traceback; a supervisor that prefers restarts sets
JITBOT_REDIS_GIVE_UP_S and the process exits (GaveUp) once Redis has been away that long.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from jitbot.core.errors import GaveUp

FIRST_S = 1.0
CAP_S = 30.0  # at most two lines a minute per process, however long the outage


def describe(error: BaseException) -> str:
    """The error's kind and the first line of what it says (redis-py's run to several)."""
    said = str(error).strip().splitlines()
    return f"{type(error).__name__}: {said[0][:200]}" if said else type(error).__name__


class Outage:
    """One dependency's outage as a process sees it; `failed` says how long to wait before trying again."""

    def __init__(self, log: Any, give_up_after: float | None = None, clock: Callable[[], float] = time.monotonic):
        self.log = log
        self.give_up_after = give_up_after
        self.clock = clock
        self.since: float | None = None
        self.tries = 0

    def failed(self, what: str) -> float:
        """Another failed try: log it and return the wait before the next; GaveUp once away too long."""
        now = self.clock()
        self.since = now if self.since is None else self.since
        down = now - self.since
        if self.give_up_after is not None and down >= self.give_up_after:
            raise GaveUp(f"Redis has been unreachable for {down:.0f} s ({what}); JITBOT_REDIS_GIVE_UP_S says stop")
        wait = min(FIRST_S * 2.0**self.tries, CAP_S)
        self.tries += 1
        self.log.warning("redis_unreachable", error=what, down_s=round(down, 1), retry_in_s=wait)
        return wait

    def recovered(self) -> None:
        """A try worked: one line if there was an outage, and the backoff starts again from the first wait."""
        if self.since is not None:
            self.log.info("redis_back", down_s=round(self.clock() - self.since, 1), tries=self.tries)
        self.since, self.tries = None, 0
