"""Listeners are thin: they always answer the person, whatever the service does."""

from unittest.mock import Mock

from jitbot.errors import PolicyError
from jitbot.slack.listeners import SORRY, ack_click, handle_access_command, handle_decision

BODY = {"user": {"id": "U0ALICE"}, "channel": {"id": "C0APPROVALS"}, "trigger_id": "1.2.abc"}


def test_handle_access_command_when_refused_then_ephemeral_reason() -> None:
    service, ack = Mock(), Mock()
    service.handle_command.side_effect = PolicyError("2h is longer than the maximum")
    handle_access_command(service, ack, {"user_id": "U0ALICE", "text": "request x 2h y", "trigger_id": "t"})
    service.handle_command.assert_called_once_with("U0ALICE", "request x 2h y", "t")
    ack.assert_called_once_with(response_type="ephemeral", text="2h is longer than the maximum")


def test_handle_access_command_when_store_down_then_sorry_not_a_stack_trace() -> None:
    service, ack = Mock(), Mock()
    service.handle_command.side_effect = ConnectionError("redis is down")
    handle_access_command(service, ack, {"user_id": "U0ALICE", "text": "request x 2h y"})
    ack.assert_called_once_with(response_type="ephemeral", text=SORRY)


def test_ack_click_then_acked_with_nothing() -> None:
    ack = Mock()
    ack_click(ack)
    ack.assert_called_once_with()


def test_handle_decision_when_refused_then_told_ephemerally() -> None:
    service = Mock()
    service.decide.side_effect = PolicyError("You can't approve or deny your own request.")
    handle_decision(service, BODY, {"value": "r-abc234"}, approving=True)
    service.decide.assert_called_once_with("r-abc234", "U0ALICE", True, "1.2.abc")
    service.notifier.ephemeral.assert_called_once_with(
        "C0APPROVALS", "U0ALICE", "You can't approve or deny your own request."
    )


def test_handle_decision_when_unexpected_error_then_sorry() -> None:
    service = Mock()
    service.decide.side_effect = KeyError("boom")
    handle_decision(service, BODY, {"value": "r-abc234"}, approving=False)
    service.decide.assert_called_once_with("r-abc234", "U0ALICE", False, "1.2.abc")
    service.notifier.ephemeral.assert_called_once_with("C0APPROVALS", "U0ALICE", SORRY)
