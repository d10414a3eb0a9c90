"""Listeners are thin: they always answer the person, whatever the service does."""

from unittest.mock import Mock

from jitbot.errors import PolicyError
from jitbot.slack.listeners import SORRY, handle_access_command, handle_approve, handle_deny


def context(service: Mock) -> dict[str, Mock]:
    return {"service": service}


def test_handle_access_command_when_refused_then_ephemeral_reason() -> None:
    service, ack = Mock(), Mock()
    service.handle_command.side_effect = PolicyError("2h is longer than the maximum")
    handle_access_command(ack, {"user_id": "U0ALICE", "text": "request x 2h y"}, context(service))
    ack.assert_called_once_with(response_type="ephemeral", text="2h is longer than the maximum")


def test_handle_access_command_when_store_down_then_sorry_not_a_stack_trace() -> None:
    service, ack = Mock(), Mock()
    service.handle_command.side_effect = ConnectionError("redis is down")
    handle_access_command(ack, {"user_id": "U0ALICE", "text": "request x 2h y"}, context(service))
    ack.assert_called_once_with(response_type="ephemeral", text=SORRY)


def test_handle_approve_when_refused_then_acked_first_and_told_ephemerally() -> None:
    service, ack = Mock(), Mock()
    service.decide.side_effect = PolicyError("You can't approve or deny your own request.")
    body = {"user": {"id": "U0ALICE"}, "channel": {"id": "C0APPROVALS"}}
    handle_approve(ack, body, {"value": "r-abc234"}, context(service))
    ack.assert_called_once_with()
    service.decide.assert_called_once_with("r-abc234", "U0ALICE", True, None)
    service.notifier.ephemeral.assert_called_once_with(
        "C0APPROVALS", "U0ALICE", "You can't approve or deny your own request."
    )


def test_handle_deny_when_unexpected_error_then_sorry_and_still_acked() -> None:
    service, ack = Mock(), Mock()
    service.decide.side_effect = KeyError("boom")
    handle_deny(
        ack, {"user": {"id": "U0BOB"}, "channel": {"id": "C0APPROVALS"}}, {"value": "r-abc234"}, context(service)
    )
    ack.assert_called_once_with()
    service.decide.assert_called_once_with("r-abc234", "U0BOB", False, None)
    service.notifier.ephemeral.assert_called_once_with("C0APPROVALS", "U0BOB", SORRY)
