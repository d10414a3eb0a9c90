"""Block Kit messages as pure functions of requests and `now`; user text is always escaped here."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from jitbot.catalog import Resource
from jitbot.domain import AccessRequest, Status
from jitbot.durations import format_duration
from jitbot.policy import approver_list
from jitbot.slack import ids

Block = dict[str, Any]
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")  # and bidi overrides
SHOWN_REASON = 300


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
    text = f"Access request {request.id}: {request_summary(request)}"
    blocks: list[Block] = [
        _section(f"*Access request `{request.id}`*\n{request_summary(request)}"),
        _section(f"*Reason:* {escape(request.reason)}"),
        _context(status_line(request, resource)),
    ]
    if request.status is Status.PENDING:
        blocks.append(_buttons(request.id))
    return text, blocks


def status_line(request: AccessRequest, resource: Resource) -> str:
    by = f"<@{request.decided_by}>" if request.decided_by not in (None, "jitbot") else "policy (auto-approve)"
    lines = {
        Status.PENDING: f"Waiting for approval: {len(request.approvals)} of {resource.approvals}"
        f" from {approver_list(resource)}",
        Status.APPROVED: f":white_check_mark: Approved by {by}; issuing access…",
        Status.ACTIVE: f":unlock: Approved by {by}; access granted until {when(request.expires_at)}"
        if request.expires_at
        else "",
        Status.DENIED: f":no_entry: Denied by {by}",
        Status.FAILED: f":x: Failed: {escape(request.note or 'unknown error')}",
        Status.EXPIRED: f":hourglass: Approved by {by}; expired, access removed"
        if request.granted_at
        else ":hourglass: Expired before anyone decided",
        Status.REVOKED: f":lock: Approved by {by}; revoked, access removed",
        Status.CANCELLED: ":heavy_multiplication_x: Cancelled by the requester",
    }
    stamp = f" ({when(request.decided_at)})" if request.decided_at and request.status is not Status.PENDING else ""
    return lines[request.status] + stamp


def request_received(request: AccessRequest, resource: Resource) -> str:
    if resource.auto_approve:
        return f"Request `{request.id}` for `{resource.name}` is approved by policy; your access is on its way by DM."
    return (
        f"Request `{request.id}` for `{resource.name}` ({format_duration(request.duration)}) is waiting for"
        f" {approver_list(resource)}. I'll DM you the outcome."
    )


def credentials_dm(request: AccessRequest, fields: Mapping[str, str]) -> tuple[str, list[Block]]:
    """The one message that carries a secret: shell exports and an ~/.aws/credentials profile."""
    expires = when(request.expires_at) if request.expires_at else "the end of the grant"
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
        _context("These credentials are removed from this message when the grant ends."),
    ]
    return head, blocks


def scrubbed_dm(request: AccessRequest) -> tuple[str, list[Block]]:
    text = f":lock: Access to `{request.resource}` (`{request.id}`) has ended; its credentials were removed."
    return text, [_section(text)]


def outcome_dm(request: AccessRequest) -> str:
    """The requester's DM for every outcome except the grant itself (which carries the access)."""
    by = f" by <@{request.decided_by}>" if request.decided_by not in (None, "jitbot") else ""
    texts = {
        Status.APPROVED: f":white_check_mark: `{request.id}` for `{request.resource}` was approved{by}; issuing…",
        Status.DENIED: f":no_entry: `{request.id}` for `{request.resource}` was denied{by}.",
        Status.FAILED: f":x: `{request.id}` for `{request.resource}` failed: {escape(request.note or 'unknown')}",
        Status.EXPIRED: f":hourglass: Your access to `{request.resource}` (`{request.id}`) has expired.",
        Status.REVOKED: f":lock: Your access to `{request.resource}` (`{request.id}`) was revoked.",
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
    def button(label: str, action_id: str, style: str) -> Block:
        text = {"type": "plain_text", "text": label}
        return {"type": "button", "text": text, "action_id": action_id, "value": request_id, "style": style}

    return {
        "type": "actions",
        "block_id": f"decide-{request_id}",
        "elements": [button("Approve", ids.APPROVE, "primary"), button("Deny", ids.DENY, "danger")],
    }
