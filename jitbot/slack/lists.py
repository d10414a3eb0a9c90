"""Lists of requests and resources: `/access list` page by page, `/access resources`, and the App Home tab,
whose entries carry the buttons the viewer may use."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from jitbot.core.catalog import Resource
from jitbot.core.commands import ShowList, page_value
from jitbot.core.domain import AccessRequest, Status
from jitbot.core.durations import format_duration
from jitbot.core.policy import approver_list
from jitbot.slack import ids
from jitbot.slack.views import (
    Block,
    Reply,
    View,
    button,
    context,
    decision_buttons,
    escape,
    request_summary,
    section,
    when,
)

# Slack: "You can include up to 50 blocks in each message, and 100 blocks in modals or Home tabs"
# (https://docs.slack.dev/reference/block-kit/blocks). A list entry is 2 blocks (its line and its buttons):
LIST_PAGE = 20  # a page of the list: its heading, 20 entries and the More button are 42 of a message's 50 blocks
HOME_MINE = 20  # the Home tab: 2 blocks each;
HOME_WAITING = 15  # up to 3 each; with the headings and notes at most 91 of a Home tab's 100 blocks

EN_DASH = "\u2013"  # escaped, as ruff flags look-alikes in source
_LISTED = {Status.PENDING: "pending", Status.APPROVED: "being issued", Status.ACTIVE: "active"}


def request_list(requests: Sequence[AccessRequest], viewer: str, now: datetime, page: ShowList) -> Reply:
    """`/access list` (and `list all`): a page of entries with the buttons the viewer may use, the totals, and a
    More button while entries remain: the whole list of a busy incident does not fit in one message."""
    whose = "Everyone's" if page.everyone else "Your"
    if not requests:
        return Reply(f"{whose} pending requests and active grants: none.")
    start = min(page.offset, (len(requests) - 1) // LIST_PAGE * LIST_PAGE)  # the list may have shrunk since
    shown = requests[start : start + LIST_PAGE]
    totals = f"showing {start + 1}{EN_DASH}{start + len(shown)} of {len(requests)}: {list_totals(requests)}"
    blocks: list[Block] = [section(f"*{whose} pending requests and active grants*, {totals}")]
    for request in shown:
        blocks += request_entry(request, viewer, now)
    left = len(requests) - start - len(shown)
    if left:
        more = button(f"More ({left} left)", ids.MORE, page_value(replace(page, offset=start + len(shown))))
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
    entry = [section(f"`{request.id}` `{request.resource}`{who}: {state}\n_{escape(request.reason, 120)}_")]
    buttons = []
    if request.status is Status.PENDING and request.requester == viewer:
        buttons.append(button("Cancel", ids.CANCEL, request.id))
    if request.status is Status.ACTIVE:
        if request.requester == viewer and not request.extend_by:
            buttons.append(button("Extend", ids.EXTEND, request.id))
        buttons.append(button("End now", ids.END_NOW, request.id, "danger"))
    if buttons:
        entry.append({"type": "actions", "block_id": f"entry-{request.id}", "elements": buttons})
    return entry


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
        blocks.append(context("What you may ask for could not be checked just now; `/access resources` tells."))
    else:
        blocks.append(context(offer_line(offered)))
    if not mine:
        blocks.append(context("Nothing active or pending. Ask with `/access request`."))
    for request in mine[:HOME_MINE]:
        blocks += request_entry(request, viewer, now)
    blocks += _more_note(len(mine) - HOME_MINE, "`/access list` pages through them")
    if waiting:
        blocks.append({"type": "header", "text": {"type": "plain_text", "text": "Waiting for you"}})
        for request in waiting[:HOME_WAITING]:
            blocks += _waiting_entry(request)
        blocks += _more_note(len(waiting) - HOME_WAITING, "`/access list all` pages through everyone's")
    blocks.append(context(f"Updated {when(now)}"))
    return {"type": "home", "blocks": blocks}


def _waiting_entry(request: AccessRequest) -> list[Block]:
    entry = [section(f"`{request.id}` {request_summary(request)}\n_{escape(request.reason, 120)}_")]
    if request.status is Status.ACTIVE and request.extend_by:
        entry.append(context(f"Extension: {format_duration(request.extend_by)} more"))
    return [*entry, decision_buttons(request.id)]


def _more_note(left: int, where: str) -> list[Block]:
    """Said where the Home tab stops short: it holds 100 blocks, and a busy day holds more."""
    return [context(f"… and {left} more: {where}.")] if left > 0 else []
