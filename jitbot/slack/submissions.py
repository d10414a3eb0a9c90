"""Modal forms in Slack (the request form, Extend, Deny): each field checked under itself, then the use case run.

Errors go back onto the fields and nothing changes unless everything is valid; a form submitted twice (Slack
retries, a double click) is acted on once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

from jitbot.app.deciding import Deciding
from jitbot.app.guard import DUPLICATE
from jitbot.app.people import Origin
from jitbot.app.ports import Messenger, Outcome
from jitbot.core.commands import RequestAccess
from jitbot.core.durations import parse_duration
from jitbot.core.errors import JitError, UsageError
from jitbot.core.policy import check_bounds, check_extension_reason, check_reason, find_resource
from jitbot.slack import ids
from jitbot.slack.commands import Commands

FormErrors = dict[str, str]  # block id → the message Slack shows under that field


class Submissions:
    def __init__(self, commands: Commands, deciding: Deciding, messenger: Messenger) -> None:
        self.commands = commands
        self.requesting = commands.requesting
        self.guard = commands.guard
        self.deciding = deciding
        self.messenger = messenger

    def submit_form(
        self, user: str, callback_id: str, values: Mapping[str, str], view_id: str, origin: Origin | None = None
    ) -> FormErrors:
        """A submitted modal: the errors to show on its fields, none when it was acted on (or was a repeat)."""
        delivery = f"view:{view_id}"
        if not self.commands.store.deliveries.first_delivery(delivery):
            self.guard.refuse_command(user, callback_id, DUPLICATE)
            return {}
        try:
            self._act_on_form(user, callback_id, values, origin)
        except JitError as error:
            # the person corrects the form and submits the same view again
            self.commands.store.deliveries.forget_delivery(delivery)
            if not error.audited:
                self.guard.refuse_command(user, callback_id, str(error), error.code)
            return {_field_of(error, callback_id): str(error)}
        return {}

    def _act_on_form(self, user: str, callback_id: str, values: Mapping[str, str], origin: Origin | None) -> None:
        reason = values.get(ids.REASON_INPUT, "")
        if callback_id == ids.REQUEST_FORM:
            self._request(user, values, reason, origin)
        elif callback_id == ids.EXTEND_FORM:
            resource = find_resource(self.guard.catalog, self.guard.load(values["request_id"]).resource)
            _on_field(ids.REASON_INPUT, check_extension_reason, resource, reason)
            asked = self.commands.ask_extension(user, values["request_id"], _form_duration(values), reason)
            self.commands.notifier.tell(user, asked)
        elif callback_id == ids.DENY_FORM:
            self.deciding.decide(values["request_id"], user, approving=False, note=reason or None)
        else:
            raise UsageError("That form is not one of jitbot's.")

    def _request(self, user: str, values: Mapping[str, str], reason: str, origin: Origin | None) -> None:
        """The request form: each check under its own field, before anything changes; the requester told by DM."""
        catalog = self.guard.catalog
        resource = _on_field(ids.RESOURCE_INPUT, find_resource, catalog, values.get(ids.RESOURCE_INPUT, ""))
        _on_field(ids.RESOURCE_INPUT, self.requesting.check_asker, user, resource, False, origin)
        duration = _form_duration(values)
        _on_field(ids.DURATION_INPUT, check_bounds, resource, duration)
        _on_field(ids.REASON_INPUT, check_reason, resource, reason)
        request, _ = self.requesting.submit(user, RequestAccess(resource.name, duration, reason), origin)
        self.messenger.tell_requester(request, Outcome.RECEIVED)


class FormError(JitError):
    """A form value that is wrong; `field` names the input it belongs under."""

    def __init__(self, message: str, field: str, code: str | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.code = code


def _form_duration(values: Mapping[str, str]) -> timedelta:
    try:
        return parse_duration(values.get(ids.DURATION_INPUT, ""))
    except UsageError as error:
        raise FormError(str(error), ids.DURATION_INPUT) from None


def _on_field(field: str, check: Callable[..., Any], *args: Any) -> Any:
    try:
        return check(*args)
    except JitError as error:
        raise FormError(str(error), field, error.code) from None


def _field_of(error: JitError, callback_id: str) -> str:
    """Where a refusal shows in the form: on its field, else where the form's decision is (a Deny's reason,
    an extension's duration)."""
    if isinstance(error, FormError):
        return error.field
    return ids.REASON_INPUT if callback_id == ids.DENY_FORM else ids.DURATION_INPUT
