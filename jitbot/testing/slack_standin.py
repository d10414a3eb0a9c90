"""A local stand-in for the Slack Web API that answers like Slack and records every call.

`SlackStandIn` keeps the record, the knobs tests turn (failures, refused tokens) and the table of the methods it
answers; the methods themselves live beside it by family (slack_methods_chat, _directory, _views, _files), Slack's
limits in slack_limits, and the HTTP side in slack_http.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jitbot.slack.workspace import SCOPE_FEATURES
from jitbot.testing.loopback import Answer, LoopbackServer
from jitbot.testing.slack_http import WebApiHandler
from jitbot.testing.slack_limits import SlackLimits, over_block_limit
from jitbot.testing.slack_methods_chat import ChatMethods
from jitbot.testing.slack_methods_directory import AUTH, METHOD_SCOPES, DirectoryMethods
from jitbot.testing.slack_methods_files import FileMethods
from jitbot.testing.slack_methods_views import ViewMethods


@dataclass(frozen=True)
class Call:
    """One Web API call as the stand-in received it, and the HTTP status it answered with."""

    method: str
    params: dict[str, Any]
    at: float
    answered: int = 200


@dataclass
class _Failure:
    status: int
    error: str | None
    times: int
    retry_after: int | None
    needed: str | None = None  # a missing_scope answer names the scope (`needed`), as Slack's does


class SlackStandIn(ChatMethods, DirectoryMethods, ViewMethods, FileMethods, LoopbackServer):
    """A `ThreadingHTTPServer` on 127.0.0.1 that answers Slack Web API methods and records each call."""

    def __init__(self, port: int = 0) -> None:
        # the workspace it describes and what it has been sent: declared, and explained, by the family that uses it
        self.usergroups = {}
        self.disabled_usergroups = set()
        self.emails = {}
        self.people = {}
        self.channels = {}
        self.scopes = set(SCOPE_FEATURES)
        self.uploads = {}
        self.on_call: Callable[[Call], None] | None = None
        self.limits: SlackLimits | None = None  # Slack's rate limits, off unless a test or a benchmark sets them
        self.socket_url: str | None = None  # what apps.connections.open answers: a SocketModeStandIn's url
        self._refused: dict[str, str] = {}  # token → the error Slack answers every call made with it
        self._cond = threading.Condition()
        self._calls: list[Call] = []
        self._messages = {}
        self._failures: dict[str, _Failure] = {}
        self._ts = 0
        self._views = {}
        self._triggers = set()
        self._homes = {}
        super().__init__(port, WebApiHandler, "slack-standin")

    @property
    def url(self) -> str:
        """Base URL for `slack_sdk.WebClient(base_url=...)`, with the trailing slash it needs."""
        return f"http://127.0.0.1:{self.port}/api/"

    # --- inspection -------------------------------------------------------------------------------

    @property
    def calls(self) -> list[Call]:
        """Every call so far, in order (a copy)."""
        with self._cond:
            return list(self._calls)

    def calls_to(self, method: str) -> list[Call]:
        """The calls made to one Web API method, in order."""
        return [c for c in self.calls if c.method == method]

    def wait_for(self, predicate: Callable[[Call], bool], timeout: float = 10.0) -> Call:
        """The first call (past or future) that satisfies `predicate`; AssertionError after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = next((c for c in self._calls if predicate(c)), None)
                if found is not None:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = ", ".join(c.method for c in self._calls) or "none"
                    raise AssertionError(f"no matching Slack call within {timeout}s; calls seen: {seen}")
                self._cond.wait(remaining)

    def wait_for_call(self, method: str, timeout: float = 10.0, **match: Any) -> Call:
        """The first call to `method` whose params contain every `match` item."""

        def matches(call: Call) -> bool:
            return call.method == method and all(call.params.get(k) == v for k, v in match.items())

        return self.wait_for(matches, timeout)

    def reset(self) -> None:
        """Forget the calls recorded so far (messages and usergroups stay)."""
        with self._cond:
            self._calls.clear()

    def fail(
        self,
        method: str,
        *,
        status: int = 500,
        error: str | None = None,
        times: int = 1,
        retry_after: int | None = None,
        needed: str | None = None,
    ) -> None:
        """Make the next `times` calls to `method` fail with HTTP `status`, or with `ok: false` when status is 200."""
        if status == 200 and error is None:
            raise ValueError("a 200 failure needs an error code")
        with self._cond:
            self._failures[method] = _Failure(status, error, times, retry_after, needed)

    def recover(self, *methods: str) -> None:
        """Answer calls to `methods` (none named: every method) normally again, whatever `fail` had left to refuse."""
        with self._cond:
            for method in methods or list(self._failures):
                self._failures.pop(method, None)

    def refuse_token(self, token: str, error: str = "invalid_auth") -> None:
        """Answer every call made with `token` as Slack answers a bad one: HTTP 200, `{"ok": false, "error": …}`.

        Source: the auth.test method reference (https://docs.slack.dev/reference/methods/auth.test), "Standard
        failure response when used with an invalid token: {"ok": false, "error": "invalid_auth"}"; its errors
        table lists not_authed, account_inactive and token_revoked too. Slack checks the token before the method,
        so every method answers so."""
        with self._cond:
            self._refused[token] = error

    def accept_token(self, token: str) -> None:
        """Answer calls made with `token` again (a token refused with `refuse_token`)."""
        with self._cond:
            self._refused.pop(token, None)

    # --- serving ----------------------------------------------------------------------------------

    def handle(self, method: str, params: dict[str, Any], token: str = "") -> Answer:
        """Answer one call, made with `token`, and record it; the server thread calls this."""
        with self._cond:
            limited = self.limits.refuse(method, params) if self.limits else None
            answer = self._refusal(token) or self._failure_answer(method) or limited
            answer = answer or (200, self._answer(method, params), {})
            call = Call(method, params, time.monotonic(), answer[0])
            self._calls.append(call)
            self._cond.notify_all()
        self._notify(call)
        # Slack lists the token's scopes on its Web API answers, comma-separated, in the x-oauth-scopes header (read
        # so by node-slack-sdk's WebClient.buildResult and by Bolt's authorization middleware after auth.test)
        status, payload, headers = answer
        return status, payload, {**headers, "x-oauth-scopes": ",".join(sorted(self.scopes))}

    def _notify(self, call: Call) -> None:
        if self.on_call is None:
            return
        with contextlib.suppress(Exception):  # an observer's bug must not break the stand-in
            self.on_call(call)

    def _refusal(self, token: str) -> Answer | None:
        error = self._refused.get(token)
        return None if error is None else (200, {"ok": False, "error": error}, {})

    def _failure_answer(self, method: str) -> Answer | None:
        failure = self._failures.get(method)
        if failure is None:
            return None
        failure.times -= 1
        if failure.times <= 0:
            del self._failures[method]
        headers = {} if failure.retry_after is None else {"Retry-After": str(failure.retry_after)}
        error = "ratelimited" if failure.status == 429 else failure.error or "internal_error"
        scope = {"needed": failure.needed} if failure.needed else {}
        return failure.status, {"ok": False, "error": error, **scope}, headers

    def _answer(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        handlers: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "auth.test": lambda _: dict(AUTH),
            "apps.connections.open": lambda _: {"ok": True, "url": self.socket_url},
            "chat.postMessage": self._post_message,
            "chat.update": self._update,
            "chat.postEphemeral": lambda _: {"ok": True, "message_ts": self._next_ts()},
            "usergroups.users.list": self._usergroup_users,
            "conversations.open": self._open_conversation,
            "files.getUploadURLExternal": self._upload_url,
            "files.completeUploadExternal": self._complete_upload,
            "views.open": self._open_view,
            "views.publish": self._publish_view,
            "users.info": self._user_info,
            "conversations.info": self._conversation_info,
            "usergroups.list": self._usergroups_list,
        }
        handler = handlers.get(method)
        refused = over_block_limit(method, params) or self._missing_scope(METHOD_SCOPES.get(method))
        return refused or (handler(params) if handler else {"ok": True})
