"""What the local stand-ins (Slack, Azure Resource Manager, GCP Resource Manager) share: an HTTP server on
127.0.0.1 served from a daemon thread, whose request handlers reach their stand-in as `self.server.standin`."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

StandIn = TypeVar("StandIn")
Answer = tuple[int, dict[str, Any], dict[str, str]]  # HTTP status, JSON body, headers


class StandInServer(ThreadingHTTPServer, Generic[StandIn]):
    daemon_threads = True

    def __init__(self, port: int, handler: type[BaseHTTPRequestHandler], standin: StandIn) -> None:
        self.standin = standin
        super().__init__(("127.0.0.1", port), handler)


class JsonHandler(BaseHTTPRequestHandler):
    """A stand-in's request handler: answers in JSON, and logs nothing (tests read what the stand-in recorded)."""

    protocol_version = "HTTP/1.1"

    def _reply(self, answer: Answer) -> None:
        status, payload, headers = answer
        data = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default per-request logging."""


class LoopbackServer:
    """Start (in a daemon thread), stop, and `with` for a stand-in; `port` is the one it listens on."""

    def __init__(self, port: int, handler: type[BaseHTTPRequestHandler], name: str) -> None:
        self._server: StandInServer[Any] = StandInServer(port, handler, self)
        self._name = name
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> Self:
        """Serve in a daemon thread."""
        if self._thread is None:
            serve, quick_stop = self._server.serve_forever, {"poll_interval": 0.02}
            self._thread = threading.Thread(target=serve, kwargs=quick_stop, name=self._name, daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
