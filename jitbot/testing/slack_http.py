"""The Slack stand-in's HTTP side: a Web API request's params read as Slack reads them (form or JSON), its answer
written as Slack writes it, and the bytes POSTed to the upload URLs files.getUploadURLExternal hands out."""

from __future__ import annotations

import contextlib
import json
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from jitbot.testing.loopback import JsonHandler, StandInServer

if TYPE_CHECKING:
    from jitbot.testing.slack_standin import SlackStandIn

JSON_STRING_PARAMS = ("blocks", "attachments")


def parse_params(content_type: str, body: bytes, query: str) -> dict[str, Any]:
    """Params of a Web API request, whether form-encoded or JSON, with the query string merged in."""
    params: dict[str, Any] = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
    if body and "json" in content_type:
        parsed = json.loads(body)
        params.update(parsed if isinstance(parsed, dict) else {})
        return params
    form = parse_qs(body.decode("utf-8"), keep_blank_values=True) if body else {}
    params.update({k: v[-1] for k, v in form.items()})
    for name in JSON_STRING_PARAMS:
        if isinstance(params.get(name), str):
            with contextlib.suppress(ValueError):
                params[name] = json.loads(params[name])
    return params


def view_param(params: dict[str, Any]) -> dict[str, Any] | None:
    """The `view` argument of views.*: a JSON object in a JSON body, or a JSON string in a form body."""
    view = params.get("view")
    if isinstance(view, str):
        with contextlib.suppress(ValueError):
            view = json.loads(view)
    return view if isinstance(view, dict) else None


class WebApiHandler(JsonHandler):
    server: StandInServer[SlackStandIn]

    def do_POST(self) -> None:
        self._serve()

    def do_GET(self) -> None:
        self._serve()

    def _serve(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if parts.path.startswith("/upload/"):
            stored = self.server.standin.receive_upload(parts.path.removeprefix("/upload/"), body)
            self._reply((200, {"ok": True}, {}) if stored else (404, {"ok": False, "error": "unknown_upload"}, {}))
            return
        if not parts.path.startswith("/api/"):
            self._reply((404, {"ok": False, "error": "unknown_method"}, {}))
            return
        try:
            params = parse_params(self.headers.get("Content-Type", ""), body, parts.query)
        except ValueError:
            self._reply((400, {"ok": False, "error": "invalid_json"}, {}))
            return
        token = self.headers.get("Authorization", "").removeprefix("Bearer ") or str(params.get("token", ""))
        self._reply(self.server.standin.handle(parts.path.removeprefix("/api/"), params, token))
