"""The shipped Slack test doubles: the Web API stand-in answers slack_sdk, and the sender signs as Slack does."""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier

from jitbot.slack.pacing import TIER_PER_MINUTE
from jitbot.testing.slack_limits import POST_BURST, TIER_BURST, SlackLimits
from jitbot.testing.slack_sender import SlackSender, click_body, command_body, sign
from jitbot.testing.slack_standin import Call, SlackStandIn

SECRET = "test-signing-secret"
BLOCKS = [{"type": "section", "text": {"type": "mrkdwn", "text": "*hello*"}}]


@pytest.fixture
def standin() -> Iterator[SlackStandIn]:
    with SlackStandIn() as server:
        yield server


@pytest.fixture
def client(standin: SlackStandIn) -> WebClient:
    return WebClient(base_url=standin.url, token="xoxb-test", timeout=5)


class _Echo(BaseHTTPRequestHandler):
    """Answers every POST with the headers and body it received; `/deny` answers 401."""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        data = json.dumps({"headers": dict(self.headers.items()), "body": body.decode("utf-8")}).encode("utf-8")
        self.send_response(401 if self.path == "/deny" else 200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def echo_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


# --- the stand-in ---------------------------------------------------------------------------------


def test_standin_url_when_started_then_local_api_base_with_trailing_slash(standin: SlackStandIn) -> None:
    assert standin.url.startswith("http://127.0.0.1:") and standin.url.endswith("/api/")


def test_standin_auth_test_when_called_then_bot_identity(client: WebClient, standin: SlackStandIn) -> None:
    answer = client.auth_test()
    assert (answer["ok"], answer["user_id"], answer["bot_id"], answer["team_id"]) == (
        True,
        "U0JITBOT",
        "B0JITBOT",
        "T0TEAM",
    )
    assert [c.method for c in standin.calls] == ["auth.test"]


def test_standin_post_message_when_user_id_then_dm_channel_and_increasing_ts(
    client: WebClient, standin: SlackStandIn
) -> None:
    first = client.chat_postMessage(channel="U0ALICE", text="one")
    second = client.chat_postMessage(channel="C0OPS", text="two", blocks=BLOCKS)
    assert (first["channel"], second["channel"]) == ("D0ALICE", "C0OPS")
    assert float(first["ts"]) < float(second["ts"]) and first["message"]["ts"] == first["ts"]
    assert standin.calls_to("chat.postMessage")[1].params["blocks"] == BLOCKS
    assert standin.message("C0OPS", second["ts"]) == {"text": "two", "blocks": BLOCKS}


def test_standin_post_message_when_form_encoded_blocks_then_decoded_to_list(
    client: WebClient, standin: SlackStandIn
) -> None:
    client.api_call("chat.postMessage", params={"channel": "C0OPS", "text": "x", "blocks": json.dumps(BLOCKS)})
    assert standin.calls_to("chat.postMessage")[0].params == {"channel": "C0OPS", "text": "x", "blocks": BLOCKS}


def test_standin_chat_update_when_message_exists_then_message_replaced(
    client: WebClient, standin: SlackStandIn
) -> None:
    posted = client.chat_postMessage(channel="U0ALICE", text="pending", blocks=BLOCKS)
    answer = client.chat_update(channel=posted["channel"], ts=posted["ts"], text="approved", blocks=[])
    assert (answer["ok"], answer["channel"], answer["ts"], answer["text"]) == (
        True,
        "D0ALICE",
        posted["ts"],
        "approved",
    )
    assert standin.message("D0ALICE", posted["ts"])["text"] == "approved"


def test_standin_chat_update_when_unknown_ts_then_slack_api_error(client: WebClient) -> None:
    with pytest.raises(SlackApiError) as raised:
        client.chat_update(channel="C0OPS", ts="1.000001", text="nope")
    assert raised.value.response["error"] == "message_not_found"


def test_standin_usergroup_users_when_known_then_members_else_error(client: WebClient, standin: SlackStandIn) -> None:
    standin.usergroups = {"S0APPROVERS": ["U0BOB", "U0CAROL"]}
    assert client.usergroups_users_list(usergroup="S0APPROVERS")["users"] == ["U0BOB", "U0CAROL"]
    with pytest.raises(SlackApiError) as raised:
        client.usergroups_users_list(usergroup="S0NOPE")
    assert raised.value.response["error"] == "no_such_subteam"


def test_standin_other_methods_when_called_then_ok(client: WebClient, standin: SlackStandIn) -> None:
    assert client.conversations_open(users=["U0BOB"])["channel"]["id"] == "D0BOB"
    assert client.chat_postEphemeral(channel="C0OPS", user="U0BOB", text="hi")["message_ts"]
    assert client.views_publish(user_id="U0BOB", view={"type": "home", "blocks": []})["ok"] is True
    assert [c.method for c in standin.calls] == ["conversations.open", "chat.postEphemeral", "views.publish"]


def test_standin_when_over_block_kit_limits_then_refused_as_slack_does(
    client: WebClient, standin: SlackStandIn
) -> None:
    with pytest.raises(SlackApiError) as raised:
        client.chat_postEphemeral(channel="C0OPS", user="U0BOB", text="list", blocks=BLOCKS * 51)
    assert raised.value.response["error"] == "invalid_blocks"
    assert raised.value.response["errors"] == ["no more than 50 items allowed [json-pointer:/blocks]"]
    with pytest.raises(SlackApiError) as raised:
        client.views_publish(user_id="U0BOB", view={"type": "home", "blocks": BLOCKS * 101})
    assert raised.value.response["error"] == "invalid_arguments"
    assert client.chat_postMessage(channel="C0OPS", text="list", blocks=BLOCKS * 50)["ok"] is True
    assert client.views_publish(user_id="U0BOB", view={"type": "home", "blocks": BLOCKS * 100})["ok"] is True
    assert standin.home("U0BOB") is not None and len(standin.home("U0BOB")["blocks"]) == 100


def test_standin_fail_when_ratelimited_then_429_with_retry_after_and_recorded(
    client: WebClient, standin: SlackStandIn
) -> None:
    standin.fail("chat.postMessage", status=429, retry_after=3)
    with pytest.raises(SlackApiError) as raised:
        client.chat_postMessage(channel="C0OPS", text="x")
    assert raised.value.response.status_code == 429 and raised.value.response["error"] == "ratelimited"
    assert raised.value.response.headers["Retry-After"] == "3"
    assert client.chat_postMessage(channel="C0OPS", text="x")["ok"] is True
    assert [c.answered for c in standin.calls_to("chat.postMessage")] == [429, 200]


def test_standin_recover_when_failing_until_further_notice_then_answered_again(
    client: WebClient, standin: SlackStandIn
) -> None:
    quick = WebClient(base_url=standin.url, token="xoxb-test", timeout=5, retry_handlers=[])
    for method in ("chat.postMessage", "chat.update"):
        standin.fail(method, status=429, retry_after=2, times=1_000_000)  # Slack in a bad minute, until recover()
    for _ in range(3):
        with pytest.raises(SlackApiError) as refused:
            quick.chat_postMessage(channel="U0ALICE", text="refused")
        assert refused.value.response.status_code == 429 and refused.value.response.headers["Retry-After"] == "2"
    assert quick.users_info(user="U0ALICE")["ok"] is True  # a method not named is answered
    standin.recover()
    assert quick.chat_postMessage(channel="U0ALICE", text="told")["ok"] is True
    assert [c.answered for c in standin.calls_to("chat.postMessage")] == [429, 429, 429, 200]


def test_standin_fail_when_200_with_error_then_ok_false_and_recorded(client: WebClient, standin: SlackStandIn) -> None:
    standin.fail("views.open", status=200, error="expired_trigger_id", times=2)
    for _ in range(2):
        with pytest.raises(SlackApiError) as raised:
            client.views_open(trigger_id="1.2.3", view={"type": "modal"})
        assert raised.value.response["error"] == "expired_trigger_id"
    assert client.views_open(trigger_id="1.2.3", view={"type": "modal"})["ok"] is True
    assert [c.answered for c in standin.calls_to("views.open")] == [200, 200, 200]


def test_standin_wait_for_call_when_call_arrives_later_then_returned(standin: SlackStandIn) -> None:
    client = WebClient(base_url=standin.url, token="xoxb-test", timeout=5)
    thread = threading.Thread(target=lambda: client.chat_postMessage(channel="U0BOB", text="approve?"))
    thread.start()
    call = standin.wait_for_call("chat.postMessage", timeout=5, channel="U0BOB")
    thread.join(timeout=5)
    assert call.params["text"] == "approve?" and call.answered == 200


def test_standin_wait_for_when_deadline_passes_then_assertion_error(client: WebClient, standin: SlackStandIn) -> None:
    client.auth_test()
    with pytest.raises(AssertionError, match=r"calls seen: auth\.test"):
        standin.wait_for(lambda call: call.method == "chat.update", timeout=0.05)


def test_standin_on_call_when_callback_raises_then_server_keeps_answering(
    client: WebClient, standin: SlackStandIn
) -> None:
    seen: list[Call] = []

    def observe(call: Call) -> None:
        seen.append(call)
        raise RuntimeError("observer bug")

    standin.on_call = observe
    assert client.auth_test()["ok"] is True and client.auth_test()["ok"] is True
    assert [c.method for c in seen] == ["auth.test", "auth.test"]


def test_standin_reset_when_calls_recorded_then_calls_cleared(client: WebClient, standin: SlackStandIn) -> None:
    client.auth_test()
    standin.reset()
    assert standin.calls == []


# --- signing and sending --------------------------------------------------------------------------


def test_sign_when_verified_by_slack_sdk_then_valid() -> None:
    body, timestamp = command_body("U0ALICE", "prod-db 2h INC-1"), 1_700_000_000
    headers = sign(SECRET, body, timestamp)
    verifier = SignatureVerifier(SECRET, clock=_FixedClock(timestamp))
    assert verifier.is_valid(body, str(timestamp), headers["X-Slack-Signature"])
    assert verifier.is_valid_request(body, headers)
    assert not SignatureVerifier("wrong-secret", clock=_FixedClock(timestamp)).is_valid_request(body, headers)


class _FixedClock:
    def __init__(self, now: float) -> None:
        self._now = now

    def now(self) -> float:
        return self._now


def test_command_body_when_parsed_then_slack_slash_command_fields() -> None:
    fields = {k: v[0] for k, v in parse_qs(command_body("U0ALICE", "prod-db 2h").decode()).items()}
    assert (fields["command"], fields["text"], fields["user_id"], fields["team_id"]) == (
        "/access",
        "prod-db 2h",
        "U0ALICE",
        "T0TEAM",
    )
    assert fields["response_url"] == "https://hooks.slack.com/commands/T0TEAM/1/x" and fields["trigger_id"]


def test_click_body_when_parsed_then_block_actions_payload() -> None:
    body = click_body("U0BOB", "approve", "r-abc234", channel_id="D0BOB", message_ts="1700000000.000001")
    payload = json.loads(parse_qs(body.decode())["payload"][0])
    assert payload["type"] == "block_actions" and payload["user"]["id"] == "U0BOB"
    assert payload["container"] == {
        "type": "message",
        "message_ts": "1700000000.000001",
        "channel_id": "D0BOB",
        "is_ephemeral": False,
    }
    action = payload["actions"][0]
    assert (action["action_id"], action["block_id"], action["value"], action["type"]) == (
        "approve",
        "decide",
        "r-abc234",
        "button",
    )


def test_sender_post_when_echoed_then_signed_headers_and_body_arrive(echo_url: str) -> None:
    sender = SlackSender(echo_url + "/slack/events", SECRET, clock=lambda: 1_700_000_000.5)
    reply = sender.command("U0ALICE", "prod-db 2h INC-1")
    echoed = reply.json()
    headers = {k.lower(): v for k, v in echoed["headers"].items()}
    assert reply.status == 200 and reply.elapsed >= 0
    sent = parse_qs(echoed["body"])
    expected = parse_qs(command_body("U0ALICE", "prod-db 2h INC-1").decode())
    assert sent.pop("trigger_id") != expected.pop("trigger_id")  # unique per delivery, as Slack's are
    assert sent == expected
    assert headers["x-slack-request-timestamp"] == "1700000000"
    assert SignatureVerifier(SECRET, clock=_FixedClock(1_700_000_000)).is_valid_request(
        echoed["body"].encode(), headers
    )


def test_sender_post_when_headers_given_then_sent_unsigned(echo_url: str) -> None:
    sender = SlackSender(echo_url, SECRET)
    reply = sender.post(b"a=1", {"Content-Type": "application/x-www-form-urlencoded"})
    assert "x-slack-signature" not in {k.lower() for k in reply.json()["headers"]}


def test_sender_post_when_http_error_then_reply_not_raised(echo_url: str) -> None:
    reply = SlackSender(echo_url + "/deny", SECRET).click(
        "U0BOB", "approve", "r-abc234", channel_id="D0BOB", message_ts="1.000001"
    )
    assert reply.status == 401 and "payload=" in reply.json()["body"]


def test_sender_post_when_explicit_timestamp_then_signed_with_it(echo_url: str) -> None:
    reply = SlackSender(echo_url, SECRET).post(b"x=1", timestamp=1234)
    assert reply.json()["headers"]["X-Slack-Request-Timestamp"] == "1234"


# --- the stand-in's rate limits ------------------------------------------------------------------------------


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_standin_limits_when_off_then_any_number_of_posts_accepted(client: WebClient, standin: SlackStandIn) -> None:
    for n in range(10):
        client.chat_postMessage(channel="C0OPS", text=str(n))
    assert {c.answered for c in standin.calls} == {200}


def test_standin_limits_when_channel_posted_past_its_burst_then_429_with_retry_after_until_a_second_passes(
    client: WebClient, standin: SlackStandIn
) -> None:
    clock = _Clock()
    standin.limits = SlackLimits(clock)
    quick = WebClient(base_url=standin.url, token="xoxb-test", timeout=5, retry_handlers=[])
    for n in range(POST_BURST):
        quick.chat_postMessage(channel="C0OPS", text=str(n))
    with pytest.raises(SlackApiError) as refused:
        quick.chat_postMessage(channel="C0OPS", text="one too many")
    assert refused.value.response.status_code == 429 and refused.value.response["error"] == "ratelimited"
    assert refused.value.response.headers["Retry-After"] == "1"
    quick.chat_postMessage(channel="C0OTHER", text="another channel has its own")
    clock.now += 1.0
    quick.chat_postMessage(channel="C0OPS", text="a second later")
    assert [c.answered for c in standin.calls_to("chat.postMessage")] == [200] * POST_BURST + [429, 200, 200]


def test_standin_limits_when_tier_3_method_past_its_burst_then_429_for_the_method_on_every_channel(
    client: WebClient, standin: SlackStandIn
) -> None:
    clock = _Clock()
    standin.limits = SlackLimits(clock)
    quick = WebClient(base_url=standin.url, token="xoxb-test", timeout=5, retry_handlers=[])
    posted = [quick.chat_postMessage(channel=f"C{n:04d}", text="x") for n in range(TIER_BURST[3] + 1)]
    for answer in posted[: TIER_BURST[3]]:
        quick.chat_update(channel=answer["channel"], ts=answer["ts"], text="edited")
    with pytest.raises(SlackApiError) as refused:
        quick.chat_update(channel=posted[-1]["channel"], ts=posted[-1]["ts"], text="edited")
    assert refused.value.response.status_code == 429
    assert refused.value.response.headers["Retry-After"] == str(math.ceil(60 / TIER_PER_MINUTE[3]))
    quick.users_info(user="U0ALICE")  # another method, another tier's bucket
    clock.now += 60 / TIER_PER_MINUTE[3]
    quick.chat_update(channel=posted[-1]["channel"], ts=posted[-1]["ts"], text="edited")
