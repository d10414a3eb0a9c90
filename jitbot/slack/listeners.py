"""Bolt listeners: thin. Ack within Slack's 3 s, turn a JitError into an ephemeral message, hand work on.

`register` binds the service in small closures; the listeners are module functions that take it, so tests
call them directly.
"""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App

from jitbot import logs
from jitbot.errors import JitError
from jitbot.service import Service
from jitbot.slack import ids
from jitbot.slack.notify import NotifyError

SORRY = "Sorry: jitbot hit an unexpected error and did not finish this. Nothing was granted. Try again in a minute."
_log = logs.get("jitbot.slack")


def register(app: App, service: Service) -> None:
    """Commands answer in their ack (the work is a few Redis calls). Clicks are acked at once and decided
    in a lazy listener: nothing a click does after the ack can cost Slack its answer."""

    def on_command(ack: Ack, command: dict[str, Any]) -> None:
        handle_access_command(service, ack, command)

    def on_approve(body: dict[str, Any], action: dict[str, Any]) -> None:
        handle_decision(service, body, action, approving=True)

    def on_deny(body: dict[str, Any], action: dict[str, Any]) -> None:
        handle_decision(service, body, action, approving=False)

    app.command("/access")(on_command)
    app.action(ids.APPROVE)(ack=ack_click, lazy=[on_approve])
    app.action(ids.DENY)(ack=ack_click, lazy=[on_deny])
    app.error(handle_error)


def handle_access_command(service: Service, ack: Ack, command: dict[str, Any]) -> None:
    """The reply is the ack itself (ephemeral), so the person sees it even if nothing else works."""
    try:
        reply = service.handle_command(command["user_id"], command.get("text", ""), command.get("trigger_id"))
    except JitError as error:
        reply = str(error)
    except Exception:  # noqa: BLE001 - the person must get an answer, not Slack's "dispatch_failed"
        _log.exception("command_failed", user=command.get("user_id"))
        reply = SORRY
    ack(response_type="ephemeral", text=reply)


def ack_click(ack: Ack) -> None:
    ack()


def handle_decision(service: Service, body: dict[str, Any], action: dict[str, Any], approving: bool) -> None:
    """An Approve or Deny click, after its ack: the outcome reaches the clicker as an ephemeral if refused."""
    clicker, channel = body["user"]["id"], body.get("channel", {}).get("id", "")
    try:
        service.decide(str(action.get("value", "")), clicker, approving, body.get("trigger_id"))
    except JitError as error:
        _tell(service, channel, clicker, str(error))
    except Exception:  # noqa: BLE001 - a lazy listener's escape is only logged by Bolt: tell the person too
        _log.exception("click_failed", clicker=clicker)
        _tell(service, channel, clicker, SORRY)


def _tell(service: Service, channel: str, user: str, text: str) -> None:
    try:
        service.notifier.ephemeral(channel, user, text)
    except NotifyError as error:
        _log.warning("ephemeral_failed", user=user, error=str(error))


def handle_error(error: Exception, body: dict[str, Any]) -> None:
    """The unexpected, before any ack: logged with the request type; Bolt answers Slack with an error."""
    _log.error("listener_failed", payload_type=body.get("type", "command"), exc_info=error)
