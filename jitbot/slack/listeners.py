"""Bolt listeners: thin. Ack within Slack's 3 s, turn a JitError into a message for the person, hand work on.

`register` binds the Slack surface (jitbot.slack.surface) in small closures; the listeners are module functions that
take it, so tests call them directly.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor
from functools import partial
from typing import Any

import redis
from slack_bolt import Ack, App, BoltContext

from jitbot.core.errors import JitError
from jitbot.observability import logs
from jitbot.observability.outage import describe
from jitbot.slack import forms, ids, views
from jitbot.slack.notify import NotifyError
from jitbot.slack.surface import Surface

SORRY = "Sorry: jitbot hit an unexpected error and did not finish this. Nothing was granted. Try again in a minute."
STORE_AWAY = (
    "jitbot cannot reach its store right now (a restart or a failover, most likely), so it did nothing: nothing was "
    "asked, granted or decided. Try again in a minute."
)
Body = dict[str, Any]
Said = str | views.Reply | None  # what a click answers the clicker: a line, a message with blocks, or nothing
_log = logs.get("jitbot.slack")


def register(app: App, surface: Surface) -> None:
    """Commands and forms answer in their ack (the work is a few Redis calls; a form's errors must be in the
    ack). Clicks are acked at once and acted on afterwards, on Bolt's listener threads: nothing after the ack can
    cost Slack its answer."""
    later = app.listener_runner.listener_executor  # Bolt's own pool, where its lazy listeners run

    def on_command(ack: Ack, command: Body) -> None:
        handle_access_command(surface, ack, command)

    def on_form(ack: Ack, body: Body, view: Body) -> None:
        handle_form(surface, ack, body, view)

    def on_home(event: Body) -> None:
        if event.get("tab", "home") == "home":
            surface.jobs.publish_home(event["user"])

    def on_join(event: Body, context: BoltContext) -> None:
        if event.get("user") and event.get("user") == context.bot_user_id:  # jitbot itself was invited
            surface.channel_joined(str(event.get("channel", "")))

    def clicked(act: Callable[[Surface, Body, str, str], Said]) -> Callable[[Ack, Body, Body], None]:
        def on_click(ack: Ack, body: Body, action: Body) -> None:
            ack_click(ack, later, partial(handle_click, surface, body, action, act))

        return on_click

    app.command("/access")(on_command)
    for action_id, act in CLICKS.items():
        app.action(action_id)(clicked(act))
    for callback_id in (ids.REQUEST_FORM, ids.EXTEND_FORM, ids.DENY_FORM):
        app.view(callback_id)(on_form)
    app.event("app_home_opened")(on_home)
    app.event("member_joined_channel")(on_join)
    app.error(handle_error)


def handle_access_command(surface: Surface, ack: Ack, command: Body) -> None:
    """The reply is the ack itself (ephemeral), so the person sees it even if nothing else works."""
    try:
        origin = (command.get("team_id"), command.get("enterprise_id"))
        text, trigger = command.get("text", ""), command.get("trigger_id")
        reply = surface.commands.handle_command(command["user_id"], text, trigger, origin)
    except JitError as error:
        reply = views.Reply(str(error))
    except Exception as error:  # noqa: BLE001 - the person must get an answer, not Slack's "dispatch_failed"
        reply = views.Reply(_trouble("command_failed", error, user=command.get("user_id")))
    if not reply.text:  # a form was opened: nothing to say
        ack()
    elif reply.blocks:
        ack(response_type="ephemeral", text=reply.text, blocks=reply.blocks)
    else:
        ack(response_type="ephemeral", text=reply.text)


def handle_form(surface: Surface, ack: Ack, body: Body, view: Body) -> None:
    """A submitted modal: errors shown on the fields (`response_action: errors`), else the modal closes."""
    user = body["user"]["id"]
    origin = (body["user"].get("team_id"), (body.get("enterprise") or {}).get("id"))
    try:
        callback_id, view_id = view.get("callback_id", ""), view.get("id", "")
        errors = surface.submissions.submit_form(user, callback_id, form_values(view), view_id, origin)
    except Exception as error:  # noqa: BLE001 - the form must not hang on "We had some trouble connecting"
        errors = {ids.REASON_INPUT: _trouble("form_failed", error, user=user)}
    if errors:
        ack(response_action="errors", errors=errors)
    else:
        ack()


def _trouble(event: str, error: Exception, **who: object) -> str:
    """What to tell the person when a handler fails, and one log line: Redis away (a restart, a failover) is a
    warning naming the error, as in every process (jitbot.outage); anything else is an error with its traceback."""
    if isinstance(error, redis.RedisError):
        _log.warning(event, error=describe(error), **who)
        return STORE_AWAY
    _log.exception(event, **who)
    return SORRY


def form_values(view: Body) -> dict[str, str]:
    """The form's inputs as block id → text (selects give their option's value), and the request it is about."""
    values = {"request_id": str(view.get("private_metadata", ""))}
    for block_id, actions in view.get("state", {}).get("values", {}).items():
        for element in actions.values():
            chosen = element.get("selected_option") or {}
            values[block_id] = str(chosen.get("value") or element.get("value") or "")
    return values


def ack_click(ack: Ack, later: Executor, work: Callable[[], None]) -> None:
    """Ack at once, then do the click's `work` on `later`, as Bolt runs a lazy listener, but without the deep copy
    of the request (and second parse of its body) Bolt makes for a lazy listener before it answers: that was half
    of a click's CPU, and all of it before the ack."""
    ack()
    later.submit(work)


def handle_click(surface: Surface, body: Body, action: Body, act: Callable[[Surface, Body, str, str], Said]) -> None:
    """After the ack: do what the button says; a refusal or a result reaches the clicker privately."""
    clicker = body["user"]["id"]
    try:
        said = act(surface, body, clicker, str(action.get("value", "")))
    except JitError as error:
        said = str(error)
    except Exception as error:  # noqa: BLE001 - a lazy listener's escape is only logged by Bolt: tell the person too
        said = _trouble("click_failed", error, clicker=clicker)
    if said:
        _tell(surface, body, clicker, said if isinstance(said, views.Reply) else views.Reply(said))


def _approve(surface: Surface, body: Body, clicker: str, value: str) -> str | None:
    surface.deciding.decide(value, clicker, approving=True, delivery=body.get("trigger_id"))
    return None  # the message itself shows the decision


def _deny(surface: Surface, body: Body, clicker: str, value: str) -> str | None:
    request, _ = surface.deciding.authorize_decision(value, clicker, "deny", body.get("trigger_id"))
    surface.notifier.open_view(body["trigger_id"], forms.deny_form(request))
    return None


def _extend(surface: Surface, body: Body, clicker: str, value: str) -> str | None:
    request = surface.notifier.store.requests.get(value) if value.startswith("r-") and len(value) == 8 else None
    if request is None or request.requester != clicker:
        return "Only the person who holds a grant can ask to extend it."
    surface.notifier.open_view(body["trigger_id"], forms.extend_form(request))
    return None


def _review(acknowledge: bool) -> Callable[[Surface, Body, str, str], str | None]:
    def review(surface: Surface, body: Body, clicker: str, value: str) -> str | None:
        surface.deciding.review(value, clicker, acknowledge)
        return None

    return review


CLICKS: dict[str, Callable[[Surface, Body, str, str], Said]] = {
    ids.APPROVE: _approve,
    ids.DENY: _deny,
    ids.CANCEL: lambda surface, body, clicker, value: surface.commands.cancel(clicker, value),
    ids.END_NOW: lambda surface, body, clicker, value: surface.commands.end_now(clicker, value),
    ids.EXTEND: _extend,
    ids.ACKNOWLEDGE: _review(acknowledge=True),
    ids.FLAG: _review(acknowledge=False),
    ids.MORE: lambda surface, body, clicker, value: surface.commands.show_page(clicker, value),
}


def _tell(surface: Surface, body: Body, user: str, reply: views.Reply) -> None:
    """Ephemeral in the channel clicked in; by DM from App Home or a DM, where there is no channel to use."""
    channel = body.get("channel", {}).get("id", "")
    blocks = {"blocks": reply.blocks} if reply.blocks else {}
    try:
        if channel and not channel.startswith("D"):
            surface.notifier.ephemeral(channel, user, reply.text, **blocks)
        else:
            surface.notifier.tell(user, reply.text, **blocks)
    except NotifyError as error:
        _log.warning("reply_failed", user=user, error=str(error))


def handle_error(error: Exception, body: Body) -> None:
    """The unexpected, before any ack: logged with the request type; Bolt answers Slack with an error."""
    _log.error("listener_failed", payload_type=body.get("type", "command"), exc_info=error)
