"""A local stand-in for the Slack Web API that answers like Slack and records every call."""

from __future__ import annotations

import contextlib
import json
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from jitbot.slack.pacing import METHOD_TIER, POST, POSTS_PER_SECOND, TIER_PER_MINUTE
from jitbot.slack.workspace import SCOPE_FEATURES
from jitbot.testing.loopback import LoopbackServer, StandInServer

AUTH = {
    "ok": True,
    "url": "https://jitbot-test.slack.com/",
    "team": "Test",
    "user": "jitbot",
    "team_id": "T0TEAM",
    "user_id": "U0JITBOT",
    "bot_id": "B0JITBOT",
    "is_enterprise_install": False,
}
JSON_STRING_PARAMS = ("blocks", "attachments")
MESSAGE_METHODS = ("chat.postMessage", "chat.update", "chat.postEphemeral")
VIEW_METHODS = ("views.open", "views.publish", "views.update", "views.push")
MESSAGE_BLOCKS, VIEW_BLOCKS = 50, 100  # Block Kit's limits: see over_block_limit
# the bot scope a method needs (its method reference); conversations.info needs one by the kind of channel
METHOD_SCOPES = {
    "users.info": "users:read",
    "usergroups.list": "usergroups:read",
    "usergroups.users.list": "usergroups:read",
}

Answer = tuple[int, dict[str, Any], dict[str, str]]
# The calls Slack lets come at once beyond its rate: its docs say only "Short bursts >1 allowed" (posting), and
# "occasional bursts" (Tier 2), "Sporadic bursts are welcome" (Tier 3), "generous burst behavior" (Tier 4)
# (https://docs.slack.dev/apis/web-api/rate-limits), so these figures are the stand-in's own.
POST_BURST = 3
TIER_BURST = {2: 5, 3: 10, 4: 20}


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


@dataclass
class _Message:
    text: Any
    blocks: Any = field(default=None)


def dm_channel(channel: str) -> str:
    """The channel Slack posts to for `channel`: a user id (U…/W…) becomes the app's DM with that user (D…)."""
    return "D" + channel[1:] if channel[:1] in ("U", "W") else channel


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


class SlackLimits:
    """Slack's rate limits as the stand-in enforces them once switched on (`SlackStandIn.limits`): chat.postMessage
    about one message a second per channel, every tiered method its tier's calls a minute across the workspace
    (jitbot.slack.pacing has the facts and their sources), each a token bucket holding a short burst. A call over
    its limit is answered as Slack answers it: HTTP 429, `{"ok": false, "error": "ratelimited"}` and `Retry-After`,
    the whole seconds until the call would pass ("Responding to rate limiting conditions" on the same page)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # bucket → (tokens, when counted)

    def refuse(self, method: str, params: dict[str, Any]) -> Answer | None:
        """The 429 for a call over its limit, or None (and the call counted against it)."""
        limit = _limit_of(method, params)
        if limit is None:
            return None
        key, per_second, burst = limit
        now = self.clock()
        tokens, at = self._buckets.get(key, (burst, now))
        tokens = min(burst, tokens + (now - at) * per_second)
        if tokens >= 1:
            self._buckets[key] = (tokens - 1, now)
            return None
        self._buckets[key] = (tokens, now)
        retry_after = math.ceil((1 - tokens) / per_second)
        return 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(retry_after)}


def _limit_of(method: str, params: dict[str, Any]) -> tuple[str, float, float] | None:
    """The bucket a call counts against: (its key, tokens a second, burst); None for a method not limited here."""
    if method == POST:
        return f"channel:{dm_channel(str(params.get('channel', '')))}", POSTS_PER_SECOND, POST_BURST
    tier = METHOD_TIER.get(method)
    return None if tier is None else (f"method:{method}", TIER_PER_MINUTE[tier] / 60, TIER_BURST[tier])


class SlackStandIn(LoopbackServer):
    """A `ThreadingHTTPServer` on 127.0.0.1 that answers Slack Web API methods and records each call."""

    def __init__(self, port: int = 0) -> None:
        self.usergroups: dict[str, list[str]] = {}
        self.disabled_usergroups: set[str] = set()  # of those, the ones disabled (usergroups.list)
        self.emails: dict[str, str] = {}  # user id → the email on their profile (users.info); others have none
        # user id → what users.info says besides a full member's defaults (is_restricted, team_id, deleted, …);
        # None: no such user. An id not listed is a full member of the test workspace.
        self.people: dict[str, dict[str, Any] | None] = {}
        # channel id → what conversations.info says besides its defaults (name, is_member, is_archived, is_private);
        # a channel not listed does not exist (channel_not_found)
        self.channels: dict[str, dict[str, Any]] = {}
        self.scopes: set[str] = set(SCOPE_FEATURES)  # the token's bot scopes (x-oauth-scopes): the manifest's
        self.uploads: dict[str, bytes] = {}  # file id → the bytes uploaded for it
        self.on_call: Callable[[Call], None] | None = None
        self.limits: SlackLimits | None = None  # Slack's rate limits, off unless a test or a benchmark sets them
        self.socket_url: str | None = None  # what apps.connections.open answers: a SocketModeStandIn's url
        self._refused: dict[str, str] = {}  # token → the error Slack answers every call made with it
        self._cond = threading.Condition()
        self._calls: list[Call] = []
        self._messages: dict[tuple[str, str], _Message] = {}
        self._failures: dict[str, _Failure] = {}
        self._ts = 0
        self._views: dict[str, dict[str, Any]] = {}  # view id → the modal as views.open received it, with its id
        self._triggers: set[str] = set()  # Slack lets a trigger_id open one view
        self._homes: dict[str, dict[str, Any]] = {}  # user id → the Home tab last published for them
        super().__init__(port, _Handler, "slack-standin")

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

    def message(self, channel: str, ts: str) -> dict[str, Any]:
        """The current `text` and `blocks` of a posted message, after any updates (KeyError if never posted)."""
        with self._cond:
            stored = self._messages[(dm_channel(channel), ts)]
            return {"text": stored.text, "blocks": stored.blocks}

    def opened_views(self) -> list[dict[str, Any]]:
        """Every modal opened with views.open so far, in order, each with the `id` Slack gave it."""
        with self._cond:
            return [dict(v) for v in self._views.values()]

    def home(self, user: str) -> dict[str, Any] | None:
        """The App Home view last published for `user` (views.publish), with its `id`; None if never published."""
        with self._cond:
            view = self._homes.get(user)
            return dict(view) if view is not None else None

    def wait_for_home(
        self, user: str, predicate: Callable[[dict[str, Any]], bool] = lambda _: True, timeout: float = 10.0
    ) -> dict[str, Any]:
        """`user`'s Home view once the latest one published satisfies `predicate` (it is replaced whole on each
        publish, so this can wait for something to disappear too); AssertionError after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                view = self._homes.get(user)
                if view is not None and predicate(view):
                    return dict(view)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    shown = json.dumps(view)[:2000] if view is not None else "never published"
                    raise AssertionError(f"{user}'s Home did not match within {timeout}s; latest: {shown}")
                self._cond.wait(remaining)

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

    def _missing_scope(self, scope: str | None) -> dict[str, Any] | None:
        """Slack's refusal of a method the token has no scope for: `missing_scope`, naming the scope `needed` and
        the scopes `provided` (the error fields of the Web API's method references)."""
        if scope is None or scope in self.scopes:
            return None
        return {"ok": False, "error": "missing_scope", "needed": scope, "provided": ",".join(sorted(self.scopes))}

    def _conversation_info(self, params: dict[str, Any]) -> dict[str, Any]:
        """conversations.info as Slack answers it (docs.slack.dev/reference/methods/conversations.info): the
        conversation with `name`, `is_private`, `is_archived` and `is_member` (whether the bot is in it);
        `channel_not_found` for an id it does not know, and for a private channel the bot is not in, which it
        cannot see. Its scope depends on the kind: channels:read for a public channel, groups:read for a private one.
        """
        channel = str(params.get("channel", ""))
        known = self.channels.get(channel)
        if known is None or (known.get("is_private") and not known.get("is_member", True)):
            return {"ok": False, "error": "channel_not_found"}
        conversation = {"id": channel, "name": channel.lower(), "is_channel": True, "is_private": False}
        conversation |= {"is_archived": False, "is_member": True, "is_mpim": False, "is_im": False, **known}
        scope = "groups:read" if conversation["is_private"] else "channels:read"
        return self._missing_scope(scope) or {"ok": True, "channel": conversation}

    def _usergroups_list(self, params: dict[str, Any]) -> dict[str, Any]:
        """usergroups.list (docs.slack.dev/reference/methods/usergroups.list): every user group of the workspace as
        usergroup objects, their members (`users`) only with include_users; `date_delete` is non-zero for a
        disabled group, listed only with include_disabled (`disabled_usergroups` holds the ids of those)."""
        wanted = {name for name in ("include_users", "include_disabled") if params.get(name) in ("1", "true", True)}
        groups = []
        for group, members in self.usergroups.items():
            disabled = group in self.disabled_usergroups
            if disabled and "include_disabled" not in wanted:
                continue
            entry = {"id": group, "team_id": AUTH["team_id"], "is_usergroup": True, "handle": group.lower()}
            entry |= {"date_delete": 1700000000 if disabled else 0, "user_count": len(members)}
            groups.append(entry | ({"users": list(members)} if "include_users" in wanted else {}))
        return {"ok": True, "usergroups": groups}

    def _next_ts(self) -> str:
        self._ts += 1
        return f"{1700000000 + self._ts // 1_000_000}.{self._ts % 1_000_000:06d}"

    def _post_message(self, params: dict[str, Any]) -> dict[str, Any]:
        # https://api.slack.com/methods/chat.postMessage#errors: `not_in_channel` (the bot is not a member; jitbot
        # has no chat:write.public) and `is_archived` — for a channel a test described in `channels`
        described = self.channels.get(str(params.get("channel", "")))
        if described is not None and described.get("is_archived"):
            return {"ok": False, "error": "is_archived"}
        if described is not None and not described.get("is_member", True):
            return {"ok": False, "error": "not_in_channel"}
        channel, ts = dm_channel(str(params.get("channel", ""))), self._next_ts()
        self._messages[(channel, ts)] = _Message(params.get("text"), params.get("blocks"))
        return {"ok": True, "channel": channel, "ts": ts, "message": {"text": params.get("text"), "ts": ts}}

    def _update(self, params: dict[str, Any]) -> dict[str, Any]:
        channel, ts = dm_channel(str(params.get("channel", ""))), str(params.get("ts", ""))
        if (channel, ts) not in self._messages:
            return {"ok": False, "error": "message_not_found"}
        self._messages[(channel, ts)] = _Message(params.get("text"), params.get("blocks"))
        return {"ok": True, "channel": channel, "ts": ts, "text": params.get("text")}

    def _open_view(self, params: dict[str, Any]) -> dict[str, Any]:
        """views.open: a modal for the person whose trigger_id this is; a trigger opens one view at most."""
        trigger, view = str(params.get("trigger_id", "")), _view_param(params)
        if not trigger:
            return {"ok": False, "error": "invalid_trigger_id"}
        if trigger in self._triggers:
            return {"ok": False, "error": "exchanged_trigger_id"}
        if view is None:
            return {"ok": False, "error": "invalid_arguments"}
        self._triggers.add(trigger)
        opened = {**view, "id": f"V{len(self._views) + 1:010d}", "team_id": AUTH["team_id"]}
        self._views[opened["id"]] = opened
        return {"ok": True, "view": opened}

    def _publish_view(self, params: dict[str, Any]) -> dict[str, Any]:
        """views.publish: the user's App Home tab, replaced whole; its view id stays the same per user."""
        user, view = str(params.get("user_id", "")), _view_param(params)
        if not user:
            return {"ok": False, "error": "invalid_arguments"}
        if view is None or view.get("type") != "home":
            return {"ok": False, "error": "invalid_arguments"}
        published = {**view, "id": _home_id(user), "team_id": AUTH["team_id"]}
        self._homes[user] = published
        return {"ok": True, "view": published}

    def _user_info(self, params: dict[str, Any]) -> dict[str, Any]:
        """users.info as Slack answers it: `user_not_found` for an id it does not know; the standing flags
        (is_restricted and is_ultra_restricted for guests, is_bot, deleted, the home team_id of a Slack Connect
        user); the profile carries an email only for users in `emails` (as with users:read.email).

        Source: Slack's users.info method reference (errors: user_not_found) and the Web API client's
        UsersInfoResponse type (@slack/web-api): deleted, is_bot, is_app_user, is_restricted, is_ultra_restricted,
        is_stranger, team_id, enterprise_user.enterprise_id, profile.email."""
        user = str(params.get("user", ""))
        flags = self.people.get(user, {})
        if flags is None or not user:
            return {"ok": False, "error": "user_not_found"}
        profile = {"email": self.emails[user]} if user in self.emails else {}
        defaults = {"deleted": False, "is_bot": False, "is_app_user": False, "is_restricted": False}
        answer = {"id": user, "team_id": AUTH["team_id"], **defaults, "is_ultra_restricted": False, **flags}
        return {"ok": True, "user": {**answer, "profile": profile}}

    def _usergroup_users(self, params: dict[str, Any]) -> dict[str, Any]:
        users = self.usergroups.get(str(params.get("usergroup", "")))
        if users is None:
            return {"ok": False, "error": "no_such_subteam"}
        return {"ok": True, "users": list(users)}

    def _open_conversation(self, params: dict[str, Any]) -> dict[str, Any]:
        first = str(params.get("users", "")).split(",")[0]
        return {"ok": True, "channel": {"id": "D" + first[1:]}}

    def _upload_url(self, params: dict[str, Any]) -> dict[str, Any]:
        file_id = f"F{len(self.uploads) + 1:08d}"
        self.uploads[file_id] = b""
        return {"ok": True, "file_id": file_id, "upload_url": self.url.removesuffix("/api/") + f"/upload/{file_id}"}

    def _complete_upload(self, params: dict[str, Any]) -> dict[str, Any]:
        files = params.get("files")
        listed = json.loads(files) if isinstance(files, str) else files or []
        missing = [f["id"] for f in listed if not self.uploads.get(f["id"])]
        if missing:
            return {"ok": False, "error": "file_not_found"}
        return {"ok": True, "files": [{"id": f["id"], "title": f.get("title")} for f in listed]}

    def receive_upload(self, file_id: str, data: bytes) -> bool:
        """The bytes POSTed to an upload URL handed out by files.getUploadURLExternal."""
        with self._cond:
            if file_id not in self.uploads:
                return False
            self.uploads[file_id] = data
            return True


def over_block_limit(method: str, params: dict[str, Any]) -> dict[str, Any] | None:
    """Slack's refusal of a message or a view with more blocks than Block Kit allows, None within the limit.

    Source: "You can include up to 50 blocks in each message, and 100 blocks in modals or Home tabs"
    (https://docs.slack.dev/reference/block-kit/blocks). A message over it answers `invalid_blocks` with
    `errors: ["no more than 50 items allowed [json-pointer:/blocks]"]` (chat.postMessage, quoted in
    ryanrosello-og/playwright-slack-report#180); a view answers `invalid_arguments` with
    `response_metadata.messages: ["[ERROR] no more than 100 items allowed [json-pointer:/view/blocks]"]`
    (views.* schema errors as in grafana/oncall#210 and slack-web's failed_view_publish.json)."""
    blocks = params.get("blocks") if method in MESSAGE_METHODS else None
    if isinstance(blocks, list) and len(blocks) > MESSAGE_BLOCKS:
        errors = [f"no more than {MESSAGE_BLOCKS} items allowed [json-pointer:/blocks]"]
        return {"ok": False, "error": "invalid_blocks", "errors": errors}
    view = _view_param(params) if method in VIEW_METHODS else None
    if view is not None and len(view.get("blocks") or []) > VIEW_BLOCKS:
        messages = [f"[ERROR] no more than {VIEW_BLOCKS} items allowed [json-pointer:/view/blocks]"]
        return {"ok": False, "error": "invalid_arguments", "response_metadata": {"messages": messages}}
    return None


def _view_param(params: dict[str, Any]) -> dict[str, Any] | None:
    """The `view` argument of views.*: a JSON object in a JSON body, or a JSON string in a form body."""
    view = params.get("view")
    if isinstance(view, str):
        with contextlib.suppress(ValueError):
            view = json.loads(view)
    return view if isinstance(view, dict) else None


def _home_id(user: str) -> str:
    """Slack keeps one Home view per user and app; its id stays the same across publishes."""
    return "VH" + user[1:]


class _Handler(BaseHTTPRequestHandler):
    server: StandInServer[SlackStandIn]
    protocol_version = "HTTP/1.1"

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
