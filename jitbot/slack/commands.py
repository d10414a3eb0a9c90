"""`/access` in Slack: the command's text parsed, its delivery de-duplicated, the use case run, its result rendered.

A delivery is Slack's trigger_id: the same command delivered twice (a replay) gets the first answer again and
changes nothing. Every refusal is audited (jitbot.app.guard) and answered with its reason.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from jitbot.app.guard import DUPLICATE
from jitbot.app.people import Origin
from jitbot.app.requesting import Keep, Requesting
from jitbot.core.catalog import Resource
from jitbot.core.commands import (
    USAGE,
    BreakGlass,
    Cancel,
    Command,
    Extend,
    OpenRequestForm,
    RequestAccess,
    Revoke,
    ShowHelp,
    ShowList,
    ShowReport,
    ShowResources,
    parse_command,
    parse_page,
)
from jitbot.core.domain import AccessRequest
from jitbot.core.errors import JitError, NotEligible, UsageError
from jitbot.slack import answers, forms, lists
from jitbot.slack.notify import Notifier
from jitbot.slack.views import Reply

DUPLICATE_WAIT = timedelta(seconds=2)  # a concurrent twin is still working on the first answer


class Commands:
    def __init__(self, requesting: Requesting, notifier: Notifier) -> None:
        self.requesting = requesting
        self.guard = requesting.guard
        self.store = notifier.store  # deliveries and their replies, kept by the Slack side
        self.notifier = notifier

    def handle_command(self, user: str, text: str, delivery: str | None = None, origin: Origin | None = None) -> Reply:
        """The ephemeral reply to `/access <text>`; `origin` is the team (and enterprise) the payload says it came
        from."""
        if not delivery:
            return self._answer(user, text, delivery, origin)
        first, cached = self.store.deliveries.first_command(delivery, user)
        if not first:
            self.guard.refuse_command(user, text, DUPLICATE)
            earlier = self.store.deliveries.delivery_reply(delivery, wait=DUPLICATE_WAIT)
            return Reply(**json.loads(earlier)) if earlier else Reply("This command is being handled.")
        with self.guard.people.asking(user, cached):
            return self._answer(user, text, delivery, origin)

    def _answer(self, user: str, text: str, delivery: str | None, origin: Origin | None) -> Reply:
        """The reply to a command delivered for the first time, kept for a repeat of its delivery."""
        answered = False
        try:
            command = parse_command(text)
            reply = self._run(user, command, delivery, origin)
            answered = isinstance(command, RequestAccess)  # kept with the request itself (submit)
        except JitError as error:
            if not error.audited:  # a refusal about one request was recorded with it
                self.guard.refuse_command(user, text, str(error), error.code)
            reply = Reply(str(error))
        if delivery and not answered:
            self.store.deliveries.save_delivery_reply(delivery, _kept(reply))
        return reply

    def _run(self, user: str, command: Command, delivery: str | None, origin: Origin | None) -> Reply:
        if isinstance(command, ShowHelp):
            return Reply(USAGE + "\n" + self._offer_line(user, origin))
        if isinstance(command, ShowReport):
            self.requesting.order_report(user, command.period)
            return Reply(answers.report_ordered(command.period))
        if isinstance(command, RequestAccess):
            keep = self._keeper(delivery) if delivery else None
            return answers.received(*self.requesting.submit(user, command, origin, keep))
        if isinstance(command, BreakGlass):
            return Reply(self.break_glass(user, command, origin))
        if isinstance(command, OpenRequestForm):
            return self._open_form(user, delivery, origin)
        if isinstance(command, ShowList):
            return self.show_list(user, command)
        if isinstance(command, Revoke):
            return Reply(self.end_now(user, command.request_id))
        if isinstance(command, Cancel):
            return Reply(self.cancel(user, command.request_id))
        if isinstance(command, Extend):
            return Reply(self.ask_extension(user, command.request_id, command.duration, command.reason))
        assert isinstance(command, ShowResources)
        return lists.resources_list(self.requesting.offered(user, origin))

    def _keeper(self, delivery: str) -> Keep:
        """The answer to the command's `delivery`, kept as its request is stored (Requesting.submit)."""

        def keep(request: AccessRequest, resource: Resource, pipe: Any) -> None:
            self.store.deliveries.save_delivery_reply(delivery, _kept(answers.received(request, resource)), pipe)

        return keep

    def _open_form(self, user: str, delivery: str | None, origin: Origin | None) -> Reply:
        """The request form, listing what the person may ask for; nothing to say once it is open."""
        if not delivery:
            raise UsageError("Slack sent no trigger to open the form with; type the request in full instead.")
        offered = self.requesting.offered(user, origin)
        if not offered:
            return Reply(lists.offer_line(offered))
        self.notifier.open_view(delivery, forms.request_form(offered))
        return Reply("")

    def _offer_line(self, user: str, origin: Origin | None) -> str:
        """Help's last line: what the person may ask for; help itself never fails for want of Slack."""
        try:
            return lists.offer_line(self.requesting.offered(user, origin))
        except NotEligible as error:
            return str(error)

    def break_glass(self, user: str, command: BreakGlass, origin: Origin | None = None) -> str:
        return answers.glass_broken(*self.requesting.break_glass(user, command, origin))

    def show_list(self, user: str, page: ShowList) -> Reply:
        shown = self.requesting.open_requests(user, page.everyone)
        return lists.request_list(shown, user, self.requesting.clock(), page)

    def show_page(self, user: str, value: str) -> Reply:
        """A More click: the page it names, for the clicker, allowed and refused (and audited) exactly as the
        command that showed the list; the click's value says only which list and where."""
        try:
            return self.show_list(user, parse_page(value))
        except JitError as error:
            self.guard.refuse_command(user, "list", str(error), error.code)
            raise

    def end_now(self, user: str, request_id: str) -> str:
        return answers.ending(self.requesting.end_now(user, request_id))

    def cancel(self, user: str, request_id: str) -> str:
        return answers.cancelled(self.requesting.cancel(user, request_id))

    def ask_extension(self, user: str, request_id: str, more: timedelta, reason: str) -> str:
        request, by_policy = self.requesting.ask_extension(user, request_id, more, reason)
        return answers.extension(request, more, by_policy, self.requesting.clock())


def _kept(reply: Reply) -> str:
    """A reply as it is kept for a repeat of its delivery (Deliveries.delivery_reply)."""
    return json.dumps(vars(reply))
