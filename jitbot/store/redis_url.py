"""REDIS_URL → a client: `redis://`, `rediss://` (TLS), `unix://`, and `redis+sentinel://` (high availability).

`redis+sentinel://[[user]:password@]host[:port][,host[:port]…]/<master name>[/db][?sentinel_password=…]` asks the
sentinels where the master is (redis-py's `Sentinel`) and asks again whenever a connection drops or the old master
answers READONLY after a failover, so every process follows a promotion without a restart. The password is the
master's (and its replicas'); sentinels that require one of their own take it from `sentinel_password`.

`rediss://` verifies the server's certificate against the system's CAs, or against the file REDIS_TLS_CA names
(redis-py's `ssl_ca_certs`; query options such as `?ssl_cert_reqs=required` work as redis-py reads them).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import redis
from redis.sentinel import Sentinel

from jitbot.core.errors import ConfigError
from jitbot.observability import logs
from jitbot.store.keys import REPLICATED

SENTINEL_SCHEME = "redis+sentinel"
SCHEMES = ("redis", "rediss", "unix", SENTINEL_SCHEME)
SENTINEL_PORT = 26379
# Every connection: a dead peer is noticed in seconds, and a pooled connection idle for 30 s is checked first.
OPTIONS: dict[str, Any] = {"health_check_interval": 30, "socket_timeout": 30, "socket_connect_timeout": 5}
SENTINEL_TIMEOUT_S = 2  # a sentinel that does not answer in 2 s is skipped for the next one
REPLICA_WAIT_MS = 500  # how long a write jitbot acts on waits for a replica's acknowledgement
REPLICA_LAGGING_S = 10.0  # after a WAIT that timed out, writes go on without waiting this long (then try again)
_log = logs.get("jitbot.redis")


@dataclass(frozen=True)
class Connected:
    client: redis.Redis
    replicas: int  # how many replicas a write jitbot acts on waits for (Store's WAIT): 1 behind Sentinel, else 0


class Replicas:
    """Behind Sentinel, a write jitbot acts on (an audited change: a request acknowledged, a decision, a grant, an
    end; the job that issues or ends access) reaches a replica before jitbot goes on: a failover right after it
    loses none of them. Replication is asynchronous, so a master killed in the instant after a write could
    otherwise take the write with it (a SIGKILLed master lost an issue job queued just before: its request stayed
    approved and was never granted).

    WAIT counts the writes of its own connection, and the write's connection is back in the pool by now: a write
    on WAIT's connection, after ours, carries ours with it (replication is one ordered stream). A replica that does
    not answer in REPLICA_WAIT_MS costs that once, then writes go on without waiting for REPLICA_LAGGING_S: the
    master has them, and refusing every write while a replica is away would stop revocations too.
    `min-replicas-to-write` is the setting for an operator who prefers that.
    """

    def __init__(self, client: redis.Redis, wanted: int) -> None:
        self.client = client
        self.wanted = wanted  # 0: nothing to wait for (one Redis, or a managed one that replicates on its own)
        self._lagging_until = 0.0

    def wait(self) -> None:
        if not self.wanted or time.monotonic() < self._lagging_until:
            return
        with self.client.pipeline(transaction=False) as pipe:
            pipe.incr(REPLICATED)
            pipe.wait(self.wanted, REPLICA_WAIT_MS)
            acked = int(pipe.execute()[1])
        if acked < self.wanted:
            self._lagging_until = time.monotonic() + REPLICA_LAGGING_S
            _log.warning(
                "redis_write_not_replicated", replicas=acked, wanted=self.wanted, unchecked_s=REPLICA_LAGGING_S
            )


@dataclass(frozen=True)
class SentinelURL:
    sentinels: list[tuple[str, int]]
    master: str
    db: int
    username: str | None
    password: str | None
    sentinel_password: str | None


def open_redis(url: str, tls_ca: str | None = None) -> Connected:
    """A client for REDIS_URL (no connection is made yet); ConfigError naming what is wrong with the URL."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme not in SCHEMES:
        raise ConfigError(
            f"REDIS_URL must start with one of {', '.join(s + '://' for s in SCHEMES)}, not '{scheme or url[:20]}'"
        )
    if scheme == SENTINEL_SCHEME:
        found = parse_sentinel(url)
        sentinel = Sentinel(
            found.sentinels,
            sentinel_kwargs={"socket_timeout": SENTINEL_TIMEOUT_S, "password": found.sentinel_password},
            socket_connect_timeout=SENTINEL_TIMEOUT_S,
        )
        client = sentinel.master_for(
            found.master, db=found.db, username=found.username, password=found.password, **OPTIONS
        )
        return Connected(client, replicas=1)
    tls = {"ssl_ca_certs": tls_ca} if tls_ca and scheme == "rediss" else {}
    try:
        return Connected(redis.Redis.from_url(url, **OPTIONS, **tls), replicas=0)
    except ValueError as error:  # redis-py's word for a malformed URL
        raise ConfigError(f"REDIS_URL is not a Redis URL redis-py can read: {error}") from None


def parse_sentinel(url: str) -> SentinelURL:
    """The parts of a `redis+sentinel://` URL; ConfigError naming the part that is wrong."""
    parts = urlsplit(url)
    userinfo, _, hosts = parts.netloc.rpartition("@")
    username, _, password = userinfo.partition(":")
    path = [p for p in parts.path.split("/") if p]
    if not hosts or not path or len(path) > 2:
        raise ConfigError(
            "REDIS_URL with redis+sentinel:// reads redis+sentinel://[:password@]host:port[,host:port…]/<master name>"
            f"[/db]; '{_masked(url)}' has {'no sentinel' if not hosts else 'no master name' if not path else 'more'}"
        )
    if len(path) == 2 and not path[1].isdigit():
        raise ConfigError(f"REDIS_URL: the database after the master name must be a number, not '{path[1]}'")
    sentinel_password = parse_qs(parts.query).get("sentinel_password", [None])[-1]
    return SentinelURL(
        sentinels=[_host_port(h) for h in hosts.split(",")],
        master=unquote(path[0]),
        db=int(path[1]) if len(path) == 2 else 0,
        username=unquote(username) or None,
        password=unquote(password) or None,
        sentinel_password=sentinel_password,
    )


def _host_port(text: str) -> tuple[str, int]:
    host, colon, port = text.rpartition(":") if not text.endswith("]") else (text, "", "")
    if not colon:
        host, port = text, str(SENTINEL_PORT)
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"REDIS_URL: '{text}' is not a sentinel's host:port")
    return host.strip("[]"), int(port)


def _masked(url: str) -> str:
    """The URL without its password, fit for an error message."""
    head, at, tail = url.rpartition("@")
    return f"{head.split('://', 1)[0]}://***@{tail}" if at else url
