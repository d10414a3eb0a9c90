"""CPU per Slack request of jitbot's web app, called in this process: no HTTP, no gunicorn, no other clients.

bench/ack.py measures the ack as Slack sees it, and its "web CPU" column is what the machine pays per request; on a
shared machine both move with everyone else's work. This calls the WSGI app itself (jitbot.web.WebApp, built as
`jitbot web` builds it) with the same signed `/access request`, `/access help` and refused Deny click, against the
embedded Redis, and takes the CPU time of this process: the lowest of `--rounds` rounds, which is the least
disturbed. The bare Bolt app of bench/bare_app.py gets the same requests. Bolt's listener threads run inline, so a
click's work after its ack is counted; the Slack stand-in answers from a process of its own.
`--profile KIND` prints where that kind's CPU goes (cProfile, by CPU time).
Run: .venv/bin/python bench/ack_cpu.py [--requests 300] [--rounds 5] [--profile "/access request"]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import multiprocessing
import os
import pstats
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, Future
from multiprocessing.queues import Queue
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import slack_bolt.app.app

from bench.ack import KINDS
from bench.bare_app import bare_app
from jitbot import runtime
from jitbot.config import Config
from jitbot.observability import logs
from jitbot.store import embedded
from jitbot.testing.slack_sender import sign
from jitbot.testing.slack_standin import SlackStandIn
from jitbot.web import EVENTS_PATH, WebApp
from tests.integration.conftest import CATALOG

SECRET = "ack-cpu-signing-secret"
App = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class Inline(Executor):
    """Bolt's listener pool, run in the caller's thread: a click's after-ack work is measured with it."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        done: Future[Any] = Future()
        done.set_result(fn(*args, **kwargs))
        return done


def serve_slack(urls: Queue[str]) -> None:
    """In a process of its own: the Slack stand-in, whose CPU is not the web app's."""
    standin = SlackStandIn()
    standin.start()
    urls.put(standin.url)
    time.sleep(24 * 3600)


def environ(body: bytes) -> dict[str, Any]:
    """A signed POST to /slack/events, as gunicorn hands it to the app."""
    headers = sign(SECRET, body, int(time.time()))
    return {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": EVENTS_PATH,
        "QUERY_STRING": "",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "3000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "CONTENT_LENGTH": str(len(body)),
        "CONTENT_TYPE": headers["Content-Type"],
        "HTTP_X_SLACK_REQUEST_TIMESTAMP": headers["X-Slack-Request-Timestamp"],
        "HTTP_X_SLACK_SIGNATURE": headers["X-Slack-Signature"],
    }


def call(app: App, request: dict[str, Any]) -> None:
    status: list[str] = []
    b"".join(app(request, lambda line, headers, exc_info=None: status.append(line)))
    assert status[0].startswith("200"), status


def measure(app: App, kind: str, count: int, rounds: int, profiler: cProfile.Profile | None) -> float:
    """Milliseconds of CPU per request of `kind`: the lowest of `rounds` rounds of `count`."""
    make = KINDS[kind]
    for n in range(50):  # warm: imports, connections, caches
        call(app, environ(make(n)))
    spent = []
    for r in range(rounds):
        requests = [environ(make(1000 * (r + 1) + n)) for n in range(count)]
        started = time.process_time()
        if profiler:
            profiler.enable()
        for request in requests:
            call(app, request)
        if profiler:
            profiler.disable()
        spent.append((time.process_time() - started) / count * 1000)
    return min(spent)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=300, help="per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", choices=list(KINDS), help="print where this kind's CPU goes (jitbot's app)")
    args = parser.parse_args()
    slack_bolt.app.app.ThreadPoolExecutor = lambda max_workers: Inline()  # type: ignore[attr-defined,assignment]
    spawn = multiprocessing.get_context("spawn")
    urls: Queue[str] = spawn.Queue()
    slack = spawn.Process(target=serve_slack, args=(urls,), daemon=True)
    slack.start()
    with tempfile.TemporaryDirectory() as home:
        store_home = Path(home) / ".jitbot"
        try:
            (Path(home) / "jitbot.yml").write_text(CATALOG)
            env = {
                "SLACK_BOT_TOKEN": "xoxb-ack-cpu",
                "SLACK_SIGNING_SECRET": SECRET,
                "SLACK_API_URL": urls.get(timeout=30),
                "JITBOT_CONFIG": str(Path(home) / "jitbot.yml"),
                "REDIS_URL": embedded.ensure_running(store_home),
            }
            logs.configure(open(os.devnull, "w"))  # noqa: SIM115 - the process's log stream until it exits
            apps: dict[str, App] = {
                "jitbot": WebApp(runtime.build(Config.from_env(env), someone_waiting=True)),
                "bare": bare_app(SECRET, env["SLACK_API_URL"]),
            }
            print(f"{'kind':<24}{'jitbot CPU ms/req':>18}{'bare CPU ms/req':>18}")
            for kind in KINDS:
                profiler = cProfile.Profile(time.thread_time) if kind == args.profile else None
                cpu = {name: measure(app, kind, args.requests, args.rounds, None) for name, app in apps.items()}
                print(f"{kind:<24}{cpu['jitbot']:>18.3f}{cpu['bare']:>18.3f}")
                if profiler:
                    measure(apps["jitbot"], kind, args.requests, 1, profiler)
                    out = io.StringIO()
                    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(60)
                    print(out.getvalue())
            print(f"(lowest of {args.rounds} rounds of {args.requests}; in this process, without HTTP or gunicorn)")
        finally:
            embedded.stop(store_home)
            slack.kill()


if __name__ == "__main__":
    main()
