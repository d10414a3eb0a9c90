"""The web process: Slack's requests at /slack/events (signature checked, refusals audited), /livez, /readyz,
/healthz, /metrics; and Socket Mode's process, which serves the same probes beside its connection to Slack."""

from __future__ import annotations

import io
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from datetime import timedelta
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import redis
from gunicorn.app.base import BaseApplication
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_sdk.signature import SignatureVerifier

from jitbot import runtime
from jitbot.config import Config
from jitbot.core.clock import utcnow
from jitbot.core.events import AuditEvent, EventName
from jitbot.observability import logs
from jitbot.observability.health import OK, Readiness, SlackToken, start_watching
from jitbot.observability.metrics_collector import RedisCollector
from jitbot.slack.listeners import register
from jitbot.slack.notify import web_client

EVENTS_PATH = "/slack/events"
MAX_BODY = 1 << 20  # Slack payloads are a few KiB; refuse anything absurd before reading it
REPLAY_WINDOW_S = 300  # Slack's own: a signed request older than this is refused
UNVERIFIED = {  # why a request was refused before it could be verified: metric label → what the audit record says
    "too_large": "body too large",
    "unsigned": "missing Slack signature headers",
    "stale": "stale or malformed timestamp (possible replay)",
    "forged": "signature does not match",
}
# anyone on the internet can send these: counted exactly, but audited (and logged) once a window per reason, with the
# count since, so that a flood cannot fill the noeviction Redis that holds the grants
UNVERIFIED_WINDOW = timedelta(minutes=1)
StartResponse = Callable[..., Any]
PROBES: dict[str, Callable[[Readiness], dict[str, str]]] = {
    "/livez": Readiness.live,
    "/readyz": Readiness.ready,
    "/healthz": Readiness.healthy,
}
_log = logs.get("jitbot.web")


def build_bolt_app(rt: runtime.Runtime) -> App:
    token = rt.config.require("SLACK_BOT_TOKEN")
    app = App(
        # Bolt verifies nothing: over HTTP, WebApp checks the signature of the exact bytes Slack sent (and audits
        # refusals); over Socket Mode, the app token authenticates the connection and no signing secret is used
        signing_secret="",
        client=web_client(token, rt.config.slack_api_url, someone_waiting=True),
        token_verification_enabled=False,  # start even while Slack is unreachable; /readyz and `jitbot check` tell
        request_verification_enabled=False,
        # answer as soon as the listener returns: Bolt's default polls for ack() every 10 ms; clicks do their
        # work on Bolt's listener threads, after the answer
        process_before_response=True,
    )
    register(app, rt.surface)
    return app


class WebApp:
    """WSGI: verifies Slack's signature itself so that every refused request is audited, then hands to Bolt."""

    def __init__(self, rt: runtime.Runtime) -> None:
        self.runtime = rt
        self.verifier = SignatureVerifier(rt.config.require("SLACK_SIGNING_SECRET"))
        self.slack = SlackRequestHandler(build_bolt_app(rt), path=EVENTS_PATH)
        self.health = HealthApp(rt)
        self.metrics = CollectorRegistry()  # not the global one: only what every process counted, from Redis
        self.metrics.register(RedisCollector(rt.store, utcnow))

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method, path = environ.get("REQUEST_METHOD", "GET"), environ.get("PATH_INFO", "/")
        if path in PROBES:
            return self.health(environ, start_response)
        if path == "/metrics" and method == "GET":
            return self._scrape(start_response)
        if path != EVENTS_PATH or method != "POST":
            return _reply(start_response, 404, {"error": "not found"})
        length = int(environ.get("CONTENT_LENGTH") or 0)
        if length > MAX_BODY:
            return self._refuse(start_response, "too_large")
        body = environ["wsgi.input"].read(length)
        problem = self._signature_problem(environ, body)
        if problem:
            return self._refuse(start_response, problem)
        body = bolt_safe_body(body)
        environ["wsgi.input"], environ["CONTENT_LENGTH"] = io.BytesIO(body), str(len(body))
        return self.slack(environ, start_response)

    def _signature_problem(self, environ: dict[str, Any], body: bytes) -> str | None:
        stamp, signature = environ.get("HTTP_X_SLACK_REQUEST_TIMESTAMP"), environ.get("HTTP_X_SLACK_SIGNATURE")
        if not stamp or not signature:
            return "unsigned"
        if not stamp.isdigit() or abs(time.time() - int(stamp)) > REPLAY_WINDOW_S:
            return "stale"
        if not self.verifier.is_valid(body, stamp, signature):
            return "forged"
        return None

    def _refuse(self, start_response: StartResponse, reason: str) -> Iterable[bytes]:
        """401, counted; audited and logged only as the first of its reason in a window, with the count since."""
        try:
            count = self.runtime.store.locks.note_unverified(reason, UNVERIFIED_WINDOW)
            if count:
                detail = {"attempted": "http", "reason": UNVERIFIED[reason], "count": count}
                self.runtime.store.chain.record(
                    AuditEvent(EventName.REFUSED, "-", "unverified", "-", utcnow(), "-", detail)
                )
                _log.warning("refused_unverified", reason=reason, count=count)
        except redis.RedisError:  # the refusal stands; the log keeps its trace
            _log.warning("refused_unrecorded", reason=reason)
        return _reply(start_response, 401, {"error": "invalid request"})

    def _scrape(self, start_response: StartResponse) -> Iterable[bytes]:
        try:
            data = generate_latest(self.metrics)
        except redis.RedisError:
            return _reply(start_response, 503, {"status": "unavailable", "redis": "unreachable"})
        start_response("200 OK", [("Content-Type", CONTENT_TYPE_PLAIN_0_0_4), ("Content-Length", str(len(data)))])
        return [data]


def bolt_safe_body(body: bytes) -> bytes:
    """bolt-python (1.30) reads any form body that contains the text "payload" as an interactive payload, so
    `/access request prod-db 1h fix the payload parser` came back 404. Percent-encoding that text in a slash
    command's body changes nothing it decodes to; interactive payloads (`payload=…`) pass unchanged."""
    return body if body.startswith(b"payload=") else body.replace(b"payload", b"%70ayload")


def _reply(start_response: StartResponse, status: int, payload: dict[str, str]) -> Iterable[bytes]:
    data = json.dumps(payload).encode()
    reasons = {200: "OK", 401: "Unauthorized", 404: "Not Found", 503: "Service Unavailable"}
    start_response(
        f"{status} {reasons[status]}", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
    )
    return [data]


class HealthApp:
    """WSGI: GET /livez, /readyz, /healthz (jitbot.health says what each checks): 200, or 503 naming what fails."""

    def __init__(self, rt: runtime.Runtime) -> None:
        self.readiness = Readiness(rt.store, SlackToken(rt.notifier))

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        probe = PROBES.get(environ.get("PATH_INFO", "/"))
        if probe is None or environ.get("REQUEST_METHOD", "GET") != "GET":
            return _reply(start_response, 404, {"error": "not found"})
        checks = probe(self.readiness)
        passed = all(value == OK for value in checks.values())
        return _reply(start_response, 200 if passed else 503, {"status": OK if passed else "unavailable", **checks})


def create_wsgi_app() -> WebApp:
    app = WebApp(runtime.current(someone_waiting=True))
    start_watching(app.health.readiness.token, threading.Event())
    return app


class _ProbeServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Probes every few seconds are not worth a line each (wsgiref's would not be JSON either)."""


def serve_socket_mode(rt: runtime.Runtime) -> None:
    """Slack's requests over Socket Mode (no public URL; the app token authenticates the connection), with /livez,
    /readyz and /healthz served on the bind address from a daemon thread, as web serves them."""
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    health, stop = HealthApp(rt), threading.Event()
    probes = make_server(rt.config.host, rt.config.port, health, _ProbeServer, _QuietHandler)
    threading.Thread(target=probes.serve_forever, name="probes", daemon=True).start()
    start_watching(health.readiness.token, stop)
    try:
        SocketModeHandler(build_bolt_app(rt), rt.config.require("SLACK_APP_TOKEN")).start()  # type: ignore[no-untyped-call]
    finally:
        stop.set()
        probes.shutdown()
        probes.server_close()


class Server(BaseApplication):  # type: ignore[misc]
    """gunicorn, in-process: threads so that Bolt's after-ack work and slow clients don't block. jitbot's settings
    first, then GUNICORN_CMD_ARGS over them as gunicorn's own command does (its `Application` reads that variable
    when it loads its settings; `BaseApplication`, which this is, does not)."""

    def __init__(self, config: Config, threads: int = 8) -> None:
        self.options = {
            "bind": config.bind,
            "workers": config.web_concurrency,
            "threads": threads,
            "worker_class": "gthread",
            "timeout": 30,
            "loglevel": logging.getLevelName(config.log_level).lower(),
            "logger_class": logs.GunicornLogger,  # its lines as jitbot's JSON lines, an access line per request
            # gunicorn's request limits, explicit: a request line, header count and header size Slack never comes
            # near (its requests carry ~10 headers); larger is refused with 400 before jitbot reads anything
            "limit_request_line": 4094,
            "limit_request_fields": 32,
            "limit_request_field_size": 8190,
        }
        self.given = config.gunicorn_args
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)
        given = self.cfg.parser().parse_args(list(self.given))
        for key, value in vars(given).items():
            if value is not None and key != "args":  # `args`: an app module named on the command line (not ours)
                self.cfg.set(key, value)

    def load(self) -> WebApp:
        return create_wsgi_app()  # in each worker after the fork: no threads or sockets cross it
