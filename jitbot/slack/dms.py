"""What jitbot tells the requester directly: the request received, the credentials, every outcome, the
expiry reminder, and what became of an extension."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from jitbot.core.catalog import Resource
from jitbot.core.domain import REFRESH_BEFORE, AccessRequest, Status
from jitbot.core.durations import format_duration
from jitbot.core.events import AUTO
from jitbot.core.policy import approver_list
from jitbot.slack import ids
from jitbot.slack.views import SHOWN_FAILURE, Block, button, context, escape, mention, section, when


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
        return head, [section(head), section(lines or "The access is active in the cloud.")]
    exports = "\n".join(f"export {name}={value}" for name, value in fields.items())
    # ~/.aws/credentials holds keys only; the region belongs in ~/.aws/config or AWS_REGION
    profile = {name: value for name, value in fields.items() if name != "AWS_REGION"}
    profile_lines = [f"[jit-{request.resource}]"] + [f"{name.lower()} = {value}" for name, value in profile.items()]
    if "AWS_REGION" in fields:
        profile_lines.append(f"# region: {fields['AWS_REGION']} (~/.aws/config, or AWS_REGION)")
    head = f":key: Access to `{request.resource}` granted (`{request.id}`) until {expires}."
    blocks = [
        section(head),
        section(f"```{exports}```"),
        section("Or as a profile in `~/.aws/credentials`:\n```" + "\n".join(profile_lines) + "```"),
        context(credentials_note(request)),
    ]
    return head, blocks


def credentials_note(request: AccessRequest) -> str:
    """How long the keys in the DM last: the grant, or (AWS role chaining) an hour, renewed by DM before then."""
    if request.refresh_at is None:
        return "These credentials are removed from this message when the grant ends."
    return f"These credentials end {when(request.refresh_at + REFRESH_BEFORE)}: fresh ones come by DM before then."


def scrubbed_dm(request: AccessRequest) -> tuple[str, list[Block]]:
    text = f":lock: Access to `{request.resource}` (`{request.id}`) has ended; its credentials were removed."
    return text, [section(text)]


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
        f" by {mention(request.ending_by)}.",
        Status.CANCELLED: f":heavy_multiplication_x: `{request.id}` for `{request.resource}` was cancelled.",
    }
    if request.status is Status.EXPIRED and not request.granted_at:
        return f":hourglass: `{request.id}` for `{request.resource}` expired before anyone decided."
    return texts.get(request.status, f"`{request.id}` is now {request.status}.")


def expiring_dm(request: AccessRequest, now: datetime) -> tuple[str, list[Block]]:
    text = (
        f":hourglass_flowing_sand: Your access to `{request.resource}` (`{request.id}`) ends in"
        f" {format_duration(request.time_left(now))}, {when(request.expires_at or now)}."
    )
    buttons = [
        button("Extend", ids.EXTEND, request.id, "primary"),
        button("End now", ids.END_NOW, request.id, "danger"),
    ]
    return text, [section(text), {"type": "actions", "block_id": f"expiring-{request.id}", "elements": buttons}]


def extended_dm(request: AccessRequest) -> str:
    until = when(request.expires_at or request.created_at)
    return f":hourglass: Your access to `{request.resource}` (`{request.id}`) now runs until {until}."


def extension_denied(request: AccessRequest, by: str) -> str:
    why = f" Reason: {escape(request.note)}" if request.note else ""
    until = when(request.expires_at or request.created_at)
    return (
        f":no_entry: {mention(by)} denied extending `{request.id}` (`{request.resource}`); it still ends {until}.{why}"
    )


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


def revocation_deferred(request: AccessRequest, error: str) -> str:
    return f":hourglass: Ending your access to `{request.resource}` (`{request.id}`) has to wait: {escape(error)}"


def announcement_blocked(request: AccessRequest, channel: str, fix: str) -> str:
    """The requester's DM when their request cannot reach its approvers until an admin fixes Slack."""
    return (
        f":warning: Your request `{request.id}` for `{request.resource}` is waiting: jitbot cannot post it in"
        f" <#{channel}> for the approvers. An admin must {fix}. It will be announced as soon as that is done;"
        " you don't need to ask again."
    )
