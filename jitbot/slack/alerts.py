"""The alert channel's messages: break-glass grants and their review, revocations that keep failing, access
the drift scan could not remove, and Slack settings an admin must fix."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta

from jitbot.core.domain import AccessRequest
from jitbot.core.durations import format_duration
from jitbot.core.review import ReviewStatus
from jitbot.slack import ids
from jitbot.slack.views import Block, button, context, escape, section, when


def breakglass_alert(request: AccessRequest, review: Mapping[str, str]) -> tuple[str, list[Block]]:
    """The alert channel's message for a break-glass grant: loud, with the review buttons until reviewed."""
    text = (
        f":rotating_light: <!here> *Break-glass access* `{request.id}`: <@{request.requester}> took"
        f" `{request.resource}` for {format_duration(request.duration)} without approval."
    )
    blocks: list[Block] = [section(text), section(f"*Reason:* {escape(request.reason)}")]
    status = review.get("status", ReviewStatus.OPEN)
    if status == ReviewStatus.OPEN:
        alerts = int(review.get("alerts", "0"))
        note = f" Reminder {alerts}." if alerts else ""
        blocks.append(context(f"Needs an after-the-fact review by someone other than <@{request.requester}>.{note}"))
        blocks.append(
            {
                "type": "actions",
                "block_id": f"review-{request.id}",
                "elements": [
                    button("Acknowledge", ids.ACKNOWLEDGE, request.id, "primary"),
                    button("Flag", ids.FLAG, request.id, "danger"),
                ],
            }
        )
    else:
        icon = ":white_check_mark:" if status == ReviewStatus.ACKNOWLEDGED else ":triangular_flag_on_post:"
        blocks.append(
            context(f"{icon} Review: {status} by <@{review.get('by', '?')}> ({review.get('at', '')[:16]} UTC)")
        )
    return text, blocks


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


def drift_alert(kept: Sequence[tuple[str, str, str]], unreadable: Sequence[tuple[str, str]], every: timedelta) -> str:
    """The alert channel's message when the drift scan finds access it could not take away, or a cloud it could
    not look at. `kept`: (resource, what, why); `unreadable`: (resource, why)."""
    lines = [":rotating_light: *Access jitbot made is still in the clouds, and no live grant explains it.*"]
    lines += [f"• `{resource}`: {escape(what)} — not removed: {escape(why)}" for resource, what, why in kept]
    lines += [f"• `{resource}`: could not be scanned: {escape(why)}" for resource, why in unreadable]
    lines.append(f"jitbot tries again every {format_duration(every)}; `jitbot reconcile --clouds` tries now.")
    return "\n".join(lines)


def slack_misconfigured(channel: str, code: str, fix: str, waiting: str = "") -> str:
    """The alert (or admins' DM) naming what an admin must change in Slack; `waiting` says what is held up."""
    held = f" {waiting}" if waiting else ""
    return f":warning: *jitbot cannot post in <#{channel}>* (Slack says `{code}`).{held} To fix it: {fix}."
