"""What jitbot says to people in Slack (DMs, ephemerals, views) and asks of it; the one choke point of Web API calls.

Every call — the Notifier's, and the Announcer's, which keeps jitbot's messages in channels (jitbot.slack.announcer)
— goes through `Notifier.call`: one WebClient that retries connection errors and 429s and, in a worker, waits first
for its turn under Slack's rate limits (jitbot.slack.pacing): the calls that deliver or take away access are urgent.
Slack errors leave here as NotifyError carrying only Slack's error code — never the request body, which may hold a
secret.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)

from jitbot.core.domain import AccessRequest, Status
from jitbot.core.errors import MessengerError
from jitbot.core.redaction import Credentials
from jitbot.slack import dms, views
from jitbot.slack.pacing import Pacer
from jitbot.slack.state import SlackStore

ANNOUNCE_LOCK = timedelta(seconds=30)
OUTCOMES = {Status.DENIED, Status.FAILED, Status.EXPIRED, Status.REVOKED, Status.CANCELLED}


class NotifyError(MessengerError):
    """Slack refused or could not be reached; the message names the method and Slack's error code."""


# Slack's answers that no retry changes: an admin must act (https://api.slack.com/methods/chat.postMessage#errors,
# likewise chat.update's; the auth errors are common to every Web API method, and a missing_scope answer names the
# scope in `needed`, as the response type in Slack's own SDKs has it). `{channel}` is the channel.
FIXES = {
    "not_in_channel": "invite @jitbot to {channel} (`/invite @jitbot` there)",
    "channel_not_found": "check the channel id {channel} in jitbot.yml (a private one: invite @jitbot to it)",
    "is_archived": "unarchive {channel}, or name another channel in jitbot.yml",
    "invalid_auth": "set SLACK_BOT_TOKEN to the app's current bot token (xoxb-…) and restart jitbot",
    "not_authed": "set SLACK_BOT_TOKEN to the app's bot token (xoxb-…) and restart jitbot",
    "account_inactive": "reinstall the jitbot app in the workspace and set SLACK_BOT_TOKEN to its new token",
    "token_revoked": "reinstall the jitbot app in the workspace and set SLACK_BOT_TOKEN to its new token",
    "missing_scope": "add the scope `{needed}` to the app's bot token scopes and reinstall it",
}
TOKEN_ERRORS = {"invalid_auth", "not_authed", "account_inactive", "token_revoked"}  # nothing jitbot says gets out


class SlackMisconfigured(NotifyError):
    """Slack refused for a reason only an admin can fix: retrying is pointless until they do. `fix` says what to
    do; `channel` is the channel the call was for (empty for calls that name none)."""

    def __init__(self, method: str, code: str, channel: str, needed: str) -> None:
        self.slack_error, self.channel = code, channel
        where = f"<#{channel}>" if channel.startswith(("C", "G")) else channel or "the channel"
        self.fix = FIXES[code].format(channel=where, needed=needed or "Slack names")
        super().__init__(f"Slack {method} failed: {code} ({self.fix})")

    @property
    def token_refused(self) -> bool:
        return self.slack_error in TOKEN_ERRORS


WAITING_TIMEOUT_S = 2  # a Web API call someone waits on, within Slack's 3 s for the answer


def web_client(token: str | None, base_url: str, *, someone_waiting: bool = False) -> WebClient:
    """The Web API client. Jobs retry dropped connections, 5xx and 429s (sleeping out Retry-After). In the web
    process (`someone_waiting`) a person is waiting on Slack's 3 s for the answer, so a call fails fast instead:
    one attempt of at most 2 s, no sleeping out a 429."""
    if someone_waiting:
        return WebClient(token=token, base_url=base_url, retry_handlers=[], timeout=WAITING_TIMEOUT_S)
    handlers = [
        ConnectionErrorRetryHandler(max_retry_count=2),
        RateLimitErrorRetryHandler(max_retry_count=3),  # sleeps Retry-After: fine in a job, not in the web
        ServerErrorRetryHandler(max_retry_count=2),
    ]
    return WebClient(token=token, base_url=base_url, retry_handlers=handlers, timeout=10)


class Notifier:
    def __init__(self, client: WebClient, store: SlackStore, pacer: Pacer | None = None) -> None:
        """`pacer`: a worker's calls wait for their turn under Slack's limits; None (the web process) calls at once."""
        self.client = client
        self.store = store
        self.pacer = pacer

    def tell_requester(self, request: AccessRequest) -> None:
        """The outcome DM, once per outcome (marked after sending: a retry may repeat, never lose it)."""
        if request.status not in OUTCOMES:
            return
        marker = f"told_{request.status}"
        with self.store.locks.lock(f"tell:{request.id}", ANNOUNCE_LOCK) as mine:  # two sync jobs at once: one DM
            if not mine or marker in self.store.slack.slack_refs(request.id):
                return  # the holder sends it; if it fails, its job is retried
            self.call("chat_postMessage", channel=request.requester, text=dms.outcome_dm(request), urgent=True)
            self.store.slack.set_slack_refs(request.id, **{marker: "1"})

    def send_access(self, request: AccessRequest, credentials: Credentials, access: dict[str, str]) -> None:
        """The DM that carries the access. A renewal replaces the earlier one, whose secrets are scrubbed first."""
        self.scrub_credentials(request)
        text, blocks = dms.credentials_dm(request, credentials.fields(), access)
        answer = self.call("chat_postMessage", channel=request.requester, text=text, blocks=blocks, urgent=True)
        self.store.slack.set_slack_refs(request.id, secret_dm_channel=answer["channel"], secret_dm_ts=answer["ts"])
        self.store.slack.drop_slack_refs(request.id, "scrubbed")

    def remind(self, request: AccessRequest, now: datetime) -> None:
        """The expiring-soon DM with Extend and End now, once per expiry (an extension earns a new one)."""
        marker = f"reminded_{int((request.expires_at or now).timestamp())}"
        with self.store.locks.lock(f"remind:{request.id}", ANNOUNCE_LOCK) as mine:
            if not mine or marker in self.store.slack.slack_refs(request.id):
                return
            text, blocks = dms.expiring_dm(request, now)
            self.call("chat_postMessage", channel=request.requester, text=text, blocks=blocks)
            self.store.slack.set_slack_refs(request.id, **{marker: "1"})

    def user_info(self, user: str) -> dict[str, Any]:
        """users.info's `user`: the flags that say guest, bot, deleted; the team; the profile (its email needs the
        users:read.email scope)."""
        return dict(self.call("users_info", user=user)["user"])

    def installation(self) -> tuple[str, str | None]:
        """auth.test: the workspace id and, in an Enterprise Grid organisation, the organisation's id."""
        answer = self.call("auth_test")
        return str(answer["team_id"]), answer.get("enterprise_id") or None

    def tell(self, channel: str, text: str, blocks: list[views.Block] | None = None) -> None:
        """A message, plain unless given blocks: to a user id (a DM) or a channel id."""
        self.call("chat_postMessage", channel=channel, text=text, blocks=blocks)

    def open_view(self, trigger_id: str, view: dict[str, Any]) -> None:
        self.call("views_open", trigger_id=trigger_id, view=view)

    def publish_home(self, user: str, view: dict[str, Any]) -> None:
        self.call("views_publish", user_id=user, view=view)

    def scrub_credentials(self, request: AccessRequest) -> None:
        """Edit the secret-bearing DM so that no secret stays in Slack history; safe to repeat."""
        refs = self.store.slack.slack_refs(request.id)
        if "secret_dm_ts" in refs and "scrubbed" not in refs:
            text, blocks = dms.scrubbed_dm(request)
            channel, ts = refs["secret_dm_channel"], refs["secret_dm_ts"]
            self.call("chat_update", channel=channel, ts=ts, text=text, blocks=blocks, urgent=True)
            self.store.slack.set_slack_refs(request.id, scrubbed="1")

    def send_files(self, user: str, paths: Sequence[Path], comment: str) -> None:
        """Files in the person's DM with the app (conversations.open gives the DM's channel id)."""
        channel = self.call("conversations_open", users=user)["channel"]["id"]
        uploads = [{"file": str(path), "title": path.name} for path in paths]
        self.call("files_upload_v2", channel=channel, file_uploads=uploads, initial_comment=comment)

    def ephemeral(self, channel: str, user: str, text: str, blocks: list[views.Block] | None = None) -> None:
        self.call("chat_postEphemeral", channel=channel, user=user, text=text, blocks=blocks)

    def group_members(self, groups: Iterable[str]) -> dict[str, frozenset[str]]:
        """Members of each user group, asked now (membership can change after a message was posted)."""
        return {group: frozenset(self.call("usergroups_users_list", usergroup=group)["users"]) for group in groups}

    def call(self, method: str, *, urgent: bool = False, **params: Any) -> Any:
        """One Web API call, once its turn has come (`urgent`: it may spend the share kept for urgent calls)."""
        name = method.replace("_", ".")  # Slack's name: usergroups_users_list is usergroups.users.list
        later = self.pacer.wait_turn(name, str(params.get("channel", "")), urgent) if self.pacer else 0.0
        if later:
            self.store.metrics.count_slack_error(name, "paced")
            raise NotifyError(f"Slack {name} paced: jitbot's share of Slack's rate limit is spent for {later:.0f} s")
        try:
            return getattr(self.client, method)(**params)
        except SlackApiError as error:
            code = error.response.get("error", "unknown") if error.response is not None else "unknown"
            self.store.metrics.count_slack_error(name, code)
            if code in FIXES:
                needed = str(error.response.get("needed", "")) if error.response is not None else ""
                raise SlackMisconfigured(name, code, str(params.get("channel", "")), needed) from None
            raise NotifyError(f"Slack {name} failed: {code}") from None
        except SlackClientError as error:
            self.store.metrics.count_slack_error(name, type(error).__name__)
            raise NotifyError(f"Slack {name} failed: {type(error).__name__}") from None
