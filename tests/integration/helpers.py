"""Acting as Slack and reading what jitbot did: shared by the integration tests."""

import json
import re
import time
import urllib.error
import urllib.request
import uuid
from typing import Any

from jitbot.providers.aws_denies import is_denied, role_denies
from jitbot.slack import ids
from jitbot.testing.arm_standin import MANAGED_IDENTITY_API, SCHEDULE_REQUESTS_API
from jitbot.testing.slack_standin import Call
from jitbot.testing.stack import Stack

REQUEST_ID = re.compile(r"r-[a-z0-9]{6}")
EXPORT = re.compile(r"export (AWS_[A-Z_]+)=(\S+)")


def request_access(stack: Stack, user: str, text: str) -> tuple[str, Call]:
    """Type the slash command; return the new request id and the approval message jitbot posted."""
    reply = stack.sender.command(user, text)
    assert reply.status == 200, reply.body
    found = REQUEST_ID.search(reply.json()["text"])
    assert found, reply.body
    request_id = found.group(0)
    posted = stack.slack.wait_for(lambda c: c.method == "chat.postMessage" and request_id in c.params.get("text", ""))
    return request_id, posted


def click(stack: Stack, user: str, action_id: str, request_id: str, posted: Call) -> None:
    reply = stack.sender.click(user, action_id, request_id, channel_id=posted.params["channel"], message_ts="1")
    assert reply.status == 200, reply.body


def approve(stack: Stack, user: str, request_id: str, posted: Call) -> None:
    click(stack, user, ids.APPROVE, request_id, posted)


def deny(stack: Stack, user: str, request_id: str, posted: Call, reason: str = "") -> None:
    """Click Deny, wait for the reason form jitbot opens, and submit it as the approver would."""
    since = time.monotonic()
    click(stack, user, ids.DENY, request_id, posted)
    stack.slack.wait_for(
        lambda c: c.method == "views.open" and c.at >= since and opened_view(c).get("private_metadata") == request_id
    )
    reply = stack.sender.submit_view(user, ids.DENY_FORM, {ids.REASON_INPUT: reason}, private_metadata=request_id)
    assert reply.status == 200, reply.body


def opened_view(call: Call) -> dict[str, Any]:
    view = call.params.get("view", {})
    return json.loads(view) if isinstance(view, str) else dict(view)


def credentials_dm(stack: Stack, user: str, request_id: str, timeout: float = 30) -> tuple[Call, dict[str, str]]:
    dm = stack.slack.wait_for(
        lambda c: (
            c.method == "chat.postMessage"
            and c.params.get("channel") == user
            and "granted" in c.params.get("text", "")
            and request_id in c.params.get("text", "")
        ),
        timeout,
    )
    return dm, dict(EXPORT.findall(json.dumps(dm.params["blocks"]).replace("\\n", "\n")))


def audit_events(stack: Stack, request_id: str) -> list[dict[str, str]]:
    entries = stack.redis().xrange("jitbot:audit")
    decoded = [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in entries]
    return [e for e in decoded if e["request_id"] == request_id]


def events(stack: Stack, request_id: str) -> list[str]:
    return [e["event"] for e in audit_events(stack, request_id)]


def audit_mark(stack: Stack) -> bytes:
    last = stack.redis().xrevrange("jitbot:audit", count=1)
    return last[0][0] if last else b"0-0"


def audit_after(stack: Stack, mark: bytes) -> list[dict[str, str]]:
    entries = stack.redis().xrange("jitbot:audit", min=b"(" + mark)
    return [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in entries]


def wait_until(predicate: Any, timeout: float = 30, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def denied(stack: Stack, request_id: str, role: str = "jit-prod-db") -> bool:
    """Whether jitbot's deny policy on `role` cuts the request's sessions."""
    return is_denied(role_denies(stack.aws("iam"), role), request_id)


def message_text(stack: Stack, channel: str, ts: str) -> str:
    return json.dumps(stack.slack.message(channel, ts))


def slack_refs(stack: Stack, request_id: str) -> dict[str, str]:
    raw = stack.redis().hgetall(f"jitbot:slack:{request_id}")
    return {k.decode(): v.decode() for k, v in raw.items()}


def assign_in_pim(stack: Stack, scope: str, properties: dict[str, Any]) -> None:
    """An AdminAssign made straight through the ARM API, as an admin (or a lost jitbot) would make it."""
    token_url = f"{stack.arm.identity_endpoint}?api-version={MANAGED_IDENTITY_API}&resource={stack.arm.url}"
    asked = urllib.request.Request(token_url, headers={"X-IDENTITY-HEADER": stack.arm.identity_header})
    with urllib.request.urlopen(asked, timeout=10) as answer:
        token = json.load(answer)["access_token"]
    path = f"{scope}/providers/Microsoft.Authorization/roleAssignmentScheduleRequests/{uuid.uuid4()}"
    put = urllib.request.Request(
        f"{stack.arm.url}{path}?api-version={SCHEDULE_REQUESTS_API}",
        data=json.dumps({"properties": {"requestType": "AdminAssign", **properties}}).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="PUT",
    )
    with urllib.request.urlopen(put, timeout=10) as answer:
        assert answer.status == 201


def probe(port: int, path: str) -> tuple[int, dict[str, Any]]:
    """GET a health endpoint (/livez, /readyz, /healthz) on 127.0.0.1:`port`: its status and JSON body."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read())
