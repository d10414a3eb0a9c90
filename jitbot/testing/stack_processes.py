"""The platform a Stack plays for its processes: it starts the Procfile's commands, stops, kills and restarts each
with everything it forked (its session, as a container's), and with `supervise=True` starts again any that exits on
its own."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

from jitbot.testing.host import kill_session, session_members, session_of, signal_session

PROCESSES = {"web": "jitbot web", "worker": "jitbot worker", "sweeper": "jitbot sweeper"}  # = the Procfile (tested)


@dataclass(frozen=True)
class Restart:
    """A process that exited on its own and was started again by the supervisor, as a platform would."""

    name: str
    returncode: int
    at: float  # time.monotonic() when the supervisor noticed


class ProcessControl:
    """Mixed into Stack, whose `__init__` sets the state declared here."""

    home: Path
    commands: dict[str, str]
    processes: dict[str, subprocess.Popen[bytes]]
    restarts: list[Restart]
    _logs: dict[str, IO[bytes]]
    _guard: threading.RLock  # the supervisor thread and the test both start and stop processes
    _stopping: threading.Event
    if TYPE_CHECKING:  # Stack's: the environment the processes run in

        @property
        def env(self) -> dict[str, str]: ...

    @property
    def workers(self) -> list[str]:
        """The names of the worker processes (`worker`, or `worker-1`, `worker-2`, …)."""
        return [name for name, command in self.commands.items() if command == PROCESSES["worker"]]

    def start_process(self, name: str) -> None:
        with self._guard:
            log = self._logs.get(name) or open(self.home / f"{name}.log", "ab")  # noqa: SIM115 - closed on stop
            self._logs[name] = log
            self.processes[name] = subprocess.Popen(
                ["/bin/sh", "-c", "exec " + self.commands.get(name, PROCESSES.get(name, name))],
                cwd=self.home,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def stop_process(self, name: str, sig: int = signal.SIGTERM) -> None:
        with self._guard:
            process = self.processes.pop(name)
            if process.poll() is None:
                os.killpg(process.pid, sig)
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
            kill_session(process.pid)  # whatever it forked and left behind (RQ's scheduler, say)
            self._logs.pop(name).close()

    def kill(self, name: str, sig: int = signal.SIGKILL) -> list[int]:
        """Signal the process and everything it started (its session: RQ's scheduler, say).

        With SIGKILL this is a container or VM dying: the process is reaped and forgotten (not restarted by
        the supervisor; `restart` or `start_process` brings it back). Returns the pids signalled.
        """
        with self._guard:
            process = self.processes[name]
            pids = signal_session(process.pid, sig)
            if sig == signal.SIGKILL:
                process.wait(timeout=15)
                kill_session(process.pid)
                del self.processes[name]
                self._logs.pop(name).close()
            return pids

    def restart(self, name: str) -> None:
        """Stop the process if it runs (SIGTERM, as a platform's restart does), then start it again."""
        with self._guard:
            if name in self.processes:
                self.stop_process(name)
            self.start_process(name)

    def pids(self, name: str) -> list[int]:
        """The live pids of a process and of everything it started (its session)."""
        return session_members(self.processes[name].pid)

    def process_of(self, pid: int) -> str | None:
        """The name of the process whose session `pid` belongs to (a worker or its scheduler)."""
        session = session_of(pid)
        return next((name for name, process in list(self.processes.items()) if process.pid == session), None)

    def _watch(self) -> None:
        """The platform: a process that exits on its own is started again, and the restart recorded."""
        while not self._stopping.wait(0.25):
            with self._guard:
                if self._stopping.is_set():
                    return
                for name, process in list(self.processes.items()):
                    last = max((r.at for r in self.restarts if r.name == name), default=-1.0)
                    if process.poll() is None or time.monotonic() - last < 1.0:  # crash loops back off a little
                        continue
                    self.restarts.append(Restart(name, process.returncode, time.monotonic()))
                    kill_session(process.pid)  # a container takes its orphans with it
                    self.start_process(name)
