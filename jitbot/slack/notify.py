"""What jitbot says in Slack on its own initiative: approval messages kept current, DMs, ephemerals.

Every call goes through one WebClient that retries connection errors and 429s and, in a worker, waits first for
its turn under Slack's rate limits (jitbot.slack.pacing): the calls that deliver or take away access are urgent.
Slack errors leave here as NotifyError carrying only Slack's error code — never the request body, which may hold a
secret.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
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

from jitbot.core.catalog import Catalog, Resource
from jitbot.core.domain import AccessRequest, Status
from jitbot.core.errors import MessengerError
from jitbot.core.policy import escalation_list, find_resource
from jitbot.core.redaction import Credentials
from jitbot.slack import alerts, approval, dms, views
from jitbot.slack.pacing import Pacer
from jitbot.store import Store

ANNOUNCE_LOCK = timedelta(seconds=30)
ANNOUNCE_WAIT = timedelta(seconds=3)  # for the job posting in the channel (or editing the digest): a paced call's time
# More requests than this waiting to be announced in one channel go out together, in one digest: Slack posts about
# one message a second per channel (https://docs.slack.dev/apis/web-api/rate-limits, "Posting messages"), so 300
# requests in a minute, one message each, would take five minutes to reach the approvers however they are paced.
FOLD_OVER = 3
WAITING_SCAN = 500  # the newest undecided requests looked through for those waiting: ~20 s of a 1,500-a-minute burst
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
    def __init__(
        self, client: WebClient, store: Store, pacer: Pacer | None = None, catalog: Catalog | None = None
    ) -> None:
        """`pacer`: a worker's calls wait for their turn under Slack's limits; None (the web process) calls at once.
        `catalog`: with it, requests waiting together in one channel are folded into digests (it names their
        resources); None (the web process, JITBOT_SLACK_PACING=0): each is announced in a message of its own."""
        self.client = client
        self.store = store
        self.pacer = pacer
        self.catalog = catalog

    def sync_approval_message(self, request: AccessRequest, resource: Resource) -> None:
        """Post the approval message once — or, when many wait in its channel, one digest for them all — then keep
        it showing the request's current state."""
        refs = self.store.slack.slack_refs(request.id)
        if "approval_ts" not in refs:
            self._announce(request, resource, refs)
            return
        if "digest" in refs:
            self._sync_digest(request, refs["approval_channel"], refs["approval_ts"])
        else:
            text, blocks = approval.approval_message(request, resource)
            self._call(
                "chat_update", channel=refs["approval_channel"], ts=refs["approval_ts"], text=text, blocks=blocks
            )
        self._announce_extension(request, resource, refs)
        self._sync_escalation(request, resource, refs)

    def _announce(self, request: AccessRequest, resource: Resource, refs: dict[str, str]) -> None:
        """Post the approval message, once. With digests, one job at a time per channel posts what waits there, so
        that no request goes into two messages; the others wait their turn (by then their request may be posted).
        Without digests, one job at a time per request."""
        with self._turn(f"announce-in:{resource.channel}" if self.catalog else f"announce:{request.id}"):
            posted = self.store.slack.slack_refs(request.id)
            if "approval_ts" not in posted:
                self._post_waiting(request, resource)
        if "approval_ts" in posted and "digest" not in posted:
            return  # another job of this request posted it, and showed its latest state
        if "digest" in posted:  # folded meanwhile by another request's job: brought up to date there
            self.sync_approval_message(request, resource)
            return
        latest = self.store.requests.get(request.id)
        if latest.version != request.version:
            self.sync_approval_message(latest, resource)
            return
        self._sync_escalation(request, resource, refs)

    def _post_waiting(self, request: AccessRequest, resource: Resource) -> None:
        """The request's own approval message or, more than FOLD_OVER waiting in its channel, one digest of the
        oldest of them, this one included."""
        waiting = self._waiting(request, resource)
        if len(waiting) > FOLD_OVER:
            text, blocks = self._digest_message(waiting)
            answer = self._call("chat_postMessage", channel=resource.channel, text=text, blocks=blocks)
            self.store.slack.show_digest(answer["channel"], answer["ts"], {r.id: r.version for r in waiting})
            return
        text, blocks = approval.approval_message(request, resource)
        answer = self._call("chat_postMessage", channel=resource.channel, text=text, blocks=blocks)
        self.store.slack.set_slack_refs(request.id, approval_channel=answer["channel"], approval_ts=answer["ts"])

    def _waiting(self, request: AccessRequest, resource: Resource) -> list[AccessRequest]:
        """What a digest would carry: `request` and the oldest others waiting in its channel, as many as fit. Only
        pending requests are folded together (an approved one is announced as approved, on its own)."""
        if self.catalog is None or request.status is not Status.PENDING:
            return [request]
        names = {r.name for r in self.catalog.resources.values() if r.channel == resource.channel}
        others = [r for r in self.store.slack.unannounced(names, WAITING_SCAN) if r.id != request.id]
        return [request, *others[: approval.DIGEST_SIZE - 1]]

    def _sync_digest(self, request: AccessRequest, channel: str, ts: str) -> None:
        """Re-render the digest from every request it carries, as each is now, in one edit; nothing if it shows
        `request` as it is already. Every one of its requests' jobs comes here: the first edit shows them all, and
        the others' jobs find their state shown instead of editing the message once each."""
        if self.store.slack.digest(channel, ts).get(request.id, -1) >= request.version:
            return
        with self._turn(f"digest:{channel}:{ts}"):  # after the holder's edit, this state may be shown already
            shown = self.store.slack.digest(channel, ts)
            if shown.get(request.id, -1) >= request.version:
                return
            carried = self.store.requests.many(list(shown))
            text, blocks = self._digest_message(carried)
            self._call("chat_update", channel=channel, ts=ts, text=text, blocks=blocks)
            self.store.slack.show_digest(channel, ts, {r.id: r.version for r in carried})

    @contextmanager
    def _turn(self, scope: str) -> Iterator[None]:
        """One job at a time in `scope`, across workers; one that waits ANNOUNCE_WAIT for its turn fails (and is
        retried) rather than hold its worker longer."""
        try:
            with self.store.locks.serial(scope, ANNOUNCE_LOCK, ANNOUNCE_WAIT):
                yield
        except TimeoutError:
            raise NotifyError(f"{scope} stayed busy for {ANNOUNCE_WAIT.total_seconds():g} s") from None

    def _digest_message(self, requests: list[AccessRequest]) -> tuple[str, list[views.Block]]:
        """The digest of `requests`, in the order they were made."""
        catalog = self.catalog
        assert catalog is not None, "a digest is posted only with a catalog"
        ordered = sorted(requests, key=lambda r: (r.created_at, r.id))
        return approval.digest_message([(r, find_resource(catalog, r.resource)) for r in ordered])

    def _announce_extension(self, request: AccessRequest, resource: Resource, refs: dict[str, str]) -> None:
        """An extension asked for edits the approval message, which notifies nobody: a reply in its thread
        mentions the approvers, once per ask (the mark goes when the ask is decided, so the next one is told)."""
        asked = request.status is Status.ACTIVE and request.extend_by is not None
        if not asked:
            if "extension_announced" in refs:
                self.store.slack.drop_slack_refs(request.id, "extension_announced")
            return
        with self.store.locks.lock(f"extension:{request.id}", ANNOUNCE_LOCK) as mine:
            if not mine or "extension_announced" in self.store.slack.slack_refs(request.id):
                return
            text = approval.extension_asked(request, resource)
            self._call("chat_postMessage", channel=refs["approval_channel"], thread_ts=refs["approval_ts"], text=text)
            self.store.slack.set_slack_refs(request.id, extension_announced="1")

    def _sync_escalation(self, request: AccessRequest, resource: Resource, refs: dict[str, str]) -> None:
        if "escalation_ts" in refs:
            text, blocks = approval.escalation_message(request, resource)
            self._call(
                "chat_update", channel=refs["escalation_channel"], ts=refs["escalation_ts"], text=text, blocks=blocks
            )

    def post_escalation(self, request: AccessRequest, resource: Resource) -> None:
        """Re-announce an undecided request to the escalation approvers: in their channel if one is named, else
        in the approvers' channel, mentioning them; once."""
        channel = next((t for t in resource.escalate_to if t[0] in "CG"), resource.channel)
        with self.store.locks.lock(f"escalate:{request.id}", ANNOUNCE_LOCK) as mine:
            if not mine or "escalation_ts" in self.store.slack.slack_refs(request.id):
                return
            text, blocks = approval.escalation_message(request, resource)
            answer = self._call(
                "chat_postMessage", channel=channel, text=f"{text} {escalation_list(resource)}", blocks=blocks
            )
            self.store.slack.set_slack_refs(
                request.id, escalation_channel=answer["channel"], escalation_ts=answer["ts"]
            )

    def tell_requester(self, request: AccessRequest) -> None:
        """The outcome DM, once per outcome (marked after sending: a retry may repeat, never lose it)."""
        if request.status not in OUTCOMES:
            return
        marker = f"told_{request.status}"
        with self.store.locks.lock(f"tell:{request.id}", ANNOUNCE_LOCK) as mine:  # two sync jobs at once: one DM
            if not mine or marker in self.store.slack.slack_refs(request.id):
                return  # the holder sends it; if it fails, its job is retried
            self._call("chat_postMessage", channel=request.requester, text=dms.outcome_dm(request), urgent=True)
            self.store.slack.set_slack_refs(request.id, **{marker: "1"})

    def send_access(self, request: AccessRequest, credentials: Credentials, access: dict[str, str]) -> None:
        """The DM that carries the access. A renewal replaces the earlier one, whose secrets are scrubbed first."""
        self.scrub_credentials(request)
        text, blocks = dms.credentials_dm(request, credentials.fields(), access)
        answer = self._call("chat_postMessage", channel=request.requester, text=text, blocks=blocks, urgent=True)
        self.store.slack.set_slack_refs(request.id, secret_dm_channel=answer["channel"], secret_dm_ts=answer["ts"])
        self.store.slack.drop_slack_refs(request.id, "scrubbed")

    def remind(self, request: AccessRequest, now: datetime) -> None:
        """The expiring-soon DM with Extend and End now, once per expiry (an extension earns a new one)."""
        marker = f"reminded_{int((request.expires_at or now).timestamp())}"
        with self.store.locks.lock(f"remind:{request.id}", ANNOUNCE_LOCK) as mine:
            if not mine or marker in self.store.slack.slack_refs(request.id):
                return
            text, blocks = dms.expiring_dm(request, now)
            self._call("chat_postMessage", channel=request.requester, text=text, blocks=blocks)
            self.store.slack.set_slack_refs(request.id, **{marker: "1"})

    def sync_review_alert(self, request: AccessRequest, channel: str) -> None:
        """The break-glass alert: posted once, re-posted (loudly, buttons moved to the new one) each time the
        review is re-alerted, and edited to show the outcome once reviewed."""
        review = self.store.reviews.review(request.id)
        text, blocks = alerts.breakglass_alert(request, review)
        with self.store.locks.lock(f"review:{request.id}", ANNOUNCE_LOCK) as mine:
            if not mine:
                raise NotifyError("another worker is updating this alert")  # retried: it must show the latest
            refs = self.store.slack.slack_refs(request.id)
            posted = int(refs.get("review_alerts", "-1"))
            if "review_ts" in refs and posted >= int(review.get("alerts", "0")):
                self._call(
                    "chat_update", channel=refs["review_channel"], ts=refs["review_ts"], text=text, blocks=blocks
                )
                return
            if "review_ts" in refs:  # re-alert: the old message keeps its text, the buttons move to the new one
                self._call(
                    "chat_update", channel=refs["review_channel"], ts=refs["review_ts"], text=text, blocks=blocks[:2]
                )
            answer = self._call("chat_postMessage", channel=channel, text=text, blocks=blocks)
            self.store.slack.set_slack_refs(
                request.id,
                review_channel=answer["channel"],
                review_ts=answer["ts"],
                review_alerts=review.get("alerts", "0"),
            )

    def user_info(self, user: str) -> dict[str, Any]:
        """users.info's `user`: the flags that say guest, bot, deleted; the team; the profile (its email needs the
        users:read.email scope)."""
        return dict(self._call("users_info", user=user)["user"])

    def installation(self) -> tuple[str, str | None]:
        """auth.test: the workspace id and, in an Enterprise Grid organisation, the organisation's id."""
        answer = self._call("auth_test")
        return str(answer["team_id"]), answer.get("enterprise_id") or None

    def tell(self, channel: str, text: str, blocks: list[views.Block] | None = None) -> None:
        """A message, plain unless given blocks: to a user id (a DM) or a channel id."""
        self._call("chat_postMessage", channel=channel, text=text, blocks=blocks)

    def open_view(self, trigger_id: str, view: dict[str, Any]) -> None:
        self._call("views_open", trigger_id=trigger_id, view=view)

    def publish_home(self, user: str, view: dict[str, Any]) -> None:
        self._call("views_publish", user_id=user, view=view)

    def scrub_credentials(self, request: AccessRequest) -> None:
        """Edit the secret-bearing DM so that no secret stays in Slack history; safe to repeat."""
        refs = self.store.slack.slack_refs(request.id)
        if "secret_dm_ts" in refs and "scrubbed" not in refs:
            text, blocks = dms.scrubbed_dm(request)
            channel, ts = refs["secret_dm_channel"], refs["secret_dm_ts"]
            self._call("chat_update", channel=channel, ts=ts, text=text, blocks=blocks, urgent=True)
            self.store.slack.set_slack_refs(request.id, scrubbed="1")

    def send_files(self, user: str, paths: Sequence[Path], comment: str) -> None:
        """Files in the person's DM with the app (conversations.open gives the DM's channel id)."""
        channel = self._call("conversations_open", users=user)["channel"]["id"]
        uploads = [{"file": str(path), "title": path.name} for path in paths]
        self._call("files_upload_v2", channel=channel, file_uploads=uploads, initial_comment=comment)

    def raise_alert(self, request: AccessRequest, channel: str, failures: dict[str, str]) -> None:
        """Post the revocation alert once; its reference is kept so that recovery can edit it."""
        if "alert_ts" in self.store.slack.slack_refs(request.id):
            return
        text = alerts.revocation_alert(request, failures)
        answer = self._call("chat_postMessage", channel=channel, text=text, urgent=True)
        self.store.slack.set_slack_refs(request.id, alert_channel=answer["channel"], alert_ts=answer["ts"])

    def resolve_alert(self, request: AccessRequest) -> None:
        refs = self.store.slack.slack_refs(request.id)
        if "alert_ts" in refs and "alert_resolved" not in refs:
            attempts = self.store.failures.revocation_failures(request.id).get("count", "several")
            text = alerts.revocation_recovered(request, attempts)
            self._call("chat_update", channel=refs["alert_channel"], ts=refs["alert_ts"], text=text, blocks=[])
            self.store.slack.set_slack_refs(request.id, alert_resolved="1")

    def ephemeral(self, channel: str, user: str, text: str, blocks: list[views.Block] | None = None) -> None:
        self._call("chat_postEphemeral", channel=channel, user=user, text=text, blocks=blocks)

    def group_members(self, groups: Iterable[str]) -> dict[str, frozenset[str]]:
        """Members of each user group, asked now (membership can change after a message was posted)."""
        return {group: frozenset(self._call("usergroups_users_list", usergroup=group)["users"]) for group in groups}

    def _call(self, method: str, *, urgent: bool = False, **params: Any) -> Any:
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
