"""Listeners are thin: they always answer the person, whatever the use case does."""

from unittest.mock import Mock

import pytest
import redis

from jitbot.core.errors import PolicyError
from jitbot.slack import ids, listeners
from jitbot.slack.listeners import (
    CLICKS,
    SORRY,
    STORE_AWAY,
    ack_click,
    form_values,
    handle_access_command,
    handle_click,
    handle_form,
)
from jitbot.slack.views import Reply

BODY = {"user": {"id": "U0ALICE"}, "channel": {"id": "C0APPROVALS"}, "trigger_id": "1.2.abc"}


def test_handle_access_command_when_refused_then_ephemeral_reason() -> None:
    surface, ack = Mock(), Mock()
    surface.commands.handle_command.side_effect = PolicyError("2h is longer than the maximum")
    command = {"user_id": "U0ALICE", "text": "request x 2h y", "trigger_id": "t", "team_id": "T0TEAM"}
    handle_access_command(surface, ack, command)
    surface.commands.handle_command.assert_called_once_with("U0ALICE", "request x 2h y", "t", ("T0TEAM", None))
    ack.assert_called_once_with(response_type="ephemeral", text="2h is longer than the maximum")


def test_handle_access_command_when_something_unexpected_fails_then_sorry_not_a_stack_trace() -> None:
    surface, ack = Mock(), Mock()
    surface.commands.handle_command.side_effect = ConnectionError("a socket closed")
    handle_access_command(surface, ack, {"user_id": "U0ALICE", "text": "request x 2h y"})
    ack.assert_called_once_with(response_type="ephemeral", text=SORRY)


def test_handle_access_command_when_redis_away_then_told_nothing_was_done_and_one_line_no_traceback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    logged = Mock()
    monkeypatch.setattr(listeners, "_log", logged)
    surface, ack = Mock(), Mock()
    surface.commands.handle_command.side_effect = redis.ConnectionError("Error 111 connecting to 127.0.0.1:6379.\nmore")
    handle_access_command(surface, ack, {"user_id": "U0ALICE", "text": "request x 2h y"})
    ack.assert_called_once_with(response_type="ephemeral", text=STORE_AWAY)
    logged.warning.assert_called_once_with(
        "command_failed", error="ConnectionError: Error 111 connecting to 127.0.0.1:6379.", user="U0ALICE"
    )
    logged.exception.assert_not_called()


def test_handle_click_when_redis_away_then_told_nothing_was_done() -> None:
    surface = Mock()
    surface.deciding.decide.side_effect = redis.TimeoutError("Timeout reading from socket")
    handle_click(surface, BODY, {"value": "r-abc234"}, CLICKS[ids.APPROVE])
    surface.notifier.ephemeral.assert_called_once_with("C0APPROVALS", "U0ALICE", STORE_AWAY)


def test_ack_click_then_acked_with_nothing_and_the_work_left_to_the_executor() -> None:
    ack, later, work = Mock(), Mock(), Mock()
    ack_click(ack, later, work)
    ack.assert_called_once_with()
    later.submit.assert_called_once_with(work)
    work.assert_not_called()


def test_handle_click_approve_when_refused_then_told_ephemerally() -> None:
    surface = Mock()
    surface.deciding.decide.side_effect = PolicyError("You can't approve or deny your own request.")
    handle_click(surface, BODY, {"value": "r-abc234"}, CLICKS[ids.APPROVE])
    surface.deciding.decide.assert_called_once_with("r-abc234", "U0ALICE", approving=True, delivery="1.2.abc")
    surface.notifier.ephemeral.assert_called_once_with(
        "C0APPROVALS", "U0ALICE", "You can't approve or deny your own request."
    )


def test_handle_click_when_unexpected_error_then_sorry() -> None:
    surface = Mock()
    surface.commands.cancel.side_effect = KeyError("boom")
    handle_click(surface, BODY, {"value": "r-abc234"}, CLICKS[ids.CANCEL])
    surface.commands.cancel.assert_called_once_with("U0ALICE", "r-abc234")
    surface.notifier.ephemeral.assert_called_once_with("C0APPROVALS", "U0ALICE", SORRY)


def test_handle_click_from_app_home_then_result_by_dm() -> None:
    surface = Mock()
    surface.commands.end_now.return_value = "Ending r-abc234 now."
    handle_click(surface, {"user": {"id": "U0ALICE"}}, {"value": "r-abc234"}, CLICKS[ids.END_NOW])
    surface.notifier.tell.assert_called_once_with("U0ALICE", "Ending r-abc234 now.")
    surface.notifier.ephemeral.assert_not_called()


def test_handle_form_when_errors_then_shown_on_fields_else_closed() -> None:
    surface, ack = Mock(), Mock()
    surface.submissions.submit_form.return_value = {"duration": "2h is longer than the maximum"}
    handle_form(surface, ack, BODY, {"callback_id": ids.REQUEST_FORM, "id": "V1"})
    ack.assert_called_once_with(response_action="errors", errors={"duration": "2h is longer than the maximum"})
    surface.submissions.submit_form.return_value, ack = {}, Mock()
    handle_form(surface, ack, BODY, {"callback_id": ids.REQUEST_FORM, "id": "V1"})
    ack.assert_called_once_with()


def test_form_values_then_selects_inputs_and_the_request_named() -> None:
    view = {
        "private_metadata": "r-abc234",
        "state": {
            "values": {
                "resource": {"resource": {"type": "static_select", "selected_option": {"value": "prod-db"}}},
                "reason": {"reason": {"type": "plain_text_input", "value": "INC-1"}},
                "duration": {"duration": {"type": "static_select", "selected_option": None}},
            }
        },
    }
    assert form_values(view) == {"request_id": "r-abc234", "resource": "prod-db", "reason": "INC-1", "duration": ""}


def test_handle_click_more_then_next_page_ephemeral_with_its_blocks() -> None:
    surface = Mock()
    surface.commands.show_page.return_value = Reply("Everyone's … showing 21\u201340 of 120", [{"type": "section"}])
    handle_click(surface, BODY, {"value": "all:20"}, CLICKS[ids.MORE])
    surface.commands.show_page.assert_called_once_with("U0ALICE", "all:20")
    surface.notifier.ephemeral.assert_called_once_with(
        "C0APPROVALS", "U0ALICE", "Everyone's … showing 21\u201340 of 120", blocks=[{"type": "section"}]
    )
