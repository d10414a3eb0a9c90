"""Drills through the real processes: requests typed by many people at once, grants planned to end together, and
the audit trail read back as what happened when.

"Revoked" means the request's audit trail shows `expired`. Lateness is the `expired` record's `at` minus the
`granted` record's `at` minus the duration; "recorded" lateness uses the moment the `expired` record was written to
Redis instead. Each test records its figures with `report` (JUnit properties, and printed with `-s`).
"""

from __future__ import annotations

import math
import time
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

from jitbot.jobs.tasks import waiting_jobs
from jitbot.store import Store
from jitbot.testing.stack import Stack
from tests.integration.helpers import REQUEST_ID, wait_until

RESOURCE = "fake-db"  # the fault drills' fake cloud
ON_TIME_S = 60.0  # the bound every scenario holds revocation to

Record = Callable[[str, object], None]


@dataclass(frozen=True)
class Event:
    at: datetime  # the record's own `at`
    written: float  # epoch seconds when Redis appended it (its stream id)


# --- acting ----------------------------------------------------------------------------------------------


def request_grants(
    stack: Stack,
    count: int,
    seconds: int,
    *,
    stagger: int = 1,
    first: int = 0,
    threads: int = 8,
    resource: str = RESOURCE,
) -> dict[str, int]:
    """`count` auto-approved requests, typed by as many people at once, the n-th for `seconds + n % stagger`
    seconds: {request id: seconds}."""

    def one(n: int) -> tuple[str, int]:
        asked = seconds + n % stagger
        reply = stack.sender.command(requester(first + n), f"request {resource} {asked}s fault drill {first + n}")
        assert reply.status == 200, reply.body
        found = REQUEST_ID.search(reply.json()["text"])
        assert found, reply.body
        return found.group(0), asked

    with ThreadPoolExecutor(threads) as pool:
        return dict(pool.map(one, range(count)))


def requester(i: int) -> str:
    return f"U0USER{i:04d}"


def granting_rate(stack: Stack, sample: int = 25) -> float:
    """Grants per second this stack sustains, to plan when the real ones end: a throwaway batch (10 min grants,
    so that their revocations don't load the test), timed until every job it caused has run."""
    started = time.monotonic()
    ids = request_grants(stack, sample, 600, first=9000)
    wait_for_event(stack, [*ids], "granted", 60, "(warming up)")
    wait_until(lambda: waiting_jobs(stack.redis()) == 0, 60, "the warm-up's jobs")
    return sample / (time.monotonic() - started)


def planned_end(count: int, rate: float) -> float:
    """When `count` grants asked for at the warm-up's `rate` can all end together: half as long again as the rate
    says, and 8 s more. Test files run side by side (pytest-xdist), so the rate a warm-up measured can drop."""
    return time.time() + count / rate * 1.5 + 8


def grants_ending_at(stack: Stack, count: int, end: float, batch: int = 25, least: int = 6) -> dict[str, int]:
    """`count` grants that all end a little after the epoch `end`: {request id: seconds asked}.

    Sent in batches, each asking for the seconds left until `end`. Issuing lags the asking (and a request not
    issued by its decision + duration fails), so a batch goes once the one before the last is granted.
    """
    durations: dict[str, int] = {}
    sent: list[list[str]] = []
    for first in range(0, count, batch):
        if len(sent) >= 2:
            wait_for_event(stack, sent[-2], "granted", 60)
        seconds = math.ceil(end - time.time())
        assert seconds >= least, f"granting is too slow: {first} of {count} sent, {seconds}s left before {end}"
        asked = request_grants(stack, min(batch, count - first), seconds, first=first)
        durations.update(asked)
        sent.append([*asked])
    wait_for_event(stack, [*durations], "granted", 60)
    return durations


_TRAILS: weakref.WeakKeyDictionary[Stack, tuple[str, dict[str, dict[str, Event]]]] = weakref.WeakKeyDictionary()


def trail(stack: Stack) -> dict[str, dict[str, Event]]:
    """Every request's audit events, by request id then event name (the first of each name).

    Read on from where the last call stopped: the test polls it, and must not eat the workers' CPU doing so.
    """
    cursor, events = _TRAILS.get(stack, ("-", {}))
    for entry_id, fields in Store(stack.redis()).chain.entries(start=cursor):
        written = int(entry_id.split("-")[0]) / 1000
        events.setdefault(fields["request_id"], {}).setdefault(
            fields["event"], Event(datetime.fromisoformat(fields["at"]), written)
        )
        cursor = "(" + entry_id
    _TRAILS[stack] = (cursor, events)
    return {request_id: dict(named) for request_id, named in events.items()}


def wait_for_event(
    stack: Stack, ids: list[str], event: str, timeout: float, what: str = ""
) -> dict[str, dict[str, Event]]:
    """Wait until every request in `ids` has `event`; the trail then. AssertionError names the missing."""
    deadline = time.monotonic() + timeout
    while True:
        seen = trail(stack)
        missing = [i for i in ids if event not in seen.get(i, {})]
        if not missing:
            return seen
        if time.monotonic() > deadline:
            sample = {i: sorted(seen.get(i, {})) for i in missing[:5]}
            raise AssertionError(
                f"{len(missing)} of {len(ids)} requests have no `{event}` after {timeout:.0f}s {what}; e.g. {sample}"
            )
        time.sleep(0.2)


@dataclass(frozen=True)
class Lateness:
    worst: float  # seconds past expiry, by the `expired` record's `at`
    worst_recorded: float  # seconds past expiry, by when the `expired` record was written
    count: int


def lateness(seen: dict[str, dict[str, Event]], durations: dict[str, int]) -> Lateness:
    late, recorded = [], []
    for request_id, seconds in durations.items():
        granted, expired = seen[request_id]["granted"], seen[request_id]["expired"]
        late.append((expired.at - granted.at).total_seconds() - seconds)
        recorded.append(expired.written - granted.at.timestamp() - seconds)
    return Lateness(round(max(late), 2), round(max(recorded), 2), len(late))


def expiries(seen: dict[str, dict[str, Event]], durations: dict[str, int]) -> list[float]:
    """Epoch seconds at which each grant falls due, earliest first."""
    return sorted(seen[i]["granted"].at.timestamp() + seconds for i, seconds in durations.items())


def sleep_until(epoch: float) -> None:
    time.sleep(max(0.0, epoch - time.time()))
