"""Slack acknowledgement latency of `jitbot web` (as the Procfile runs it) against a bare Bolt app that only acks.

Both run under the same gunicorn settings on this machine, in the same run; each is sent the same signed
`/access request`, `/access help` and button clicks at 1, 8 and 32 concurrent clients (each client sends its
next request as soon as the last is answered). The clients run in a process of their own, so that the Slack
stand-in (which answers the worker's and the web's calls to Slack, in this process) takes no interpreter time
from the timing. Before each cell the work the last one caused (approval messages, refusals) is let finish.

Besides latency it prints the CPU each app's web processes spent per request: once the clients keep both apps
busy (32 clients on 2 cores), latency is queueing, and the p99 ratio tends to the ratio of CPU per request.
For jitbot it also prints how long the worker took, after the last ack, to finish what the cell asked of it.
Run: .venv/bin/python bench/ack.py [--requests N]
"""

from __future__ import annotations

import argparse
import multiprocessing
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jitbot.jobs.tasks import waiting_jobs
from jitbot.slack import ids
from jitbot.testing.host import cpu_seconds, free_port
from jitbot.testing.slack_sender import SlackSender, click_body, command_body
from jitbot.testing.stack import Stack
from tests.integration.conftest import CATALOG

KINDS: dict[str, Callable[[int], bytes]] = {
    "/access request": lambda n: command_body("U0ALICE", f"request prod-db 1h bench {n}"),
    "/access help": lambda n: command_body("U0ALICE", "help"),
    "click Deny (refused)": lambda n: click_body(
        "U0EVE", ids.DENY, "r-zzzzzz", channel_id="C0APPROVALS", message_ts="1"
    ),
}
CLIENTS = (1, 8, 32)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(url: str, secret: str, kind: str, clients: int, count: int) -> list[float]:
    """In the clients' process: `count` requests of `kind` from `clients` concurrent clients; seconds each."""
    sender, make = SlackSender(url, secret), KINDS[kind]

    def one(n: int) -> float:
        reply = sender.post(make(n))
        assert reply.status == 200, reply.body
        return reply.elapsed

    with ThreadPoolExecutor(clients) as pool:
        return list(pool.map(one, range(count)))


class App:
    """One app under test: where to send, and the session whose CPU is its web process's."""

    def __init__(self, url: str, session: int) -> None:
        self.url, self.session = url, session


def wait_healthy(url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except OSError:
            time.sleep(0.1)


def wait_drained(stack: Stack, timeout: float = 300.0) -> float:
    """Seconds until the worker has no job waiting or running (what the cell caused is done)."""
    connection, started = stack.redis(), time.monotonic()
    while waiting_jobs(connection):
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"the worker did not drain its queue in {timeout:.0f} s")
        time.sleep(0.02)
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=300, help="per kind and concurrency level")
    count = parser.parse_args().requests
    with tempfile.TemporaryDirectory() as home, Stack(Path(home), CATALOG) as stack:
        port = free_port()
        bare = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("bare_app.py")), str(port), stack.secret, stack.slack.url],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        clients = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
        try:
            time.sleep(0.1)
            wait_healthy(f"http://127.0.0.1:{port}/")
            apps = {
                "jitbot": App(stack.sender.url, stack.processes["web"].pid),
                "bare": App(f"http://127.0.0.1:{port}/slack/events", bare.pid),
            }
            report(stack, apps, clients, count)
        finally:
            clients.shutdown()
            bare.terminate()
            bare.wait(timeout=10)


def report(stack: Stack, apps: dict[str, App], clients: Executor, count: int) -> None:
    for app in apps.values():  # warm both: imports, connections, Bolt's first-request work
        clients.submit(measure, app.url, stack.secret, "/access help", 4, 20).result()
    print(
        f"{'kind':<22}{'clients':>8}  {'jitbot p50/p95/p99 ms':>24}  {'bare p50/p95/p99 ms':>22}  p99 ratio"
        f"  {'web CPU ms/req jitbot/bare':>27}  worker done after"
    )
    for kind in KINDS:
        for concurrency in CLIENTS:
            cells, cpu = {}, {}
            drained = 0.0
            for name, app in apps.items():
                wait_drained(stack)
                before = cpu_seconds(app.session)
                figures = clients.submit(measure, app.url, stack.secret, kind, concurrency, count).result()
                cpu[name] = (cpu_seconds(app.session) - before) / count * 1000
                if name == "jitbot":
                    drained = wait_drained(stack)
                cells[name] = [percentile(figures, q) * 1000 for q in (0.5, 0.95, 0.99)]
            ratio = cells["jitbot"][2] / cells["bare"][2]
            text = {name: "/".join(f"{c:.1f}" for c in cell) for name, cell in cells.items()}
            print(
                f"{kind:<22}{concurrency:>8}  {text['jitbot']:>24}  {text['bare']:>22}  {ratio:8.2f}x"
                f"  {cpu['jitbot']:>13.2f} / {cpu['bare']:<11.2f}  {drained:.2f} s"
            )
    print(f"(n={count} requests per cell; latency as the client sees it, HTTP round trip included)")


if __name__ == "__main__":
    main()
