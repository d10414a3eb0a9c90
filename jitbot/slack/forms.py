"""The modals: the request form, asking for more time, and denying with a reason."""

from __future__ import annotations

from collections.abc import Iterable

from jitbot.core.catalog import Resource
from jitbot.core.domain import AccessRequest, Status
from jitbot.slack import ids
from jitbot.slack.views import Block, View, request_summary, section, when

DURATION_CHOICES = ("15m", "30m", "1h", "2h", "4h", "8h", "12h", "1d", "2d", "7d")


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
            section(f"`{request.id}` `{request.resource}`, until {when(request.expires_at or request.created_at)}"),
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
            section(f"Deny {what} `{request.id}`: {request_summary(request)}"),
            _reason_input("Reason, sent to the requester (optional)", optional=True),
        ],
    }


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
