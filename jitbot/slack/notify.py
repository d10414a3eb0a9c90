"""What jitbot says in Slack on its own initiative: approval messages kept current, DMs, ephemerals.

Every call goes through one WebClient that retries connection errors and 429s. Slack errors leave here
as NotifyError carrying only Slack's error code — never the request body, which may hold a secret.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)

from jitbot import metrics
from jitbot.catalog import Resource
from jitbot.domain import AccessRequest, Status
from jitbot.errors import JitError
from jitbot.redaction import Credentials
from jitbot.slack import views
from jitbot.store import Store

ANNOUNCE_LOCK = timedelta(seconds=30)
OUTCOMES = {Status.DENIED, Status.FAILED, Status.EXPIRED, Status.REVOKED}


class NotifyError(JitError):
    """Slack refused or could not be reached; the message names the method and Slack's error code."""


def web_client(token: str | None, base_url: str) -> WebClient:
    handlers = [
        ConnectionErrorRetryHandler(max_retry_count=2),
        RateLimitErrorRetryHandler(max_retry_count=3),  # sleeps Retry-After: fine in a job, brief in the web
        ServerErrorRetryHandler(max_retry_count=2),
    ]
    return WebClient(token=token, base_url=base_url, retry_handlers=handlers, timeout=10)


class Notifier:
    def __init__(self, client: WebClient, store: Store) -> None:
        self.client = client
        self.store = store

    def sync_approval_message(self, request: AccessRequest, resource: Resource) -> None:
        """Post the approval message once, then keep it showing the request's current state."""
        text, blocks = views.approval_message(request, resource)
        refs = self.store.slack_refs(request.id)
        if "approval_ts" in refs:
            self._call(
                "chat_update", channel=refs["approval_channel"], ts=refs["approval_ts"], text=text, blocks=blocks
            )
            return
        with self.store.lock(f"announce:{request.id}", ANNOUNCE_LOCK) as mine:
            if not mine or "approval_ts" in self.store.slack_refs(request.id):
                return  # another worker is posting it, and will render the latest state
            answer = self._call("chat_postMessage", channel=resource.channel, text=text, blocks=blocks)
            self.store.set_slack_refs(request.id, approval_channel=answer["channel"], approval_ts=answer["ts"])
        latest = self.store.get(request.id)
        if latest.version != request.version:
            self.sync_approval_message(latest, resource)

    def tell_requester(self, request: AccessRequest) -> None:
        """The outcome DM, once per outcome (marked after sending: a retry may repeat, never lose it)."""
        if request.status not in OUTCOMES:
            return
        marker = f"told_{request.status}"
        with self.store.lock(f"tell:{request.id}", ANNOUNCE_LOCK) as mine:  # two sync jobs at once: one DM
            if not mine or marker in self.store.slack_refs(request.id):
                return  # the holder sends it; if it fails, its job is retried
            self._call("chat_postMessage", channel=request.requester, text=views.outcome_dm(request))
            self.store.set_slack_refs(request.id, **{marker: "1"})

    def send_credentials(self, request: AccessRequest, credentials: Credentials) -> None:
        text, blocks = views.credentials_dm(request, credentials.fields())
        answer = self._call("chat_postMessage", channel=request.requester, text=text, blocks=blocks)
        self.store.set_slack_refs(request.id, secret_dm_channel=answer["channel"], secret_dm_ts=answer["ts"])

    def scrub_credentials(self, request: AccessRequest) -> None:
        """Edit the secret-bearing DM so that no secret stays in Slack history; safe to repeat."""
        refs = self.store.slack_refs(request.id)
        if "secret_dm_ts" in refs and "scrubbed" not in refs:
            text, blocks = views.scrubbed_dm(request)
            self._call(
                "chat_update", channel=refs["secret_dm_channel"], ts=refs["secret_dm_ts"], text=text, blocks=blocks
            )
            self.store.set_slack_refs(request.id, scrubbed="1")

    def send_files(self, user: str, paths: Sequence[Path], comment: str) -> None:
        """Files in the person's DM with the app (conversations.open gives the DM's channel id)."""
        channel = self._call("conversations_open", users=user)["channel"]["id"]
        uploads = [{"file": str(path), "title": path.name} for path in paths]
        self._call("files_upload_v2", channel=channel, file_uploads=uploads, initial_comment=comment)

    def raise_alert(self, request: AccessRequest, channel: str, failures: dict[str, str]) -> None:
        """Post the revocation alert once; its reference is kept so that recovery can edit it."""
        if "alert_ts" in self.store.slack_refs(request.id):
            return
        answer = self._call("chat_postMessage", channel=channel, text=views.revocation_alert(request, failures))
        self.store.set_slack_refs(request.id, alert_channel=answer["channel"], alert_ts=answer["ts"])

    def resolve_alert(self, request: AccessRequest) -> None:
        refs = self.store.slack_refs(request.id)
        if "alert_ts" in refs and "alert_resolved" not in refs:
            attempts = self.store.revocation_failures(request.id).get("count", "several")
            text = views.revocation_recovered(request, attempts)
            self._call("chat_update", channel=refs["alert_channel"], ts=refs["alert_ts"], text=text, blocks=[])
            self.store.set_slack_refs(request.id, alert_resolved="1")

    def ephemeral(self, channel: str, user: str, text: str) -> None:
        self._call("chat_postEphemeral", channel=channel, user=user, text=text)

    def group_members(self, groups: Iterable[str]) -> dict[str, frozenset[str]]:
        """Members of each user group, asked now (membership can change after a message was posted)."""
        return {group: frozenset(self._call("usergroups_users_list", usergroup=group)["users"]) for group in groups}

    def _call(self, method: str, **params: Any) -> Any:
        try:
            return getattr(self.client, method)(**params)
        except SlackApiError as error:
            code = error.response.get("error", "unknown") if error.response is not None else "unknown"
            metrics.count_slack_error(self.store.redis, method.replace("_", ".", 1), code)
            raise NotifyError(f"Slack {method.replace('_', '.', 1)} failed: {code}") from None
        except SlackClientError as error:
            metrics.count_slack_error(self.store.redis, method.replace("_", ".", 1), type(error).__name__)
            raise NotifyError(f"Slack {method.replace('_', '.', 1)} failed: {type(error).__name__}") from None
