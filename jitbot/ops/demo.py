"""`jitbot demo`: the whole access flow on this machine, printed as the Slack conversation it makes.

Here the setup and the script (who does what, and what must follow); how it is printed is demo_transcript's.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from importlib.resources import files
from pathlib import Path
from typing import TextIO

from jitbot.core.durations import parse_duration
from jitbot.ops.demo_transcript import Transcript, credentials_in, flatten, place, readable
from jitbot.providers.aws import STS_MIN_SECONDS
from jitbot.providers.aws_denies import DENY_POLICY
from jitbot.slack import ids
from jitbot.store import Store, embedded
from jitbot.testing.slack_standin import Call
from jitbot.testing.stack import Stack

REQUESTER, APPROVER, OUTSIDER = "U0ALICE", "U0BOB", "U0EVE"
APPROVER_CHANNEL = "C0APPROVALS"
ROLE = "jit-prod-db"
USERGROUPS = {"S0DBAS": ["U0CAROL"]}  # what the stand-in answers when jitbot asks who is in a group
CREDENTIAL_NAMES = ("ACCESS_KEY_ID", "SECRET_ACCESS_KEY", "SESSION_TOKEN")
STEP_TIMEOUT_S = 30.0
EXPIRY_GRACE_S = 60.0


class Missing(Exception):
    """An expected step of the demo did not happen in time."""


@dataclass
class Timings:
    start: float = 0.0
    ack: float = 0.0
    click_to_dm: float = 0.0
    expiry_to_scrub: float = 0.0


def play(
    home: Path | None = None,
    grant: str = "20s",
    out: TextIO = sys.stdout,
    stack_hook: Callable[[Stack], None] | None = None,
) -> int:
    """Run the demo; 0 when every step happened, 1 when one did not, 2 when moto is not installed.

    `stack_hook` is called with the started Stack (tests use it to read the Slack stand-in's calls).
    """
    home = home or Path.cwd() / ".jitbot" / "demo"
    wipe(home)
    stack = Stack(home, demo_catalog())
    transcript = Transcript(out)
    try:
        return Demo(stack, transcript, grant).run(stack_hook)
    except KeyboardInterrupt:
        transcript.say("\ninterrupted: stopping the processes…")
        return 130
    finally:
        stack.slack.on_call = None
        stack.stop()


def demo_catalog() -> str:
    return files("jitbot.ops").joinpath("demo.yml").read_text(encoding="utf-8")


def wipe(home: Path) -> None:
    """Forget an earlier run: stop its Redis, remove its data, logs and catalog (and nothing else)."""
    embedded.stop(home / ".jitbot")
    shutil.rmtree(home / ".jitbot", ignore_errors=True)
    for name in ("jitbot.yml", "web.log", "worker.log", "sweeper.log"):
        (home / name).unlink(missing_ok=True)


class Demo:
    def __init__(self, stack: Stack, transcript: Transcript, grant: str) -> None:
        self.stack = stack
        self.say = transcript
        self.grant = grant
        self.timings = Timings()

    @cached_property
    def store(self) -> Store:
        """The store the processes share, read to find what Slack cannot tell: message ts, grant end."""
        return Store(self.stack.redis())

    def run(self, stack_hook: Callable[[Stack], None] | None) -> int:
        self.introduce()
        try:
            if not self.start():
                return 2
            if stack_hook is not None:
                stack_hook(self.stack)
            self.script()
        except Missing as missing:
            self.say.say(f"\nThe demo stopped: {missing}.")
            self.say.say(f"What the processes logged: {self.stack.home}/{{web,worker,sweeper}}.log")
            return 1
        self.summarise()
        return 0

    def introduce(self) -> None:
        self.say.say("jitbot demo: one access request, from the slash command to the grant's end, on this machine.")
        self.say.say("  - a real Redis (embedded, under " + str(self.stack.home / ".jitbot") + ")")
        self.say.say(
            "  - the real `jitbot web` (gunicorn), `jitbot worker` (RQ with its scheduler) and `jitbot sweeper`"
            " (revokes at expiry) processes"
        )
        self.say.say("  - a stand-in for the Slack Web API: what jitbot says in Slack is printed below as a chat")
        self.say.say("  - moto in place of AWS: the IAM role arn:aws:iam::123456789012:role/jit-prod-db")
        self.say.say(f"Cast: @{REQUESTER} asks; @{APPROVER} approves; @{OUTSIDER} is not an approver.")

    def start(self) -> bool:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's server would log every AWS call
        started = time.monotonic()
        try:
            self.stack.start()
        except ImportError:
            self.say.say("the demo needs moto: pip install 'jitbot[demo]'")
            return False
        except RuntimeError as error:  # a process exited or web never became healthy: the logs say why
            raise Missing(f"the stack did not start ({str(error).splitlines()[0]})") from None
        self.stack.slack.usergroups.update(USERGROUPS)
        self.stack.slack.on_call = self.say.on_call
        self.timings.start = time.monotonic() - started
        self.say.say(f"All started in {self.timings.start:.1f}s; the conversation follows.")
        return True

    def script(self) -> None:
        request_id = self.request()
        self.refused_clicks(request_id)
        credentials = self.approve(request_id)
        self.list_mine()
        self.use(credentials)
        self.expire(request_id)
        self.show_deny()

    # --- steps ----------------------------------------------------------------------------------

    def request(self) -> str:
        self.say.heading(f"1. @{REQUESTER} asks for access")
        text = f"request prod-db {self.grant} rotating keys for INC-123"
        with self.say.holding():
            self.say.chat("#general", f"@{REQUESTER}", [f"/access {text}"])
            reply = self.stack.sender.command(REQUESTER, text)
            if reply.status != 200:
                raise Missing(f"the web process answered the slash command with HTTP {reply.status}")
            self.timings.ack = reply.elapsed
            self.say.chat("#general", f"jitbot (only @{REQUESTER} sees)", [readable(reply.json().get("text", ""))])
        posted = self.expect("the approval message", lambda c: _posted(c, APPROVER_CHANNEL))
        return str(posted.params["blocks"][-1]["elements"][0]["value"])

    def refused_clicks(self, request_id: str) -> None:
        self.say.heading(f"2. @{OUTSIDER}, who is not an approver, clicks Approve")
        self.click(OUTSIDER, request_id)
        self.expect(f"the refusal for @{OUTSIDER}", lambda c: _ephemeral_to(c, OUTSIDER))
        self.say.heading(f"3. @{REQUESTER} tries to approve her own request")
        self.click(REQUESTER, request_id)
        self.expect(f"the refusal for @{REQUESTER}", lambda c: _ephemeral_to(c, REQUESTER))

    def approve(self, request_id: str) -> dict[str, str]:
        self.say.heading(f"4. @{APPROVER} approves")
        clicked = self.click(APPROVER, request_id)
        dm = self.expect(
            "the DM with the credentials", lambda c: _posted(c, REQUESTER) and bool(credentials_in(c.params))
        )
        self.timings.click_to_dm = dm.at - clicked
        self.expect("the approval message showing the grant", lambda c: _updated(c, APPROVER_CHANNEL, "granted"))
        return credentials_in(dm.params)

    def list_mine(self) -> None:
        self.say.heading(f"5. @{REQUESTER} looks at what she holds")
        self.say.chat("#general", f"@{REQUESTER}", ["/access list"])
        reply = self.stack.sender.command(REQUESTER, "list")
        if reply.status != 200:
            raise Missing(f"the web process answered /access list with HTTP {reply.status}")
        answer = reply.json()
        self.say.chat("#general", f"jitbot (only @{REQUESTER} sees)", flatten(answer.get("blocks"), answer["text"]))

    def use(self, credentials: dict[str, str]) -> None:
        keys = {f"aws_{name.lower()}": credentials[f"AWS_{name}"] for name in CREDENTIAL_NAMES}
        arn = self.stack.aws("sts", **keys).get_caller_identity()["Arn"]
        self.say.say(f"\nThe credentials work: {arn}")
        self.say.say("  (asked with the real secret, through `aws sts get-caller-identity` on moto)")

    def expire(self, request_id: str) -> None:
        ends = self.store.requests.get(request_id).expires_at
        if ends is None:
            raise Missing(f"the request {request_id} is not active")
        left = max(ends.timestamp() - time.time(), 0)
        self.say.heading(f"6. waiting for the grant to expire ({left:.0f}s left, at {ends.astimezone():%H:%M:%S})…")
        timeout = parse_duration(self.grant).total_seconds() + EXPIRY_GRACE_S
        scrubbed = self.expect("the scrubbed DM", lambda c: _updated(c, "D" + REQUESTER[1:], "removed"), timeout)
        self.expect("the approval message showing the expiry", lambda c: _updated(c, APPROVER_CHANNEL, "expired"))
        self.timings.expiry_to_scrub = time.time() - (time.monotonic() - scrubbed.at) - ends.timestamp()

    def show_deny(self) -> None:
        iam = self.stack.aws("iam")
        if DENY_POLICY not in iam.list_role_policies(RoleName=ROLE)["PolicyNames"]:
            raise Missing(f"jitbot put no deny policy on the role {ROLE}")
        document = iam.get_role_policy(RoleName=ROLE, PolicyName=DENY_POLICY)["PolicyDocument"]
        statement = (json.loads(document) if isinstance(document, str) else document)["Statement"][0]
        self.say.say(
            f"\nThe session is cut in AWS too (STS credentials live at least {STS_MIN_SECONDS // 60} minutes):"
        )
        self.say.say(f"the role {ROLE} now carries the inline policy {DENY_POLICY}")
        self.say.say(
            f"  Effect: {statement['Effect']}   Action: {statement['Action']}   Resource: {statement['Resource']}"
        )
        self.say.say(f"  Condition: {json.dumps(statement['Condition'])}")

    def summarise(self) -> None:
        t, home = self.timings, self.stack.home
        self.say.heading("Summary")
        self.say.say(f"  slash command acknowledged in    {t.ack * 1000:.0f} ms (Slack allows 3 s)")
        self.say.say(f"  approving click → credential DM  {t.click_to_dm:.2f} s")
        side = "after" if t.expiry_to_scrub >= 0 else "before"
        self.say.say(f"  credential DM scrubbed           {abs(t.expiry_to_scrub):.2f} s {side} the grant's end")
        self.say.say(f"  stack started in                 {t.start:.1f} s")
        self.say.say(f"What the processes logged: {home}/{{web,worker,sweeper}}.log")

    # --- helpers --------------------------------------------------------------------------------

    def click(self, user: str, request_id: str) -> float:
        """Click Approve as `user` in the approval message; the moment of the click (monotonic)."""
        refs = self.store.slack.slack_refs(request_id)
        channel, ts = refs.get("approval_channel", APPROVER_CHANNEL), refs.get("approval_ts", "")
        self.say.chat(place(channel), f"@{user}", ["clicks [Approve]"])
        clicked = time.monotonic()
        reply = self.stack.sender.click(user, ids.APPROVE, request_id, channel_id=channel, message_ts=ts)
        if reply.status != 200:
            raise Missing(f"the click by @{user} was answered with HTTP {reply.status}")
        return clicked

    def expect(self, what: str, predicate: Callable[[Call], bool], timeout: float = STEP_TIMEOUT_S) -> Call:
        try:
            return self.stack.slack.wait_for(predicate, timeout)
        except AssertionError:
            raise Missing(f"{what} did not arrive within {timeout:.0f}s") from None


def _posted(call: Call, channel: str) -> bool:
    return call.method == "chat.postMessage" and call.params.get("channel") == channel


def _updated(call: Call, channel: str, marker: str) -> bool:
    shown = json.dumps(call.params.get("blocks") or "").lower()
    return call.method == "chat.update" and call.params.get("channel") == channel and marker in shown


def _ephemeral_to(call: Call, user: str) -> bool:
    return call.method == "chat.postEphemeral" and call.params.get("user") == user
