"""What jitbot answers the person who typed a command, clicked a button or submitted a form, from what the use case
returned. Pure functions of their arguments."""

from __future__ import annotations

from datetime import datetime, timedelta

from jitbot.core.catalog import Resource
from jitbot.core.domain import AccessRequest
from jitbot.core.durations import format_duration
from jitbot.slack import dms
from jitbot.slack.views import Reply, when


def received(request: AccessRequest, resource: Resource) -> Reply:
    return Reply(dms.request_received(request, resource))


def report_ordered(period: timedelta) -> str:
    return f"Building the access review of the last {format_duration(period)}; I'll DM you the files in a moment."


def glass_broken(request: AccessRequest, resource: Resource) -> str:
    return (
        f":rotating_light: Break-glass `{request.id}`: access to `{resource.name}` is on its way by DM."
        f" Security has been alerted, and someone else must review this use."
    )


def ending(request: AccessRequest) -> str:
    return f"Ending `{request.id}` (`{request.resource}`) now. I'll confirm once the cloud has cut it."


def cancelled(request: AccessRequest) -> str:
    return f"Cancelled `{request.id}` (`{request.resource}`)."


def extension(request: AccessRequest, more: timedelta, by_policy: bool, now: datetime) -> str:
    """Extended at once by policy (`request` as extended), or asked of the approvers."""
    if by_policy:
        return f"Extended `{request.id}` by policy: it now runs until {when(request.expires_at or now)}."
    return f"Asked {format_duration(more)} more for `{request.id}`; I'll DM you when the approvers decide."
