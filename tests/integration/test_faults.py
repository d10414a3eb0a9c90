"""Faults a platform really has: the sweeper killed mid-revocation, the scheduler's holder dying, Redis
restarting, Slack rate-limiting and failing. Real processes, a real Redis; each test starts its own stack.

"Revoked" means the request's audit trail shows `expired`. Lateness is the `expired` record's `at` minus the
`granted` record's `at` minus the duration (when the revocation began); "recorded" lateness uses the moment the
`expired` record was written to Redis instead (when the cloud had cut the access and jitbot had recorded it).
Each test records its figures with `record_property` (see the JUnit XML or `-rA`) and prints them (`-s`).
"""

from __future__ import annotations

import json
import math
import signal
import time
import weakref
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from rq.exceptions import SchedulerNotFound
from rq.registry import ScheduledJobRegistry, StartedJobRegistry
from rq.scheduler import RQScheduler

from jitbot import audit
from jitbot.store import EXPIRY, Store
from jitbot.tasks import QUEUE, SERIALIZER, make_queue
from jitbot.testing.slack_standin import Call
from jitbot.testing.stack import PROCESSES, Stack
from tests.integration.helpers import REQUEST_ID, wait_until

pytestmark = pytest.mark.timeout(300)

RESOURCE = "fake-db"
ON_TIME_S = 60.0  # the bound every scenario holds revocation to
CATALOG = """
approver_channel: C0APPROVALS
alert_channel: C0SECURITY
admins: [U0ADMIN]
defaults:
  min_duration: 1s
  max_duration: 1h
resources:
  fake-db:
    description: A fake cloud for fault injection
    provider: fake
    auto_approve: true
"""

Record = Callable[[str, object], None]


@dataclass(frozen=True)
class Event:
    at: datetime  # the record's own `at`
    written: float  # epoch seconds when Redis appended it (its stream id)


def catalog(**settings: str) -> str:
    return CATALOG + "".join(f"    {key}: {value}\n" for key, value in settings.items())


@pytest.fixture
def report(record_property: Record) -> Iterator[Callable[[str, object], None]]:
    """Record a figure in the JUnit properties and print it; the test's wall time is added at the end."""
    started = time.monotonic()

    def note(name: str, value: object) -> None:
        record_property(name, value)
        print(f"[faults] {name} = {value}")

    yield note
    note("test_seconds", round(time.monotonic() - started, 1))


# --- acting ----------------------------------------------------------------------------------------------


def request_grants(
    stack: Stack, count: int, seconds: int, *, stagger: int = 1, first: int = 0, threads: int = 8
) -> dict[str, int]:
    """`count` auto-approved requests, typed by as many people at once, the n-th for `seconds + n % stagger`
    seconds: {request id: seconds}."""

    def one(n: int) -> tuple[str, int]:
        asked = seconds + n % stagger
        reply = stack.sender.command(requester(first + n), f"request {RESOURCE} {asked}s fault drill {first + n}")
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
    queue = make_queue(stack.redis())
    registry = StartedJobRegistry(QUEUE, connection=queue.connection, serializer=SERIALIZER)
    wait_until(lambda: queue.count == 0 and registry.count == 0, 60, "the warm-up's jobs")
    return sample / (time.monotonic() - started)


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
    for entry_id, fields in Store(stack.redis()).audit_entries(start=cursor):
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


def scheduler_holder(stack: Stack) -> str | None:
    """The stack process whose RQ scheduler holds the queue's scheduler lock (its value names the scheduler)."""
    connection = stack.redis()
    owner = connection.get(RQScheduler.get_locking_key(QUEUE))
    if not isinstance(owner, bytes):
        return None
    try:
        return stack.process_of(RQScheduler.fetch(owner.decode(), connection).pid)
    except SchedulerNotFound:  # its holder died and its record expired; the lock outlives it (61 s)
        return None


def claimed(stack: Stack, request_id: str, due: float) -> bool:
    """The sweeper has taken the grant: its place in the expiry index moved a lease past its end."""
    score = stack.redis().zscore(EXPIRY, request_id)
    return score is not None and score > due + 1


def tail(stack: Stack, name: str, lines: int = 25) -> str:
    return "\n".join(stack.logs(name).splitlines()[-lines:])


# --- 1. the sweeper killed in the middle of a revocation ---------------------------------------------------


def test_revocation_when_sweeper_sigkilled_mid_revoke_then_still_revoked_within_60s(
    tmp_path: Path, report: Record
) -> None:
    with Stack(tmp_path / "stack", catalog(delay="3s"), workers=2, supervise=True) as stack:
        durations = request_grants(stack, 1, 4)
        [request_id] = durations
        seen = wait_for_event(stack, [request_id], "granted", 30)
        [due] = expiries(seen, durations)
        wait_until(lambda: claimed(stack, request_id, due), 30, "the sweeper to take it")
        time.sleep(1.0)  # the sweeper is now inside the fake cloud's 3 s revoke call
        assert "expired" not in trail(stack).get(request_id, {}), "the revocation finished before the kill"
        pids = stack.kill("sweeper", signal.SIGKILL)
        stack.start_process("sweeper")  # as a platform restarts a dead process
        report("killed", f"the sweeper (pids {pids}) {time.time() - due:.1f}s after expiry, inside the revoke")
        try:
            seen = wait_for_event(stack, [request_id], "expired", due + ON_TIME_S + 5 - time.time(), "after the kill")
        except AssertionError as error:
            report("worst_lateness_s", f"> {time.time() - due:.1f} (not revoked)")
            raise AssertionError(f"{error}\nsweeper log:\n{tail(stack, 'sweeper')}") from None
        late = lateness(seen, durations)
        report("worst_lateness_s", late.worst)
        report("worst_recorded_lateness_s", late.worst_recorded)
        assert late.worst < ON_TIME_S and late.worst_recorded < ON_TIME_S


# --- 2. the scheduler lock's holder dies just before 100 revocations fall due -------------------------------


def test_revocations_when_scheduler_holder_killed_before_due_then_100_revoked_within_60s(
    tmp_path: Path, report: Record
) -> None:
    count = 100
    with Stack(tmp_path / "stack", catalog(), workers=2) as stack:
        rate = granting_rate(stack)
        report("warm_up_rate_per_s", round(rate, 1))
        end = time.time() + count / rate * 1.1 + 6
        durations = grants_ending_at(stack, count, end)
        report("granted_with_s_to_spare", round(end - time.time(), 1))
        seen = trail(stack)
        due = expiries(seen, durations)
        report("grants", f"{count} at {rate:.1f}/s, due from +{due[0] - end:.1f}s to +{due[-1] - end:.1f}s of plan")
        holder = wait_until(lambda: scheduler_holder(stack), 30, "the scheduler lock's holder")
        assert time.time() < due[0] - 1, f"granting too slow: the first is due in {due[0] - time.time():.1f}s"
        sleep_until(due[0] - 5)
        stack.kill(holder, signal.SIGKILL)
        report("killed", f"{holder}, the scheduler lock's holder, {due[0] - time.time():.1f}s before the first due")
        survivor = next(n for n in stack.workers if n != holder)
        seen = wait_for_event(stack, [*durations], "expired", due[-1] + ON_TIME_S + 5 - time.time(), f"({survivor})")
        late = lateness(seen, durations)
        report("revoked", late.count)
        report("worst_lateness_s", late.worst)
        report("worst_recorded_lateness_s", late.worst_recorded)
        lock = stack.redis().ttl(RQScheduler.get_locking_key(QUEUE))
        report("scheduler_lock_now", f"{scheduler_holder(stack) or 'the dead scheduler'}, {lock}s left to live")
        assert late.worst < ON_TIME_S and late.worst_recorded < ON_TIME_S


# --- 3. Redis restarts with 500 grants waiting for revocation ---------------------------------------------


def test_revocations_when_redis_restarted_with_500_waiting_then_none_lost(tmp_path: Path, report: Record) -> None:
    count = 500
    with Stack(tmp_path / "stack", catalog(), workers=2, supervise=True) as stack:
        rate = granting_rate(stack)
        report("warm_up_rate_per_s", round(rate, 1))
        end = time.time() + count / rate * 1.1 + 6
        durations = grants_ending_at(stack, count, end)
        report("granted_with_s_to_spare", round(end - time.time(), 1))
        ids = [*durations]
        seen = trail(stack)
        due = expiries(seen, durations)
        report("grants", f"{count} at {rate:.1f}/s, due from +{due[0] - end:.1f}s to +{due[-1] - end:.1f}s of plan")
        assert time.time() < due[0] - 1, f"granting too slow: the first is due in {due[0] - time.time():.1f}s"
        sleep_until(due[0] - 4)  # they fall due just after Redis is back
        down = stack.restart_redis(down_for=2.0)
        report("redis_down_s", round(down, 2))
        report("redis_back_before_first_due_s", round(due[0] - time.time(), 1))
        seen = wait_for_event(stack, ids, "expired", due[-1] + ON_TIME_S + 5 - time.time(), "after the restart")
        late = lateness(seen, durations)
        report("revoked", late.count)
        report("worst_lateness_s", late.worst)
        report("worst_recorded_lateness_s", late.worst_recorded)
        report("process_restarts", [(r.name, r.returncode) for r in stack.restarts])
        store = Store(stack.redis())
        verdict = audit.verify(store.audit_entries(), store.audit_head())
        assert verdict.ok, verdict.problem
        lost = [i for i in ids if [*seen[i]] != ["requested", "approved", "granted", "expired"]]
        assert not lost, {i: [*seen[i]] for i in lost[:5]}
        assert {store.get(i).status.value for i in ids} == {"expired"}
        assert not any(stack.redis().zmscore(EXPIRY, ids)), "expired grants left in the expiry index"
        assert late.worst < ON_TIME_S and late.worst_recorded < ON_TIME_S


def logged_while(stack: Stack, name: str, start: datetime, end: datetime) -> list[str]:
    """The JSON log lines process `name` stamped between `start` and `end`."""
    stamped = (line for line in stack.logs(name).splitlines() if line.startswith("{"))
    return [line for line in stamped if start <= datetime.fromisoformat(json.loads(line)["timestamp"]) < end]


def test_processes_when_redis_away_for_a_while_then_bounded_logs_no_exit_and_grants_ended_after(
    tmp_path: Path, report: Record
) -> None:
    down_for = 12.0
    with Stack(tmp_path / "stack", catalog(), supervise=True) as stack:
        durations = grants_ending_at(stack, 10, time.time() + 8)  # due while Redis is away
        went = datetime.now(UTC)
        down = stack.restart_redis(down_for=down_for)
        start, end = went + timedelta(seconds=1), went + timedelta(seconds=down_for)  # Redis gone for all of it
        away = {name: logged_while(stack, name, start, end) for name in PROCESSES}
        per_minute = {name: round(sum(map(len, lines)) / (down_for - 1) * 60) for name, lines in away.items()}
        report("redis_down_s", round(down, 1))
        report("log_bytes_per_minute_while_down", per_minute)
        seen = wait_for_event(stack, [*durations], "expired", ON_TIME_S, "after Redis came back")
        late = lateness(seen, durations)
        report("worst_lateness_s", late.worst)
        assert stack.restarts == [], "a process exited while Redis was away"
        assert not any('"exception"' in line for lines in away.values() for line in lines), away
        # jitbot's: a line a try, backing off 1, 2, 4, 8 s…; RQ's pubsub thread retries every 2 s on its own
        lines = {name: len(logged) for name, logged in away.items()}
        assert lines["sweeper"] <= 4 and lines["worker"] <= down_for / 2 + 4 and lines["web"] == 0, lines
        assert "redis_back" in stack.logs("sweeper") and late.worst < ON_TIME_S


# --- 5. Slack answering 429 and 500 for a while ------------------------------------------------------------


def jobs_settled(stack: Stack) -> bool:
    """Nothing queued, running or waiting to be retried: any duplicate message would have been sent by now."""
    connection = stack.redis()
    queue = make_queue(connection)
    started = StartedJobRegistry(QUEUE, connection=connection, serializer=SERIALIZER)
    scheduled = ScheduledJobRegistry(QUEUE, connection=connection, serializer=SERIALIZER)
    return queue.count == 0 and started.count == 0 and scheduled.count == 0


def delivered(calls: list[Call], request_id: str, user: str) -> dict[str, int]:
    """How many of each message Slack accepted (HTTP 200) for one request."""
    counts = {"approval": 0, "credentials": 0, "outcome": 0, "scrub": 0}
    for call in calls:
        text = str(call.params.get("text", ""))
        if call.answered != 200 or request_id not in text:
            continue
        if call.method == "chat.postMessage" and call.params.get("channel") == "C0APPROVALS":
            counts["approval"] += 1
        elif call.method == "chat.postMessage" and call.params.get("channel") == user:
            counts["credentials" if f"granted (`{request_id}`)" in text else "outcome"] += 1
        elif call.method == "chat.update" and "credentials were removed" in text:
            counts["scrub"] += 1
    return counts


def test_slack_when_429_then_500_for_a_while_then_every_message_once_and_revocations_on_time(
    tmp_path: Path, report: Record
) -> None:
    count, during, phase_s = 30, 4, 8.0
    methods = ("chat.postMessage", "chat.update")
    with Stack(tmp_path / "stack", catalog(), workers=2) as stack:
        durations = request_grants(stack, count, 12, stagger=10)  # falling due one after another in the outage
        ids = [*durations]
        users = {request_id: requester(i) for i, request_id in enumerate(ids)}
        seen = wait_for_event(stack, ids, "granted", 60)
        due = expiries(seen, durations)
        wait_until(lambda: all(delivered(stack.slack.calls, i, users[i])["approval"] for i in ids), 30, "approvals")
        outage_from = due[0] - 2
        sleep_until(outage_from)
        for method in methods:  # the stand-in keeps one failure per method: a large count, ended by time below
            stack.slack.fail(method, status=429, times=100_000, retry_after=1)
        more = [*request_grants(stack, during, 12, first=count)]  # asked for while Slack rate-limits
        sleep_until(outage_from + phase_s)
        for method in methods:
            stack.slack.fail(method, status=500, times=100_000)
        more += request_grants(stack, during, 12, first=count + during)  # and while it fails outright
        users.update({request_id: requester(count + i) for i, request_id in enumerate(more)})
        sleep_until(outage_from + 2 * phase_s)
        for method in methods:
            stack.slack.fail(method, status=500, times=1)  # replaces the long failure: one more, then healthy
        outage_to = time.time()
        calls = stack.slack.calls
        report("outage_s", round(outage_to - outage_from, 1))
        report("slack_calls_refused", sum(1 for c in calls if c.method in methods and c.answered != 200))
        report("grants_due_in_outage", sum(1 for d in due if outage_from <= d <= outage_to))

        seen = wait_for_event(stack, ids, "expired", due[-1] + ON_TIME_S + 5 - time.time(), "during the outage")
        late = lateness(seen, durations)
        report("worst_lateness_s", late.worst)
        report("worst_recorded_lateness_s", late.worst_recorded)
        assert late.worst < ON_TIME_S and late.worst_recorded < ON_TIME_S

        everyone = [*ids, *more]
        wait_until(
            lambda: all(delivered(stack.slack.calls, i, users[i])["outcome"] for i in everyone),
            150,
            "an outcome DM for every request after the outage",
        )
        report("settled_after_outage_s", round(time.time() - outage_to, 1))
        wait_until(lambda: jobs_settled(stack), 120, "every Slack job done or given up")  # retries would repeat
        final = trail(stack)
        report("outcomes_of_requests_made_in_outage", sorted({e for i in more for e in final[i]} - {"requested"}))
        problems = {}
        for request_id in everyone:
            got = delivered(stack.slack.calls, request_id, users[request_id])
            lived = "expired" in final[request_id]  # granted and delivered (else failed: the DM could not go)
            expected = {"approval": 1, "credentials": 1 if lived else 0, "outcome": 1}
            if {k: got[k] for k in expected} != expected or (lived and got["scrub"] < 1):
                problems[request_id] = {"delivered": got, "dms": dms(stack.slack.calls, request_id, users[request_id])}
        report("requests_with_wrong_deliveries", len(problems))
        assert not problems, json.dumps(problems, indent=1)


def dms(calls: list[Call], request_id: str, user: str) -> list[str]:
    """The DMs Slack accepted for one request: when (relative to the first) and their first words."""
    mine = [c for c in calls if c.answered == 200 and c.params.get("channel") == user and request_id in str(c.params)]
    return [f"+{c.at - mine[0].at:.3f}s {c.method} {str(c.params.get('text'))[:70]}" for c in mine]
