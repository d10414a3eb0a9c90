"""The Redis store on fakeredis: round trips, atomic transitions with their indexes and audit, locks."""

import json
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import fakeredis
import pytest

from jitbot.core.domain import AccessRequest, Status, approve, confirm_end, deny, end_now, fail, grant, open_request
from jitbot.core.errors import InvalidTransition, NotFound, PolicyError
from jitbot.core.events import AuditEvent
from jitbot.store import Store, audit
from jitbot.store.codec import decode, encode
from jitbot.store.keys import AUDIT, EXPIRY, PENDING, request_key
from jitbot.store.schedule import due

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
AUDIT_FIELDS = {f.encode() for f in audit.CHAINED} | {b"hash"}


@pytest.fixture
def store() -> Store:
    return Store(fakeredis.FakeRedis())


def opened(request_id: str = "r-abc234") -> tuple[AccessRequest, AuditEvent]:
    return open_request(request_id, "U0ALICE", "prod-db", timedelta(hours=2), "INC-1", NOW)


def created(store: Store, request_id: str = "r-abc234") -> AccessRequest:
    request, event = opened(request_id)
    assert store.requests.create(request, event, pending_until=NOW + HOUR)
    return request


def score(store: Store, index: str, request_id: str) -> float | None:
    return store.redis.zscore(index, request_id)


def entries(store: Store) -> list[dict[bytes, bytes]]:
    return [fields for _, fields in store.redis.xrange(AUDIT)]


def test_store_create_then_get_round_trips_every_field(store: Store) -> None:
    request = replace(
        opened()[0],
        status=Status.ACTIVE,
        approvals=("U0BOB", "U0CAROL"),
        decided_by="U0CAROL",
        decided_at=NOW + timedelta(minutes=1),
        granted_at=NOW + timedelta(minutes=2),
        expires_at=NOW + timedelta(hours=2, minutes=2),
        grant={"session_name": "jit-r-abc234-U0ALICE", "assumed_role_id": "AROA:jit"},
        note="a note",
        version=3,
        duration=timedelta(hours=2, seconds=1),
        decide_by=NOW + HOUR,
        extend_by=timedelta(minutes=30),
        extend_decide_by=NOW + timedelta(hours=1, minutes=30),
    )
    assert store.requests.create(request, opened()[1], pending_until=NOW + HOUR)
    loaded = store.requests.get(request.id)
    assert loaded == request
    assert isinstance(loaded.status, Status) and isinstance(loaded.approvals, tuple)
    deadlines = (loaded.decide_by, loaded.extend_decide_by)
    for moment in (loaded.created_at, loaded.decided_at, loaded.granted_at, loaded.expires_at, *deadlines):
        assert moment is not None and moment.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "reason",
    [
        '"quoted" \\ back\\slashed',
        "tab\tnew\nline \x00 nul \x7f",
        "caf\u00e9 \u2028 \U0001f525 \u202e",
        "[1, 2] {} null",
    ],
)
def test_store_create_when_reason_is_any_text_then_stored_and_audited_byte_for_byte(store: Store, reason: str) -> None:
    """The write goes to Redis inside a JSON plan (the Lua script decodes it): what is stored is what was given."""
    request, event = open_request("r-abc234", "U0ALICE", "prod-db", HOUR, reason, NOW)
    assert store.requests.create(request, event, pending_until=NOW + HOUR)
    assert store.redis.get(request_key(request.id)) == encode(request).encode()
    assert json.loads(entries(store)[-1][b"detail"])["reason"] == reason
    assert audit.verify(store.chain.entries(), store.chain.head()).ok


def test_store_create_when_optional_fields_empty_then_round_trips_as_none(store: Store) -> None:
    request = created(store)
    loaded = store.requests.get(request.id)
    assert loaded == request
    assert (loaded.decided_at, loaded.granted_at, loaded.expires_at, loaded.note, loaded.grant) == (
        None,
        None,
        None,
        None,
        {},
    )


def test_store_create_then_only_fields_that_are_set_stored_and_older_full_records_still_read(store: Store) -> None:
    """Redis memory per grant is mostly its JSON: empty fields are left out (decode restores them). Records
    written before, with every field, must still read the same."""
    request = created(store)
    raw = store.redis.get(request_key(request.id))
    assert raw is not None
    stored = json.loads(raw)
    assert {"note", "decided_at", "approvals", "grant", "ending_by", "breakglass"}.isdisjoint(stored)
    assert {"id", "status", "requester", "resource", "duration", "reason", "created_at"} <= set(stored)
    full = {name: value.isoformat() if isinstance(value, datetime) else value for name, value in vars(request).items()}
    full |= {"duration": request.duration.total_seconds(), "approvals": [], "extend_approvals": []}
    assert decode(json.dumps(full, sort_keys=True)) == request


def test_store_create_then_pending_index_and_requested_audit_entry(store: Store) -> None:
    request = created(store)
    assert score(store, PENDING, request.id) == (NOW + HOUR).timestamp()
    assert score(store, EXPIRY, request.id) is None
    (entry,) = entries(store)
    assert set(entry) == AUDIT_FIELDS
    assert (entry[b"event"], entry[b"actor"], entry[b"status"]) == (b"requested", b"U0ALICE", b"pending")


def test_store_create_when_id_taken_then_false_and_nothing_written(store: Store) -> None:
    first = created(store)
    other, event = open_request(first.id, "U0MALLORY", "other", HOUR, "mine now", NOW + HOUR)
    assert store.requests.create(other, event, pending_until=NOW + 5 * HOUR) is False
    assert store.requests.get(first.id) == first
    assert score(store, PENDING, first.id) == (NOW + HOUR).timestamp()
    assert len(entries(store)) == 1


def test_store_get_when_unknown_then_not_found(store: Store) -> None:
    with pytest.raises(NotFound, match="r-nope23"):
        store.requests.get("r-nope23")


def test_store_transition_when_unknown_then_not_found(store: Store) -> None:
    with pytest.raises(NotFound):
        store.requests.transition("r-nope23", lambda r: approve(r, "U0BOB", 1, NOW))
    assert not store.redis.exists(request_key("r-nope23"))


def test_store_transition_when_endorsed_then_still_pending_indexed(store: Store) -> None:
    request = created(store)
    updated, event = store.requests.transition(request.id, lambda r: approve(r, "U0BOB", 2, NOW))
    assert (updated.status, event.event) == (Status.PENDING, "endorsed")
    assert score(store, PENDING, request.id) is not None and score(store, EXPIRY, request.id) is None


def test_store_transition_when_approved_then_expiry_at_decided_plus_duration(store: Store) -> None:
    request = created(store)
    decided = NOW + timedelta(minutes=10)
    updated, event = store.requests.transition(request.id, lambda r: approve(r, "U0BOB", 1, decided))
    assert store.requests.get(request.id) == updated and updated.status is Status.APPROVED
    assert score(store, EXPIRY, request.id) == (decided + timedelta(hours=2)).timestamp()
    assert score(store, PENDING, request.id) is None
    assert (event.event, event.actor) == ("approved", "U0BOB")


def test_store_transition_when_active_then_expiry_at_expires_at(store: Store) -> None:
    request = created(store)
    store.requests.transition(request.id, lambda r: approve(r, "U0BOB", 1, NOW))
    granted_at = NOW + timedelta(minutes=3)
    active, _ = store.requests.transition(request.id, lambda r: grant(r, {"session": "s"}, granted_at))
    assert active.expires_at == granted_at + timedelta(hours=2)
    assert score(store, EXPIRY, request.id) == active.expires_at.timestamp()
    assert store.requests.get(request.id).grant == {"session": "s"}


@pytest.mark.parametrize(
    "finish",
    [
        lambda r: confirm_end(r, "gone", NOW),
        lambda r: confirm_end(end_now(r, "U0ADMIN", NOW)[0], "gone", NOW),
        lambda r: fail(r, "boom", NOW),
    ],
)
def test_store_transition_when_final_then_removed_from_both_indexes(store: Store, finish) -> None:
    request = created(store)
    store.requests.transition(request.id, lambda r: approve(r, "U0BOB", 1, NOW))
    store.requests.transition(request.id, lambda r: grant(r, {}, NOW))
    ended, _ = store.requests.transition(request.id, finish)
    assert ended.status.is_final
    assert score(store, EXPIRY, request.id) is None and score(store, PENDING, request.id) is None


def test_store_transition_when_denied_from_pending_then_out_of_pending(store: Store) -> None:
    request = created(store)
    store.requests.transition(request.id, lambda r: deny(r, "U0BOB", NOW, None))
    assert score(store, PENDING, request.id) is None and score(store, EXPIRY, request.id) is None


def test_store_transition_then_one_audit_entry_per_event_with_only_audit_fields(store: Store) -> None:
    request = created(store)
    store.requests.transition(request.id, lambda r: approve(r, "U0BOB", 1, NOW))
    store.requests.transition(request.id, lambda r: grant(r, {"session_name": "secret-ish-handle"}, NOW))
    store.requests.transition(request.id, lambda r: confirm_end(r, "gone", NOW))
    log = entries(store)
    assert [e[b"event"] for e in log] == [b"requested", b"approved", b"granted", b"expired"]
    assert all(set(e) == AUDIT_FIELDS for e in log)
    assert all(e[b"request_id"] == request.id.encode() for e in log)
    assert b"secret-ish-handle" not in log[2][b"detail"]


@pytest.mark.parametrize("error", [PolicyError("no"), InvalidTransition("no"), RuntimeError("bug")])
def test_store_transition_when_change_raises_then_nothing_changes(store: Store, error: Exception) -> None:
    request = created(store)
    before = {key: store.redis.dump(key) for key in store.redis.keys("*")}

    def change(current: AccessRequest) -> tuple[AccessRequest, AuditEvent]:
        raise error

    with pytest.raises(type(error)):
        store.requests.transition(request.id, change)
    assert {key: store.redis.dump(key) for key in store.redis.keys("*")} == before
    assert store.requests.get(request.id) == request


def test_store_transition_when_two_approvers_race_then_one_approved_one_invalid(store: Store) -> None:
    """Two processes (a Store each: threads of one process take turns at the chain) act on the same request."""
    request = created(store)
    stores = {"U0BOB": store, "U0CAROL": Store(store.redis)}
    both_read = threading.Barrier(2, timeout=5)
    outcomes: dict[str, object] = {}
    reads: dict[str, list[Status]] = {}

    def click(approver: str) -> None:
        seen = reads.setdefault(approver, [])

        def change(current: AccessRequest) -> tuple[AccessRequest, AuditEvent]:
            seen.append(current.status)
            if len(seen) == 1:
                both_read.wait()  # both have read PENDING before either writes
            return approve(current, approver, 1, NOW)

        try:
            outcomes[approver] = stores[approver].requests.transition(request.id, change)[0].status
        except InvalidTransition as error:
            outcomes[approver] = error

    threads = [threading.Thread(target=click, args=(who,)) for who in ("U0BOB", "U0CAROL")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    results = sorted(outcomes.values(), key=lambda o: isinstance(o, InvalidTransition))
    assert results[0] is Status.APPROVED and isinstance(results[1], InvalidTransition)
    final = store.requests.get(request.id)
    assert final.status is Status.APPROVED and len(final.approvals) == 1 and final.version == 1
    assert [e[b"event"] for e in entries(store)] == [b"requested", b"approved"]
    assert sorted(reads.values(), key=len) == [[Status.PENDING], [Status.PENDING, Status.APPROVED]]  # loser retried


def test_store_record_then_audit_entry_without_state_change(store: Store) -> None:
    request = created(store)
    store.chain.record(AuditEvent("refused", request.id, "U0EVE", "prod-db", NOW, "pending", {"attempted": "approve"}))
    assert store.requests.get(request.id) == request
    refused = entries(store)[-1]
    assert (refused[b"event"], refused[b"actor"], set(refused)) == (b"refused", b"U0EVE", AUDIT_FIELDS)


def test_store_write_when_another_process_moved_the_head_then_hashed_again_and_the_chain_holds(store: Store) -> None:
    rival = Store(store.redis)  # another process
    created(store)
    created(rival, "r-def567")
    created(store, "r-ghj789")  # hashed on the head before the rival's record: told the new one, hashed again
    assert [e[b"seq"] for e in entries(store)] == [b"1", b"2", b"3"]
    assert audit.verify(store.chain.entries(), store.chain.head()).ok


def test_first_command_then_claimed_once_with_the_cached_person_and_the_head_for_the_write_after(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    rival = Store(store.redis)
    created(store)
    created(rival, "r-def567")
    store.deliveries.cache_person("U0ALICE", {"standing": "member"})
    tries: list[object] = []
    real = store.chain._append

    def counted(keys: list[str], args: list[object]) -> object:
        tries.append(real(keys, args))
        return tries[-1]

    monkeypatch.setattr(store.chain, "_append", counted)
    assert store.deliveries.first_command("1.2.trigger", "U0ALICE") == (True, {"standing": "member"})
    assert store.deliveries.first_command("1.2.trigger", "U0BOB") == (False, None)
    created(store, "r-ghj789")
    assert tries == [[1]]  # hashed on the head read with the claim: right the first time
    assert audit.verify(store.chain.entries(), store.chain.head()).ok


def test_store_due_then_only_ids_at_or_before_now_oldest_first(store: Store) -> None:
    for request_id, minutes in (("r-late23", 30), ("r-now234", 0), ("r-early2", -30)):
        request, event = opened(request_id)
        store.requests.create(request, event, pending_until=NOW + timedelta(minutes=minutes))
    assert due(store.redis, PENDING, NOW) == ["r-early2", "r-now234"]
    assert due(store.redis, PENDING, NOW - timedelta(hours=1)) == []
    assert due(store.redis, PENDING, NOW + HOUR, limit=1) == ["r-early2"]
    assert due(store.redis, EXPIRY, NOW + HOUR) == []


def test_store_slack_refs_then_merged_and_read_back_as_text(store: Store) -> None:
    store.slack.set_slack_refs("r-abc234", approval_channel="C0APPROVALS", approval_ts="1.000001")
    store.slack.set_slack_refs("r-abc234", scrubbed="1")
    assert store.slack.slack_refs("r-abc234") == {
        "approval_channel": "C0APPROVALS",
        "approval_ts": "1.000001",
        "scrubbed": "1",
    }
    assert store.slack.slack_refs("r-other2") == {}


def test_store_lock_when_held_then_second_holder_refused_until_released(store: Store) -> None:
    with store.locks.lock("issue:r-abc234", timedelta(minutes=5)) as mine:
        assert mine is True
        with store.locks.lock("issue:r-abc234", timedelta(minutes=5)) as theirs:
            assert theirs is False
        assert store.redis.exists("jitbot:lock:issue:r-abc234")  # the refused one did not release it
        with store.locks.lock("issue:r-other2", timedelta(minutes=5)) as other:
            assert other is True
    with store.locks.lock("issue:r-abc234", timedelta(minutes=5)) as again:
        assert again is True


def test_store_lock_when_body_raises_then_released_and_ttl_set(store: Store) -> None:
    with pytest.raises(RuntimeError), store.locks.lock("announce:r-abc234", timedelta(seconds=30)) as mine:
        assert mine and 0 < store.redis.pttl("jitbot:lock:announce:r-abc234") <= 30_000
        raise RuntimeError("crash")
    assert not store.redis.exists("jitbot:lock:announce:r-abc234")


def test_durability_problems_when_evicting_or_forgetful_then_named_each() -> None:
    from jitbot.store.durability import durability_problems

    assert durability_problems("noeviction", True, "") == []
    assert durability_problems("noeviction", False, "3600 1") == []
    assert durability_problems("allkeys-lru", True, "")[0].startswith("maxmemory-policy is allkeys-lru")
    assert "neither AOF nor RDB" in durability_problems("noeviction", False, "")[0]


def test_note_unverified_when_flooded_then_every_one_counted_and_one_record_a_window_with_the_count_since(
    store: Store,
) -> None:
    window = timedelta(minutes=1)
    assert store.locks.note_unverified("forged", window) == 1  # the first of its reason: audit it
    assert [store.locks.note_unverified("forged", window) for _ in range(4)] == [0, 0, 0, 0]
    assert store.locks.note_unverified("unsigned", window) == 1  # each reason has its own window
    store.redis.delete("jitbot:unverified:window:forged")  # the minute is over
    assert store.locks.note_unverified("forged", window) == 5  # the four held back, and this one
    counters = store.redis.hgetall("jitbot:metrics:counters")
    assert (counters[b"unverified:forged"], counters[b"unverified:unsigned"]) == (b"6", b"1")
    assert 0 < store.redis.pttl("jitbot:unverified:window:forged") <= 60_000
    assert store.locks.note_unverified("forged", window) == 0
    keys = sorted(key.decode() for key in store.redis.keys("jitbot:unverified:*"))  # O(1), whatever the flood:
    assert keys == ["jitbot:unverified:since", "jitbot:unverified:window:forged", "jitbot:unverified:window:unsigned"]


def test_renew_leases_when_claims_are_under_way_then_moved_on_never_added_back_nor_made_earlier(store: Store) -> None:
    now = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    store.redis.zadd(EXPIRY, {"r-leased": (now + timedelta(seconds=10)).timestamp()})
    store.redis.zadd(EXPIRY, {"r-retry": (now + timedelta(minutes=5)).timestamp()})  # its revocation failed: retry then
    store.requests.renew_leases(["r-leased", "r-retry", "r-ended"], now + timedelta(seconds=20))
    assert store.redis.zscore(EXPIRY, "r-leased") == (now + timedelta(seconds=20)).timestamp()
    assert store.redis.zscore(EXPIRY, "r-retry") == (now + timedelta(minutes=5)).timestamp()
    assert store.redis.zscore(EXPIRY, "r-ended") is None  # ended and recorded meanwhile: left out
