"""This machine as the Stack and the benchmarks see it: a free port on 127.0.0.1, and the process sessions the Stack
starts its processes in (who is in one, signalling all of it, its CPU time), read from Linux's /proc."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import time
from pathlib import Path

PORTS_FROM = 20000  # servers the tests start take ports from here up to the ephemeral range
EPHEMERAL_DEFAULT = 32768


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on, for a server a test or the Stack is about to start: drawn below
    the kernel's ephemeral range, whose ports also go to outgoing connections (every Redis and HTTP client of a
    parallel test run), one of which took a port the kernel had just handed out as free before the server it was
    probed for could bind it."""
    while True:
        port = random.randrange(PORTS_FROM, max(_ephemeral_from(), PORTS_FROM + 1000))
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:  # taken: draw again
                continue
            return port


def _ephemeral_from() -> int:
    """The first port Linux hands to outgoing connections (net.ipv4.ip_local_port_range; its default elsewhere)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return EPHEMERAL_DEFAULT


def signal_session(session: int, sig: int) -> list[int]:
    """Send `sig` to every live process of a session, as a container's end would; the pids signalled."""
    pids = session_members(session)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(session, sig)  # the leader's process group, found without /proc too
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
    return pids


def kill_session(session: int, timeout: float = 10.0) -> None:
    """SIGKILL a session until nothing of it is left (or `timeout` runs out): forks too leave no orphan behind."""
    deadline = time.monotonic() + timeout
    while signal_session(session, signal.SIGKILL) and time.monotonic() < deadline:
        time.sleep(0.05)


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (state, ppid, pgrp, session, …); None if gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()


def cpu_seconds(session: int) -> float:
    """CPU time used so far by a session's live processes and the children they have reaped (Linux /proc)."""
    ticks = 0
    for pid in session_members(session):
        fields = _stat(pid)
        if fields:
            ticks += sum(int(field) for field in fields[11:15])  # utime, stime, cutime, cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def session_of(pid: int) -> int | None:
    fields = _stat(pid)
    return int(fields[3]) if fields else None


def alive(pid: int) -> bool:
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z"


def session_members(session: int) -> list[int]:
    """Live (not zombie) processes in a session: the leader, its children, and their orphans (Linux /proc)."""
    if not Path("/proc/self/stat").exists():  # no /proc (macOS): the leader's process group is all we can name
        try:
            os.killpg(session, 0)
        except (ProcessLookupError, PermissionError):
            return []
        return [session]
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields is not None and fields[0] != "Z" and int(fields[3]) == session:
                members.append(int(entry.name))
    return sorted(members)
