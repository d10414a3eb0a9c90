"""The audit chain under concurrent writers, on a real Redis: fakeredis runs one command at a time, so a race
for the chain's head is never lost there (and its Lua is not Redis's: the write's JSON plan is decoded by lua-cjson
here)."""

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis

from jitbot.core.domain import open_request
from jitbot.store import Store, audit, embedded
from jitbot.store.chain import UNSEEN_HEAD
from jitbot.store.codec import encode
from jitbot.store.keys import AUDIT, AUDIT_HEAD, request_key

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("redis") / ".jitbot"
    try:
        yield embedded.ensure_running(home)
    finally:
        embedded.stop(home)


@pytest.fixture
def client(server: str) -> Iterator[redis.Redis]:
    connected = redis.Redis.from_url(server)
    connected.flushdb()
    try:
        yield connected
    finally:
        connected.close()


@pytest.fixture
def lost_races(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """One entry per audited write hashed on a head another writer had replaced (and hashed again): not a Store's
    first write, which learns the head."""
    lost: list[int] = []
    real_call = redis.commands.core.Script.__call__

    def call(script: redis.commands.core.Script, keys: Any = None, args: Any = None, client: Any = None) -> Any:
        answer = real_call(script, keys, args, client)
        if keys == [AUDIT_HEAD, AUDIT] and args[0] != UNSEEN_HEAD and answer[0] == 0:
            lost.append(1)
        return answer

    monkeypatch.setattr(redis.commands.core.Script, "__call__", call)
    return lost


def create_many(stores: list[Store], count: int) -> None:
    def create(n: int) -> None:
        request, event = open_request(f"r-{n:06d}", "U0ALICE", "prod-db", timedelta(hours=1), "INC-1", NOW)
        assert stores[n % len(stores)].requests.create(request, event, pending_until=NOW + timedelta(hours=1))

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(create, range(count)))


def test_create_when_threads_of_one_process_write_at_once_then_no_race_lost_and_one_chain(
    client: redis.Redis, lost_races: list[int]
) -> None:
    """Every audited write is hashed on the chain's head. Threads of one process raced for it and lost nearly every
    race (8 threads: ~4 retries per request), so a busy web process spent most of its CPU retrying."""
    store = Store(client)
    create_many([store], 300)
    assert lost_races == []
    assert audit.verify(store.chain.entries(), store.chain.head()).ok and store.chain.head()[0] == 300


def test_create_when_two_processes_write_at_once_then_every_request_in_one_unbroken_chain(client: redis.Redis) -> None:
    """Two Stores stand for two processes: they still race for the head, and a loser hashes again; nothing is lost
    and the chain does not fork."""
    stores = [Store(client), Store(client)]
    create_many(stores, 300)
    assert audit.verify(stores[0].chain.entries(), stores[0].chain.head()).ok
    assert stores[0].chain.head()[0] == 300 and len(client.keys("jitbot:req:*")) == 300


@pytest.mark.parametrize(
    "reason", ['"quoted" \\ slashed', "tab\tline\n \x00 \x7f", "caf\u00e9 \u2028 \U0001f525", "\uffff \ud7ff"]
)
def test_create_when_reason_is_any_text_then_redis_stores_it_byte_for_byte(client: redis.Redis, reason: str) -> None:
    store = Store(client)
    request, event = open_request("r-abc234", "U0ALICE", "prod-db", timedelta(hours=1), reason, NOW)
    assert store.requests.create(request, event, pending_until=NOW + timedelta(hours=1))
    assert client.get(request_key(request.id)) == encode(request).encode()
    assert audit.verify(store.chain.entries(), store.chain.head()).ok
