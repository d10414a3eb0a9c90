"""Start-up of the web process (as the Procfile runs it) to a ready `/healthz`, and its resident memory.

The baseline, in the same run: the bare ack-only Bolt app of bench/ack.py behind the same gunicorn settings.
Each is started `--rounds` times (default 5); medians are printed. Memory is the resident set of gunicorn's
master and its workers, read from /proc once ready.

Run: .venv/bin/python bench/startup.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import http.client
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jitbot.testing.host import free_port
from jitbot.testing.stack import Stack
from tests.integration.conftest import CATALOG

READY_TIMEOUT_S = 30.0


def ready_after(port: int, path: str, started: float, any_answer: bool) -> float:
    """Seconds from `started` until `path` answers 200 (or, with `any_answer`, answers at all over HTTP)."""
    deadline = started + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            connection.request("GET", path)
            status = connection.getresponse().status
            if status == 200 or any_answer:
                return time.monotonic() - started
        except OSError:  # not listening yet
            pass
        finally:
            connection.close()
        time.sleep(0.01)
    raise RuntimeError(f"127.0.0.1:{port}{path} not ready within {READY_TIMEOUT_S}s")


def resident_mb(pid: int) -> float:
    """Resident memory of `pid` and its children (gunicorn's workers), in MB."""
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    total_kb = 0
    for one in pids:
        for line in Path(f"/proc/{one}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total_kb += int(line.split()[1])
    return total_kb / 1024


def measure(
    command: list[str], env: dict[str, str], port: int, path: str, any_answer: bool, cwd: Path
) -> tuple[float, float]:
    started = time.monotonic()
    process = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        seconds = ready_after(port, path, started, any_answer)
        time.sleep(0.5)  # both gunicorn workers have booted by now: count them
        return seconds, resident_mb(process.pid)
    finally:
        process.terminate()
        process.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    rounds = parser.parse_args().rounds
    with tempfile.TemporaryDirectory() as home, Stack(Path(home), CATALOG) as stack:
        results: dict[str, list[tuple[float, float]]] = {"jitbot web": [], "bare Bolt app": []}
        for _ in range(rounds):
            port = free_port()
            env = {**stack.env, "PORT": str(port)}
            web = [str(Path(sys.executable).parent / "jitbot"), "web"]
            # from the stack's home, as the Procfile's processes run: the same embedded Redis, not a new one
            results["jitbot web"].append(measure(web, env, port, "/healthz", False, stack.home))
            port = free_port()
            bare = [
                sys.executable,
                str(Path(__file__).with_name("bare_app.py")),
                str(port),
                stack.secret,
                stack.slack.url,
            ]
            results["bare Bolt app"].append(measure(bare, dict(os.environ), port, "/", True, stack.home))
    print(f"{'process':<16}{'ready (median, s)':>20}{'resident (median, MB)':>24}   rounds: {rounds}")
    for name, runs in results.items():
        seconds, memory = statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)
        print(f"{name:<16}{seconds:>20.2f}{memory:>24.0f}")
    print("(gunicorn master + 2 gthread workers each; ready = 200 from /healthz; the bare app: any HTTP answer)")


if __name__ == "__main__":
    main()
