"""Block Kit messages as pure functions of requests and `now`; user text is always escaped here."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from jitbot.catalog import Resource
from jitbot.commands import ShowList, page_value
from jitbot.domain import REFRESH_BEFORE, AccessRequest, Status
from jitbot.durations import format_duration
from jitbot.eligibility import principal
from jitbot.events import AUTO
from jitbot.policy import approver_list, escalation_list
from jitbot.review import ReviewStatus
from jitbot.slack import ids

Block = dict[str, Any]
View = dict[str, Any]
DURATION_CHOICES = ("15m", "30m", "1h", "2h", "4h", "8h", "12h", "1d", "2d", "7d")
# Slack: "You can include up to 50 blocks in each message, and 100 blocks in modals or Home tabs"
# (https://docs.slack.dev/reference/block-kit/blocks). A list entry is 2 blocks (its line and its buttons):
LIST_PAGE = 20  # a page of the list: its heading, 20 entries and the More button are 42 of a message's 50 blocks
HOME_MINE = 20  # the Home tab: 2 blocks each;
HOME_WAITING = 15  # up to 3 each; with the headings and notes at most 91 of a Home tab's 100 blocks
DIGEST_SIZE = 24  # a digest: its heading and 2 blocks a request (its lines, its buttons), 49 of a message's 50
EN_DASH = "\u2013"  # escaped, as ruff flags look-alikes in source
_LISTED = {Status.PENDING: "pending", Status.APPROVED: "being issued", Status.ACTIVE: "active"}


@dataclass(frozen=True)
class Reply:
    """An ephemeral answer to a command: text, and blocks when there is more to show than text."""

    text: str
    blocks: list[Block] | None = None


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")  # and bidi overrides
SHOWN_REASON = 300
SHOWN_FAILURE = 1000  # why jitbot could not grant: the cloud's refusal and what an admin must change, all of it


def escape(text: str, limit: int = SHOWN_REASON) -> str:
    """User text made inert: `<!channel>`, `<@U…>` and links don't ping or render; long text is cut."""
    cleaned = _CONTROL.sub("", text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return cleaned if len(cleaned) <= limit else cleaned[:limit] + "… (truncated)"


def when(moment: datetime) -> str:
    """A time every reader sees in their own time zone, with a UTC fallback."""
    epoch = int(moment.timestamp())
    return f"<!date^{epoch}^{{date_short_pretty}} {{time}}|{moment:%Y-%m-%d %H:%M} UTC>"


def request_summary(request: AccessRequest) -> str:
    return f"<@{request.requester}> asks for `{request.resource}` for {format_duration(request.duration)}"


def approval_message(request: AccessRequest, resource: Resource) -> tuple[str, list[Block]]:
    """The approver channel's message: who, what, how long, why, state, and buttons while pending."""
    kind = ":rotating_light: *Break-glass access*" if request.breakglass else "*Access request*"
    text = f"Access request {request.id}: {request_summary(request)}"
    blocks: list[Block] = [
        _section(f"{kind} `{request.id}`\n{request_summary(request)}"),
        _section(f"*Reason:* {escape(request.reason)}"),
        _context(f"Access goes to {principal(request, resource)}"),
        _context(status_line(request, resource)),
    ]
    blocks += [_context(note) for note in _notes(request, resource)]
    if _extending(request):
        blocks.append(_section(extension_line(request, resource)))
    if _awaits_decision(request):
        blocks.append(_buttons(request.id))
    return text, blocks


def digest_message(entries: Sequence[tuple[AccessRequest, Resource]]) -> tuple[str, list[Block]]:
    """Requests announced together, in one message, when they come faster than Slack lets jitbot post (about one
    message a second per channel): each says in one section what its own approval message would, with Approve and
    Deny while it awaits a decision. At most DIGEST_SIZE of them fit."""
    blocks = [_section(f"*{len(entries)} access requests* arrived together: each is approved or denied on its own.")]
    for request, resource in entries:
        lines = [
            f"*Access request* `{request.id}`: {request_summary(request)}",
            f"*Reason:* {escape(request.reason)}",
            f"Access goes to {principal(request, resource)}",
            status_line(request, resource),
            *_notes(request, resource),
        ]
        if _extending(request):
            lines.append(extension_line(request, resource))
        blocks.append(_section("\n".join(lines)))
        if _awaits_decision(request):
            blocks.append(_buttons(request.id))
    summaries = "; ".join(f"{request.id}: {request_summary(request)}" for request, _ in entries)
    return f"{len(entries)} access requests: {summaries}", blocks


def _awaits_decision(request: AccessRequest) -> bool:
    """Pending, or an extension asked: what the Approve and Deny buttons are shown for."""
    return request.status is Status.PENDING or _extending(request)


def _extending(request: AccessRequest) -> bool:
    return request.status is Status.ACTIVE and request.extend_by is not None


def _notes(request: AccessRequest, resource: Resource) -> list[str]:
    """What happens next without a decision: approval by policy at its time, the escalation already made."""
    notes = []
    if request.status is Status.PENDING and request.auto_approve_at:
        notes.append(f":alarm_clock: Approves itself {when(request.auto_approve_at)} unless denied first.")
    if request.escalated:
        notes.append(f":mega: Escalated to {escalation_list(resource)}: nobody decided in time.")
    return notes


def extension_line(request: AccessRequest, resource: Resource) -> str:
    reason = f": {escape(request.extend_reason)}" if request.extend_reason else ""
    return (
        f":hourglass_flowing_sand: *Extension asked:* {format_duration(request.extend_by or timedelta(0))} more"
        f"{reason} ({len(request.extend_approvals)} of {resource.approvals} approvals)"
    )


def status_line(request: AccessRequest, resource: Resource) -> str:
    by = decider(request)
    lines = {
        Status.PENDING: f"Waiting for approval: {len(request.approvals)} of {resource.approvals}"
        f" from {approver_list(resource)}",
        Status.APPROVED: f":white_check_mark: Approved by {by}; issuing access…",
        Status.ACTIVE: f":unlock: Approved by {by}; access granted until {when(request.expires_at)}"
        if request.expires_at
        else "",
        Status.DENIED: f":no_entry: Denied by {by}" + (f": {escape(request.note)}" if request.note else ""),
        Status.FAILED: f":x: Failed: {escape(request.note or 'unknown error')}",
        Status.EXPIRED: f":hourglass: Approved by {by}; expired, access removed"
        if request.granted_at
        else ":hourglass: Expired before anyone decided",
        Status.REVOKED: f":lock: Approved by {by}; revoked by {_who(request.ending_by)}, access removed",
        Status.CANCELLED: ":heavy_multiplication_x: Cancelled by the requester",
    }
    stamp = f" ({when(request.decided_at)})" if request.decided_at and request.status is not Status.PENDING else ""
    return lines[request.status] + stamp


def decider(request: AccessRequest) -> str:
    if request.breakglass:
        return "break-glass (no approval)"
    if request.decided_by not in (None, AUTO):
        return f"<@{request.decided_by}>"
    return "policy" if request.status is Status.DENIED else "policy (auto-approve)"


def _who(user: str | None) -> str:
    return f"<@{user}>" if user and user != AUTO else AUTO


def request_received(request: AccessRequest, resource: Resource) -> str:
    if request.status is not Status.PENDING:
        return f"Request `{request.id}` for `{resource.name}` is approved by policy; your access is on its way by DM."
    later = (
        f" If nobody decides, it approves itself {when(request.auto_approve_at)}." if request.auto_approve_at else ""
    )
    return (
        f"Request `{request.id}` for `{resource.name}` ({format_duration(request.duration)}) is waiting for"
        f" {approver_list(resource)}.{later} I'll DM you the outcome."
    )


def credentials_dm(
    request: AccessRequest, fields: Mapping[str, str], access: Mapping[str, str]
) -> tuple[str, list[Block]]:
    """The access itself: AWS keys as shell exports and a profile, or what a cloud now lets this person do."""
    expires = when(request.expires_at) if request.expires_at else "the end of the grant"
    if not fields:
        head = f":unlock: Access to `{request.resource}` granted (`{request.id}`) until {expires}."
        lines = "\n".join(f"*{escape(label)}:* {escape(value)}" for label, value in access.items())
        return head, [_section(head), _section(lines or "The access is active in the cloud.")]
    exports = "\n".join(f"export {name}={value}" for name, value in fields.items())
    # ~/.aws/credentials holds keys only; the region belongs in ~/.aws/config or AWS_REGION
    profile = {name: value for name, value in fields.items() if name != "AWS_REGION"}
    profile_lines = [f"[jit-{request.resource}]"] + [f"{name.lower()} = {value}" for name, value in profile.items()]
    if "AWS_REGION" in fields:
        profile_lines.append(f"# region: {fields['AWS_REGION']} (~/.aws/config, or AWS_REGION)")
    head = f":key: Access to `{request.resource}` granted (`{request.id}`) until {expires}."
    blocks = [
        _section(head),
        _section(f"```{exports}```"),
        _section("Or as a profile in `~/.aws/credentials`:\n```" + "\n".join(profile_lines) + "```"),
        _context(credentials_note(request)),
    ]
    return head, blocks


def credentials_note(request: AccessRequest) -> str:
    """How long the keys in the DM last: the grant, or (AWS role chaining) an hour, renewed by DM before then."""
    if request.refresh_at is None:
        return "These credentials are removed from this message when the grant ends."
    return f"These credentials end {when(request.refresh_at + REFRESH_BEFORE)}: fresh ones come by DM before then."


def scrubbed_dm(request: AccessRequest) -> tuple[str, list[Block]]:
    text = f":lock: Access to `{request.resource}` (`{request.id}`) has ended; its credentials were removed."
    return text, [_section(text)]


def outcome_dm(request: AccessRequest) -> str:
    """The requester's DM for every outcome except the grant itself (which carries the access)."""
    by = f" by <@{request.decided_by}>" if request.decided_by not in (None, AUTO) else ""
    why = f" Reason: {escape(request.note)}" if request.note else ""
    failure = escape(request.note or "unknown", SHOWN_FAILURE)
    texts = {
        Status.APPROVED: f":white_check_mark: `{request.id}` for `{request.resource}` was approved{by}; issuing…",
        Status.DENIED: f":no_entry: `{request.id}` for `{request.resource}` was denied{by}.{why}",
        Status.FAILED: f":x: `{request.id}` for `{request.resource}` failed: {failure}",
        Status.EXPIRED: f":hourglass: Your access to `{request.resource}` (`{request.id}`) has expired.",
        Status.REVOKED: f":lock: Your access to `{request.resource}` (`{request.id}`) was revoked"
        f" by {_who(request.ending_by)}.",
        Status.CANCELLED: f":heavy_multiplication_x: `{request.id}` for `{request.resource}` was cancelled.",
    }
    if request.status is Status.EXPIRED and not request.granted_at:
        return f":hourglass: `{request.id}` for `{request.resource}` expired before anyone decided."
    return texts.get(request.status, f"`{request.id}` is now {request.status}.")


def revocation_alert(request: AccessRequest, failures: dict[str, str]) -> str:
    """The alert channel's message while revoking a grant keeps failing; the grant is still live."""
    due = when(request.expires_at) if request.expires_at else "now"
    cloud = request.provider or "cloud"
    return (
        f":rotating_light: *Revoking `{request.id}` keeps failing.* `{request.resource}` ({cloud})"
        f" for <@{request.requester}>, due {due}: {failures.get('count', '?')} attempts so far."
        f" Last error: {escape(failures.get('last_error', '?'))}\n"
        "The grant is still live. jitbot keeps retrying with backoff and will update this message when it is cut."
    )


def drift_alert(kept: Sequence[tuple[str, str, str]], unreadable: Sequence[tuple[str, str]], every: timedelta) -> str:
    """The alert channel's message when the drift scan finds access it could not take away, or a cloud it could
    not look at. `kept`: (resource, what, why); `unreadable`: (resource, why)."""
    lines = [":rotating_light: *Access jitbot made is still in the clouds, and no live grant explains it.*"]
    lines += [f"• `{resource}`: {escape(what)} — not removed: {escape(why)}" for resource, what, why in kept]
    lines += [f"• `{resource}`: could not be scanned: {escape(why)}" for resource, why in unreadable]
    lines.append(f"jitbot tries again every {format_duration(every)}; `jitbot reconcile --clouds` tries now.")
    return "\n".join(lines)


def revocation_recovered(request: AccessRequest, attempts: str) -> str:
    return (
        f":white_check_mark: *Resolved:* `{request.id}` (`{request.resource}`, <@{request.requester}>)"
        f" is now {request.status}: revoked after {attempts} failed attempts."
    )


def _section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


def _buttons(request_id: str) -> Block:
    return {
        "type": "actions",
        "block_id": f"decide-{request_id}",
        "elements": [
            _button("Approve", ids.APPROVE, request_id, "primary"),
            _button("Deny", ids.DENY, request_id, "danger"),
        ],
    }


def offer_line(resources: Sequence[Resource]) -> str:
    """What this person may ask for, in one line; saying so when that is nothing."""
    if not resources:
        return "You may not ask for any resource here. Ask an admin if you need access."
    return "You may ask for: " + ", ".join(f"`{r.name}`" for r in resources) + "."


def resources_list(resources: Sequence[Resource]) -> Reply:
    """`/access resources`: only what the person may ask for."""
    if not resources:
        return Reply(offer_line(resources))
    lines = ["*What you can ask for* (`/access request <resource> <duration> <reason>`)"]
    for resource in resources:
        lines.append(f"• `{resource.name}` ({resource.provider}): {escape(resource.description) or 'no description'}")
        lines.append(f"    {resource_terms(resource)}")
    return Reply("\n".join(lines))


def resource_terms(resource: Resource) -> str:
    bounds = f"{format_duration(resource.min_duration)} to {format_duration(resource.max_duration)}"
    if resource.auto_approve_up_to == resource.max_duration:
        who = "approved by policy"
    else:
        who = f"approved by {approver_list(resource)}" + (
            " (" + str(resource.approvals) + " needed)" if resource.approvals > 1 else ""
        )
        if resource.auto_approve_up_to:
            who += f"; by policy up to {format_duration(resource.auto_approve_up_to)}"
        if resource.auto_approve_after:
            who += f"; by policy after {format_duration(resource.auto_approve_after)} without an answer"
    rule = f"; reason like `{escape(resource.reason.example)}`" if resource.reason.example else ""
    glass = "; break-glass allowed" if resource.breakglass else ""
    return f"{bounds}, {who}{rule}{glass}"


def request_list(requests: Sequence[AccessRequest], viewer: str, now: datetime, page: ShowList) -> Reply:
    """`/access list` (and `list all`): a page of entries with the buttons the viewer may use, the totals, and a
    More button while entries remain: the whole list of a busy incident does not fit in one message."""
    whose = "Everyone's" if page.everyone else "Your"
    if not requests:
        return Reply(f"{whose} pending requests and active grants: none.")
    start = min(page.offset, (len(requests) - 1) // LIST_PAGE * LIST_PAGE)  # the list may have shrunk since
    shown = requests[start : start + LIST_PAGE]
    totals = f"showing {start + 1}{EN_DASH}{start + len(shown)} of {len(requests)}: {list_totals(requests)}"
    blocks: list[Block] = [_section(f"*{whose} pending requests and active grants*, {totals}")]
    for request in shown:
        blocks += request_entry(request, viewer, now)
    left = len(requests) - start - len(shown)
    if left:
        more = _button(f"More ({left} left)", ids.MORE, page_value(replace(page, offset=start + len(shown))))
        blocks.append({"type": "actions", "block_id": "list-more", "elements": [more]})
    return Reply(f"{whose} pending requests and active grants: {totals}", blocks)


def list_totals(requests: Sequence[AccessRequest]) -> str:
    """How many of each kind, e.g. `60 pending, 60 active`."""
    counts = Counter(request.status for request in requests)
    return ", ".join(f"{counts[status]} {label}" for status, label in _LISTED.items() if counts[status])


def request_entry(request: AccessRequest, viewer: str, now: datetime) -> list[Block]:
    who = "" if request.requester == viewer else f" for <@{request.requester}>"
    if request.status is Status.ACTIVE:
        state = f"active, {format_duration(request.time_left(now))} left (until {when(request.expires_at or now)})"
    elif request.status is Status.APPROVED:
        state = "approved, issuing"
    else:
        state = f"waiting for approval ({len(request.approvals)} so far), asked {when(request.created_at)}"
    entry = [_section(f"`{request.id}` `{request.resource}`{who}: {state}\n_{escape(request.reason, 120)}_")]
    buttons = []
    if request.status is Status.PENDING and request.requester == viewer:
        buttons.append(_button("Cancel", ids.CANCEL, request.id))
    if request.status is Status.ACTIVE:
        if request.requester == viewer and not request.extend_by:
            buttons.append(_button("Extend", ids.EXTEND, request.id))
        buttons.append(_button("End now", ids.END_NOW, request.id, "danger"))
    if buttons:
        entry.append({"type": "actions", "block_id": f"entry-{request.id}", "elements": buttons})
    return entry


def home(
    viewer: str,
    mine: Sequence[AccessRequest],
    waiting: Sequence[AccessRequest],
    now: datetime,
    offered: Sequence[Resource] | None,
) -> View:
    """The App Home tab: my grants and requests, what I may ask for (None: Slack could not say just now); for
    approvers, what waits for them, with Approve / Deny."""
    blocks: list[Block] = [{"type": "header", "text": {"type": "plain_text", "text": "Your access"}}]
    if offered is None:
        blocks.append(_context("What you may ask for could not be checked just now; `/access resources` tells."))
    else:
        blocks.append(_context(offer_line(offered)))
    if not mine:
        blocks.append(_context("Nothing active or pending. Ask with `/access request`."))
    for request in mine[:HOME_MINE]:
        blocks += request_entry(request, viewer, now)
    blocks += _more_note(len(mine) - HOME_MINE, "`/access list` pages through them")
    if waiting:
        blocks.append({"type": "header", "text": {"type": "plain_text", "text": "Waiting for you"}})
        for request in waiting[:HOME_WAITING]:
            blocks += _waiting_entry(request)
        blocks += _more_note(len(waiting) - HOME_WAITING, "`/access list all` pages through everyone's")
    blocks.append(_context(f"Updated {when(now)}"))
    return {"type": "home", "blocks": blocks}


def _waiting_entry(request: AccessRequest) -> list[Block]:
    entry = [_section(f"`{request.id}` {request_summary(request)}\n_{escape(request.reason, 120)}_")]
    if request.status is Status.ACTIVE and request.extend_by:
        entry.append(_context(f"Extension: {format_duration(request.extend_by)} more"))
    return [*entry, _buttons(request.id)]


def _more_note(left: int, where: str) -> list[Block]:
    """Said where the Home tab stops short: it holds 100 blocks, and a busy day holds more."""
    return [_context(f"… and {left} more: {where}.")] if left > 0 else []


def request_form(resources: Iterable[Resource]) -> View:
    """The `/access request` modal: resource, duration and reason; checked on submit, errors on the field."""
    options = [_option(r.name, r.description or r.provider) for r in resources]
    durations = [_option(d) for d in DURATION_CHOICES]
    return {
        "type": "modal",
        "callback_id": ids.REQUEST_FORM,
        "title": {"type": "plain_text", "text": "Request access"},
        "submit": {"type": "plain_text", "text": "Request"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            _input(ids.RESOURCE_INPUT, "Resource", {"type": "static_select", "options": options[:100]}),
            _input(ids.DURATION_INPUT, "For how long", {"type": "static_select", "options": durations}),
            _reason_input("Why (a ticket, an incident…)", optional=False),
        ],
    }


def extend_form(request: AccessRequest) -> View:
    return {
        "type": "modal",
        "callback_id": ids.EXTEND_FORM,
        "private_metadata": request.id,
        "title": {"type": "plain_text", "text": "Extend access"},
        "submit": {"type": "plain_text", "text": "Ask"},
        "blocks": [
            _section(f"`{request.id}` `{request.resource}`, until {when(request.expires_at or request.created_at)}"),
            _input(
                ids.DURATION_INPUT,
                "How much more",
                {"type": "static_select", "options": [_option(d) for d in DURATION_CHOICES]},
            ),
            _reason_input("Why (optional)", optional=True),
        ],
    }


def deny_form(request: AccessRequest) -> View:
    what = "the extension of" if request.status is Status.ACTIVE else ""
    return {
        "type": "modal",
        "callback_id": ids.DENY_FORM,
        "private_metadata": request.id,
        "title": {"type": "plain_text", "text": "Deny"},
        "submit": {"type": "plain_text", "text": "Deny"},
        "blocks": [
            _section(f"Deny {what} `{request.id}`: {request_summary(request)}"),
            _reason_input("Reason, sent to the requester (optional)", optional=True),
        ],
    }


def expiring_dm(request: AccessRequest, now: datetime) -> tuple[str, list[Block]]:
    text = (
        f":hourglass_flowing_sand: Your access to `{request.resource}` (`{request.id}`) ends in"
        f" {format_duration(request.time_left(now))}, {when(request.expires_at or now)}."
    )
    buttons = [
        _button("Extend", ids.EXTEND, request.id, "primary"),
        _button("End now", ids.END_NOW, request.id, "danger"),
    ]
    return text, [_section(text), {"type": "actions", "block_id": f"expiring-{request.id}", "elements": buttons}]


def extended_dm(request: AccessRequest) -> str:
    until = when(request.expires_at or request.created_at)
    return f":hourglass: Your access to `{request.resource}` (`{request.id}`) now runs until {until}."


def revocation_deferred(request: AccessRequest, error: str) -> str:
    return f":hourglass: Ending your access to `{request.resource}` (`{request.id}`) has to wait: {escape(error)}"


def extension_denied(request: AccessRequest, by: str) -> str:
    why = f" Reason: {escape(request.note)}" if request.note else ""
    until = when(request.expires_at or request.created_at)
    return f":no_entry: {_who(by)} denied extending `{request.id}` (`{request.resource}`); it still ends {until}.{why}"


def extension_timed_out(request: AccessRequest) -> str:
    until = when(request.expires_at or request.created_at)
    return (
        f":hourglass: Nobody decided in time on extending `{request.id}` (`{request.resource}`);"
        f" it still ends {until}. Ask again with `/access extend {request.id} <duration>` if you still need it."
    )


def renewal_failed(request: AccessRequest, error: str) -> str:
    return (
        f":warning: The extension of `{request.id}` could not be applied in {request.provider or 'the cloud'}:"
        f" {escape(error)}. Your access may end at its earlier time; ask again or request anew."
    )


def escalation_message(request: AccessRequest, resource: Resource) -> tuple[str, list[Block]]:
    text, blocks = approval_message(request, resource)
    head = _section(f":mega: *Escalated* to {escalation_list(resource)}: nobody decided on `{request.id}` in time.")
    return "Escalated: " + text, [head, *blocks]


def extension_asked(request: AccessRequest, resource: Resource) -> str:
    """The reply in the approval message's thread that tells the approvers an extension waits for them."""
    reason = f": _{escape(request.extend_reason)}_" if request.extend_reason else ""
    return (
        f"{approver_list(resource)}: <@{request.requester}> asks for"
        f" {format_duration(request.extend_by or timedelta(0))} more on `{request.id}` (`{request.resource}`){reason}."
        " Approve or Deny on the message above."
    )


def breakglass_alert(request: AccessRequest, review: Mapping[str, str]) -> tuple[str, list[Block]]:
    """The alert channel's message for a break-glass grant: loud, with the review buttons until reviewed."""
    text = (
        f":rotating_light: <!here> *Break-glass access* `{request.id}`: <@{request.requester}> took"
        f" `{request.resource}` for {format_duration(request.duration)} without approval."
    )
    blocks: list[Block] = [_section(text), _section(f"*Reason:* {escape(request.reason)}")]
    status = review.get("status", ReviewStatus.OPEN)
    if status == ReviewStatus.OPEN:
        alerts = int(review.get("alerts", "0"))
        note = f" Reminder {alerts}." if alerts else ""
        blocks.append(_context(f"Needs an after-the-fact review by someone other than <@{request.requester}>.{note}"))
        blocks.append(
            {
                "type": "actions",
                "block_id": f"review-{request.id}",
                "elements": [
                    _button("Acknowledge", ids.ACKNOWLEDGE, request.id, "primary"),
                    _button("Flag", ids.FLAG, request.id, "danger"),
                ],
            }
        )
    else:
        icon = ":white_check_mark:" if status == ReviewStatus.ACKNOWLEDGED else ":triangular_flag_on_post:"
        blocks.append(
            _context(f"{icon} Review: {status} by <@{review.get('by', '?')}> ({review.get('at', '')[:16]} UTC)")
        )
    return text, blocks


def _button(label: str, action_id: str, value: str, style: str | None = None) -> Block:
    button: Block = {
        "type": "button",
        "text": {"type": "plain_text", "text": label},
        "action_id": action_id,
        "value": value,
    }
    if style:
        button["style"] = style
    return button


def _option(value: str, description: str = "") -> Block:
    option: Block = {"text": {"type": "plain_text", "text": value[:75]}, "value": value}
    if description:
        option["description"] = {"type": "plain_text", "text": description[:75]}
    return option


def _input(block_id: str, label: str, element: Block, optional: bool = False) -> Block:
    return {
        "type": "input",
        "block_id": block_id,
        "optional": optional,
        "label": {"type": "plain_text", "text": label},
        "element": {**element, "action_id": block_id},
    }


def _reason_input(label: str, optional: bool) -> Block:
    element = {"type": "plain_text_input", "multiline": True, "max_length": 500}
    return _input(ids.REASON_INPUT, label, element, optional)


def announcement_blocked(request: AccessRequest, channel: str, fix: str) -> str:
    """The requester's DM when their request cannot reach its approvers until an admin fixes Slack."""
    return (
        f":warning: Your request `{request.id}` for `{request.resource}` is waiting: jitbot cannot post it in"
        f" <#{channel}> for the approvers. An admin must {fix}. It will be announced as soon as that is done;"
        " you don't need to ask again."
    )


def slack_misconfigured(channel: str, code: str, fix: str, waiting: str = "") -> str:
    """The alert (or admins' DM) naming what an admin must change in Slack; `waiting` says what is held up."""
    held = f" {waiting}" if waiting else ""
    return f":warning: *jitbot cannot post in <#{channel}>* (Slack says `{code}`).{held} To fix it: {fix}."
