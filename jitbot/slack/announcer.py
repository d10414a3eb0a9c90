"""jitbot's messages in channels, each posted once and kept current: approval messages (or, when many requests wait in
one channel, digests of them), their extension replies and escalations, the break-glass and revocation alerts.

Each is kept by its message references in the store, and a lock or a turn per request (or per channel, for digests)
makes sure two jobs never post it twice. Every Slack call goes through the Notifier's one choke point
(jitbot.slack.notify), paced and with its errors told as NotifyError.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from jitbot.core.catalog import Catalog, Resource
from jitbot.core.domain import AccessRequest, Status
from jitbot.core.policy import escalation_list, find_resource
from jitbot.slack import alerts, approval, views
from jitbot.slack.notify import ANNOUNCE_LOCK, Notifier, NotifyError

ANNOUNCE_WAIT = timedelta(seconds=3)  # for the job posting in the channel (or editing the digest): a paced call's time
# More requests than this waiting to be announced in one channel go out together, in one digest: Slack posts about
# one message a second per channel (https://docs.slack.dev/apis/web-api/rate-limits, "Posting messages"), so 300
# requests in a minute, one message each, would take five minutes to reach the approvers however they are paced.
FOLD_OVER = 3
WAITING_SCAN = 500  # the newest undecided requests looked through for those waiting: ~20 s of a 1,500-a-minute burst


class Announcer:
    def __init__(self, notifier: Notifier, catalog: Catalog | None = None) -> None:
        """On the notifier's calls and store. `catalog`: with it, requests waiting together in one channel are folded
        into digests (it names their resources); None (the web process, JITBOT_SLACK_PACING=0): each is announced in
        a message of its own."""
        self.notifier = notifier
        self.store = notifier.store
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
            self.notifier.call(
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
            answer = self.notifier.call("chat_postMessage", channel=resource.channel, text=text, blocks=blocks)
            self.store.slack.show_digest(answer["channel"], answer["ts"], {r.id: r.version for r in waiting})
            return
        text, blocks = approval.approval_message(request, resource)
        answer = self.notifier.call("chat_postMessage", channel=resource.channel, text=text, blocks=blocks)
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
            self.notifier.call("chat_update", channel=channel, ts=ts, text=text, blocks=blocks)
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
            self.notifier.call(
                "chat_postMessage", channel=refs["approval_channel"], thread_ts=refs["approval_ts"], text=text
            )
            self.store.slack.set_slack_refs(request.id, extension_announced="1")

    def _sync_escalation(self, request: AccessRequest, resource: Resource, refs: dict[str, str]) -> None:
        if "escalation_ts" in refs:
            text, blocks = approval.escalation_message(request, resource)
            self.notifier.call(
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
            answer = self.notifier.call(
                "chat_postMessage", channel=channel, text=f"{text} {escalation_list(resource)}", blocks=blocks
            )
            self.store.slack.set_slack_refs(
                request.id, escalation_channel=answer["channel"], escalation_ts=answer["ts"]
            )

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
                self.notifier.call(
                    "chat_update", channel=refs["review_channel"], ts=refs["review_ts"], text=text, blocks=blocks
                )
                return
            if "review_ts" in refs:  # re-alert: the old message keeps its text, the buttons move to the new one
                self.notifier.call(
                    "chat_update", channel=refs["review_channel"], ts=refs["review_ts"], text=text, blocks=blocks[:2]
                )
            answer = self.notifier.call("chat_postMessage", channel=channel, text=text, blocks=blocks)
            self.store.slack.set_slack_refs(
                request.id,
                review_channel=answer["channel"],
                review_ts=answer["ts"],
                review_alerts=review.get("alerts", "0"),
            )

    def raise_alert(self, request: AccessRequest, channel: str, failures: dict[str, str]) -> None:
        """Post the revocation alert once; its reference is kept so that recovery can edit it."""
        if "alert_ts" in self.store.slack.slack_refs(request.id):
            return
        text = alerts.revocation_alert(request, failures)
        answer = self.notifier.call("chat_postMessage", channel=channel, text=text, urgent=True)
        self.store.slack.set_slack_refs(request.id, alert_channel=answer["channel"], alert_ts=answer["ts"])

    def resolve_alert(self, request: AccessRequest) -> None:
        refs = self.store.slack.slack_refs(request.id)
        if "alert_ts" in refs and "alert_resolved" not in refs:
            attempts = self.store.failures.revocation_failures(request.id).get("count", "several")
            text = alerts.revocation_recovered(request, attempts)
            self.notifier.call("chat_update", channel=refs["alert_channel"], ts=refs["alert_ts"], text=text, blocks=[])
            self.store.slack.set_slack_refs(request.id, alert_resolved="1")
