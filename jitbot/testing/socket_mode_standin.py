"""A local stand-in for Slack's Socket Mode WebSocket: the app connects to `url` (what the Slack stand-in's
apps.connections.open answers once given it), is greeted with `hello`, receives the envelopes a test pushes and
sends back its acknowledgements.

Source: Slack's "Socket Mode implementation" guide (https://api.slack.com/apis/connections/socket-implement): the
`hello` message, envelopes carrying `envelope_id`, `type` and `payload`, and an acknowledgement that echoes the
`envelope_id` (with a `payload` for a slash command's answer); the apps.connections.open reference for the URL
(https://docs.slack.dev/reference/methods/apps.connections.open). Frames are RFC 6455's: a client's are masked,
a server's are not, a ping is answered with a pong carrying its payload.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler
from typing import Any

from jitbot.testing.loopback import LoopbackServer, StandInServer

ACCEPT_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 section 1.3
TEXT, CLOSE, PING, PONG = 0x1, 0x8, 0x9, 0xA
HELLO = {"type": "hello", "num_connections": 1, "connection_info": {"app_id": "A0JITBOT"}}


class SocketModeStandIn(LoopbackServer):
    def __init__(self, port: int = 0) -> None:
        self._cond = threading.Condition()
        self._connection: _Handler | None = None
        self._received: list[dict[str, Any]] = []
        super().__init__(port, _Handler, "socket-mode-standin")

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/link/?ticket=stand-in&app_id=A0JITBOT"

    def push(self, kind: str, payload: dict[str, Any], timeout: float = 10.0) -> str:
        """Send an envelope of `kind` (slash_commands, interactive, events_api) to the app once it is connected;
        its envelope_id."""
        envelope_id = str(uuid.uuid4())
        envelope = {"envelope_id": envelope_id, "type": kind, "payload": payload, "accepts_response_payload": True}
        with self._cond:
            if not self._cond.wait_for(lambda: self._connection is not None, timeout):
                raise AssertionError(f"the app did not connect within {timeout}s")
            connection = self._connection
        assert connection is not None
        connection.send_frame(TEXT, json.dumps(envelope).encode())
        return envelope_id

    def wait_for_ack(self, envelope_id: str, timeout: float = 10.0) -> dict[str, Any]:
        """The app's acknowledgement of an envelope; AssertionError after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = next((m for m in self._received if m.get("envelope_id") == envelope_id), None)
                if found is not None:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no acknowledgement of {envelope_id} within {timeout}s: {self._received}")
                self._cond.wait(remaining)

    def connected(self, connection: _Handler) -> None:
        with self._cond:
            self._connection = connection
            self._cond.notify_all()

    def disconnected(self, connection: _Handler) -> None:
        with self._cond:
            if self._connection is connection:  # not a newer one the app opened meanwhile
                self._connection = None

    def received(self, message: dict[str, Any]) -> None:
        with self._cond:
            self._received.append(message)
            self._cond.notify_all()


class _Handler(BaseHTTPRequestHandler):
    server: StandInServer[SocketModeStandIn]
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        """The WebSocket handshake, then frames until the app closes the connection."""
        key = self.headers.get("Sec-WebSocket-Key", "")
        accept = base64.b64encode(hashlib.sha1((key + ACCEPT_GUID).encode()).digest()).decode()
        self._send_lock = threading.Lock()
        self.send_response(101, "Switching Protocols")
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        self.end_headers()
        self.send_frame(TEXT, json.dumps(HELLO).encode())
        self.server.standin.connected(self)
        try:
            while self._receive_frame():
                pass
        finally:
            self.server.standin.disconnected(self)
            self.close_connection = True

    def send_frame(self, opcode: int, data: bytes) -> None:
        """One unmasked, unfragmented frame (a server's)."""
        size = len(data)
        if size < 126:
            header = struct.pack("!BB", 0x80 | opcode, size)
        elif size < 1 << 16:
            header = struct.pack("!BBH", 0x80 | opcode, 126, size)
        else:
            header = struct.pack("!BBQ", 0x80 | opcode, 127, size)
        with self._send_lock:
            self.wfile.write(header + data)

    def _receive_frame(self) -> bool:
        """Read one frame from the app; False once it closes (or the connection drops)."""
        head = self.rfile.read(2)
        if len(head) < 2:
            return False
        opcode, size = head[0] & 0x0F, head[1] & 0x7F
        if size >= 126:
            (size,) = struct.unpack("!H" if size == 126 else "!Q", self.rfile.read(2 if size == 126 else 8))
        mask = self.rfile.read(4) if head[1] & 0x80 else b"\0\0\0\0"
        data = bytes(byte ^ mask[i % 4] for i, byte in enumerate(self.rfile.read(size)))
        if opcode == PING:
            self.send_frame(PONG, data)
        elif opcode == TEXT:
            self.server.standin.received(json.loads(data))
        return opcode != CLOSE

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default per-request logging."""
