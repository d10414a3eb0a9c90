"""The approver channel's messages: one request's approval message, a digest of many, the escalation, and the
thread reply that asks for an extension; Approve and Deny while a decision is awaited."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from jitbot.core.catalog import Resource
from jitbot.core.domain import AccessRequest, Status
from jitbot.core.durations import format_duration
from jitbot.core.eligibility import principal
from jitbot.core.events import AUTO
from jitbot.core.policy import approver_list, escalation_list
from jitbot.slack.views import Block, context, decision_buttons, escape, mention, request_summary, section, when

DIGEST_SIZE = 24  # a digest: its heading and 2 blocks a request (its lines, its buttons), 49 of a message's 50


def approval_message(request: AccessRequest, resource: Resource) -> tuple[str, list[Block]]:
    """The approver channel's message: who, what, how long, why, state, and buttons while pending."""
    kind = ":rotating_light: *Break-glass access*" if request.breakglass else "*Access request*"
    text = f"Access request {request.id}: {request_summary(request)}"
    blocks: list[Block] = [
        section(f"{kind} `{request.id}`\n{request_summary(request)}"),
        section(f"*Reason:* {escape(request.reason)}"),
        context(f"Access goes to {principal(request, resource)}"),
        context(status_line(request, resource)),
    ]
    blocks += [context(note) for note in _notes(request, resource)]
    if _extending(request):
        blocks.append(section(extension_line(request, resource)))
    if _awaits_decision(request):
        blocks.append(decision_buttons(request.id))
    return text, blocks


def digest_message(entries: Sequence[tuple[AccessRequest, Resource]]) -> tuple[str, list[Block]]:
    """Requests announced together, in one message, when they come faster than Slack lets jitbot post (about one
    message a second per channel): each says in one section what its own approval message would, with Approve and
    Deny while it awaits a decision. At most DIGEST_SIZE of them fit."""
    blocks = [section(f"*{len(entries)} access requests* arrived together: each is approved or denied on its own.")]
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
        blocks.append(section("\n".join(lines)))
        if _awaits_decision(request):
            blocks.append(decision_buttons(request.id))
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
        Status.REVOKED: f":lock: Approved by {by}; revoked by {mention(request.ending_by)}, access removed",
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


def escalation_message(request: AccessRequest, resource: Resource) -> tuple[str, list[Block]]:
    text, blocks = approval_message(request, resource)
    head = section(f":mega: *Escalated* to {escalation_list(resource)}: nobody decided on `{request.id}` in time.")
    return "Escalated: " + text, [head, *blocks]


def extension_asked(request: AccessRequest, resource: Resource) -> str:
    """The reply in the approval message's thread that tells the approvers an extension waits for them."""
    reason = f": _{escape(request.extend_reason)}_" if request.extend_reason else ""
    return (
        f"{approver_list(resource)}: <@{request.requester}> asks for"
        f" {format_duration(request.extend_by or timedelta(0))} more on `{request.id}` (`{request.resource}`){reason}."
        " Approve or Deny on the message above."
    )
