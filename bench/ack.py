"""Slack acknowledgement latency of `jitbot web` (as the Procfile runs it) against a bare Bolt app that only acks.

Both run under the same gunicorn settings on this machine, in the same run; each is sent the same signed
`/access request`, `/access help` and button clicks at 1, 8 and 32 concurrent clients.
Run: .venv/bin/python bench/ack.py [--requests N]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jitbot.slack import ids
from jitbot.testing.slack_sender import SlackSender, click_body, command_body
from jitbot.testing.stack import Stack, free_port
from tests.integration.conftest import CATALOG

KINDS: dict[str, Callable[[int], bytes]] = {
    "/access request": lambda n: command_body("U0ALICE", f"request prod-db 1h bench {n}"),
    "/access help": lambda n: command_body("U0ALICE", "help"),
    "click Deny (refused)": lambda n: click_body(
        "U0EVE", ids.DENY, "r-zzzzzz", channel_id="C0APPROVALS", message_ts="1"
    ),
}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(sender: SlackSender, make: Callable[[int], bytes], clients: int, count: int) -> list[float]:
    def one(n: int) -> float:
        reply = sender.post(make(n))
        assert reply.status == 200, reply.body
        return reply.elapsed

    with ThreadPoolExecutor(clients) as pool:
        return list(pool.map(one, range(count)))


def wait_healthy(url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except OSError:
            time.sleep(0.1)


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
        )
        try:
            time.sleep(0.1)
            wait_healthy(f"http://127.0.0.1:{port}/")
            senders = {
                "jitbot": stack.sender,
                "bare": SlackSender(f"http://127.0.0.1:{port}/slack/events", stack.secret),
            }
            report(senders, count)
        finally:
            bare.terminate()
            bare.wait(timeout=10)


def report(senders: dict[str, SlackSender], count: int) -> None:
    for sender in senders.values():  # warm both: imports, connections, Bolt's first-request work
        measure(sender, KINDS["/access help"], 4, 20)
    print(f"{'kind':<22}{'clients':>8}  {'jitbot p50/p95/p99 ms':>24}  {'bare p50/p95/p99 ms':>22}  p99 ratio")
    for kind, make in KINDS.items():
        for clients in (1, 8, 32):
            figures = {name: measure(s, make, clients, count) for name, s in senders.items()}
            cells = {name: [percentile(v, q) * 1000 for q in (0.5, 0.95, 0.99)] for name, v in figures.items()}
            ratio = cells["jitbot"][2] / cells["bare"][2]
            text = {name: "/".join(f"{c:.1f}" for c in cell) for name, cell in cells.items()}
            print(f"{kind:<22}{clients:>8}  {text['jitbot']:>24}  {text['bare']:>22}  {ratio:6.2f}x")
    print(f"(n={count} requests per cell; latency as the client sees it, HTTP round trip included)")


if __name__ == "__main__":
    main()
