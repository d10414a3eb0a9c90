"""Bolt listeners: thin. Ack within Slack's 3 s, turn a JitError into an ephemeral message, hand work on.

The service is put in the Bolt context by `register`; listeners are module functions so tests call them.
"""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App, BoltContext

from jitbot import logs
from jitbot.errors import JitError
from jitbot.service import Service
from jitbot.slack import ids
from jitbot.slack.notify import NotifyError

SORRY = "Sorry: jitbot hit an unexpected error and did not finish this. Nothing was granted. Try again in a minute."
_log = logs.get("jitbot.slack")


def register(app: App, service: Service) -> None:
    def attach_service(context: BoltContext, next: Any) -> None:
        context["service"] = service
        next()

    app.use(attach_service)
    app.command("/access")(handle_access_command)
    app.action(ids.APPROVE)(handle_approve)
    app.action(ids.DENY)(handle_deny)
    app.error(handle_error)


def handle_access_command(ack: Ack, command: dict[str, Any], context: BoltContext) -> None:
    """The reply is the ack itself (ephemeral), so the person sees it even if nothing else works."""
    service: Service = context["service"]
    try:
        reply = service.handle_command(command["user_id"], command.get("text", ""), command.get("trigger_id"))
    except JitError as error:
        reply = str(error)
    except Exception:  # noqa: BLE001 - the person must get an answer, not Slack's "dispatch_failed"
        _log.exception("command_failed", user=command.get("user_id"))
        reply = SORRY
    ack(response_type="ephemeral", text=reply)


def handle_approve(ack: Ack, body: dict[str, Any], action: dict[str, Any], context: BoltContext) -> None:
    _decide(ack, body, action, context, approving=True)


def handle_deny(ack: Ack, body: dict[str, Any], action: dict[str, Any], context: BoltContext) -> None:
    _decide(ack, body, action, context, approving=False)


def _decide(ack: Ack, body: dict[str, Any], action: dict[str, Any], context: BoltContext, approving: bool) -> None:
    ack()
    service: Service = context["service"]
    clicker, channel = body["user"]["id"], body.get("channel", {}).get("id", "")
    try:
        service.decide(str(action.get("value", "")), clicker, approving, body.get("trigger_id"))
    except JitError as error:
        _tell(service, channel, clicker, str(error))
    except Exception:  # noqa: BLE001 - after ack() an escape loses the ack (bolt 1.30): log, tell the person
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
