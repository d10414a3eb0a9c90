"""Fuzzed `/access` text through the web process's real entry, in-process: always a clear ephemeral answer.

The app is the production one (`jitbot.web.WebApp` over `jitbot.runtime.build`: signature check, then Bolt)
on one FakeRedis, with the Slack stand-in as its Web API. Each command is signed exactly as Slack signs it.
The app answers as soon as its listener returns (process_before_response), ~1-2 ms a command, so the 10,000
examples take 30-50 s on 2 cores, about half of it hypothesis generating text. The fuzz found a bolt-python
bug: a command whose text contains "payload" was lost (see `jitbot.web.bolt_safe_body`).
"""

from __future__ import annotations

import io
import json
import string
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import fakeredis
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rq import Queue

from jitbot import runtime
from jitbot.config import Config
from jitbot.core.commands import MAX_REASON, USAGE
from jitbot.core.durations import MAX_DURATION as MAX_PERIOD
from jitbot.jobs.tasks import QUEUE, SERIALIZER
from jitbot.slack import listeners
from jitbot.store import audit
from jitbot.store.codec import decode
from jitbot.store.redis_url import Connected
from jitbot.testing.slack_sender import command_body, sign
from jitbot.testing.slack_standin import SlackStandIn
from jitbot.web import WebApp
from tests.integration.conftest import CATALOG

SECRET = "fuzz-signing-secret"
KNOWN_VERBS = {"help", "request", "report", "list", "revoke", "cancel", "extend", "resources", "breakglass"}
ECHO_LIMIT = 60  # the most characters of one typed word a reply may repeat verbatim
UNKNOWN_VERB_FRAME = len("I don't know ``.\n")
FUZZ = settings(
    max_examples=5_000,  # derandomized: the same 5,000 on every run (10,000 took 34 s of a CI kept under 10 min)
    deadline=None,
    derandomize=True,  # the same examples on every run: CI is deterministic
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)
FEW = settings(FUZZ, max_examples=300)

# --- strategies -------------------------------------------------------------------------------------------

CHARS = st.characters(exclude_categories=("Cs",))  # every code point a Slack payload can carry
ANY_TEXT = st.text(CHARS, max_size=2000)  # control characters included
SEPARATOR = st.sampled_from([" ", "  ", "\t", "\n", "\u3000", "\xa0", " \x1f ", "\r\n"])
VERB = st.sampled_from(
    [
        "request",
        "REQUEST",
        "Request",
        "help",
        "HELP",
        "report",
        "revoke",
        "list",
        "\uff32\uff25\uff31\uff35\uff25\uff33\uff34",
        "request\x00",
        "`",
    ]
) | st.text(max_size=30)
RESOURCE = st.sampled_from(
    ["prod-db", "two-keys", "staging-logs", "PROD-DB", "prod_db", "nope", "prod-db`", "<!channel>", "../etc", "*"]
) | st.text(min_size=1, max_size=100)
DURATION = (
    st.sampled_from(
        [
            *("0m", "0s0m", "99999999h", "1h30", "15m", "30s", "1h", "2h", "1h30m", "-1h", "1.5h", "999999d", "1 h"),
            *("30S", "1H", "1h1h1h", "59m60s", "3600s", "3601s", "1801s"),
            *("\u0661h", "\u0661\u0665m", "\uff12h", "\u00b2h", "\u216bh"),  # Arabic-Indic, fullwidth, ², Ⅻ
        ]
    )
    | st.from_regex(r"[0-9]{1,8}[smhdx]{0,3}", fullmatch=True)
    | st.sampled_from([2, 285, 1000, 1001]).map(lambda n: "999999d" * n)  # 1001 parts: past timedelta's max
    | st.text(max_size=50)
)
HOSTILE = [
    "<!channel>",
    "<!here>",
    "<@U0BOB>",
    "<https://evil.example|click me>",
    "`",
    "```",
    "*bold*",
    "&amp;",
    "\x00",
    "\x1b[31m",
    "%s%n",
    "{0}",
    "${jndi:ldap://x}",
    "' OR 1=1 --",
    "\u202e",
]
REASON = (
    st.lists(st.sampled_from(HOSTILE) | st.text(max_size=40), max_size=12).map(" ".join)
    | st.text(min_size=MAX_REASON - 20, max_size=MAX_REASON + 20)
    | st.text(max_size=2000)
)
STRUCTURED = st.tuples(VERB, RESOURCE, DURATION, REASON, st.integers(1, 4), SEPARATOR).map(
    lambda t: t[5].join(t[: t[4]])
)
USER = st.sampled_from(["U0ALICE", "U0BOB", "U0ADMIN"])
WORDY = string.ascii_letters + string.digits  # no markup characters: a verbatim echo cannot be a template's


# --- the app under test -----------------------------------------------------------------------------------


@dataclass
class Recorder:
    """Stands in for a structlog logger: keeps (level, event) pairs, prints nothing."""

    lines: list[tuple[str, str]] = field(default_factory=list)

    def __getattr__(self, level: str) -> Callable[..., None]:
        if level.startswith("_"):
            raise AttributeError(level)
        return lambda event, *args, **kwargs: self.lines.append((level, event))


class Harness:
    """The app under test and what it writes to; not a dataclass, so that hypothesis prints it in one line."""

    def __init__(self, app: WebApp, store: fakeredis.FakeRedis, rt: runtime.Runtime, listener_log: Recorder) -> None:
        self.app = app
        self.redis = store
        self.runtime = rt
        self.listener_log = listener_log

    def __repr__(self) -> str:
        return "Harness(jitbot's Bolt app on FakeRedis)"

    def send(self, user: str, text: str) -> tuple[int, dict[str, Any]]:
        """POST through the web process's WSGI entry, in-process: signature check, body fix-up, Bolt."""
        body = command_body(user, text)
        environ = {
            "REQUEST_METHOD": "POST",
            "PATH_INFO": "/slack/events",
            "CONTENT_LENGTH": str(len(body)),
            "wsgi.input": io.BytesIO(body),
            "CONTENT_TYPE": "application/x-www-form-urlencoded",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "QUERY_STRING": "",
            "wsgi.url_scheme": "http",
        }
        for name, value in sign(SECRET, body, int(time.time())).items():
            environ["HTTP_" + name.upper().replace("-", "_")] = value
        answered: list[str] = []
        chunks = self.app(environ, lambda status, headers: answered.append(status))
        data = b"".join(chunks)
        return int(answered[0].split()[0]), json.loads(data) if data else {}

    def answer(self, user: str, text: str) -> str:
        """The ephemeral reply to `/access <text>`, checked for what every reply must be, on an empty store."""
        self.redis.flushall()
        self.listener_log.lines.clear()
        status, reply = self.send(user, text)
        assert status == 200, (status, reply)
        if [word.lower() for word in text.split()] == ["request"]:  # the form opens; the ack says nothing
            assert reply == {}, reply
            return ""
        assert reply.get("response_type") == "ephemeral", reply
        answer = reply.get("text", "")
        assert isinstance(answer, str) and answer.strip(), reply
        assert answer != listeners.SORRY and "Traceback" not in answer, answer
        assert not [line for line in self.listener_log.lines if line[0] in ("error", "exception")]
        return answer

    def created(self) -> list[str]:
        return [key.decode() if isinstance(key, bytes) else key for key in self.redis.keys("jitbot:req:*")]

    def queued_jobs(self) -> int:
        return Queue(QUEUE, connection=self.redis, serializer=SERIALIZER).count


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    path = tmp_path_factory.mktemp("fuzz") / "jitbot.yml"
    path.write_text(CATALOG)
    store = fakeredis.FakeRedis()
    with SlackStandIn() as slack, pytest.MonkeyPatch.context() as patch:
        patch.setattr(runtime, "connect", lambda config: Connected(store, replicas=0))
        listener_log = Recorder()
        patch.setattr(listeners, "_log", listener_log)
        patch.setattr(audit, "_log", Recorder())  # 10,000 audit lines would only fill pytest's capture
        config = Config(
            slack_bot_token="xoxb-fuzz", slack_signing_secret=SECRET, slack_api_url=slack.url, config_path=str(path)
        )
        rt = runtime.build(config)
        yield Harness(WebApp(rt), store, rt, listener_log)


def check_consistent(harness: Harness, user: str, text: str, answer: str) -> None:
    """A request exists only when the reply names it, and it is exactly what was typed, within bounds."""
    created = harness.created()
    if not answer.startswith("Request `r-"):
        assert created == [], (text, answer)
        return
    assert len(created) == 1, created
    stored = decode(harness.redis.get(created[0]) or b"")
    assert f"`{stored.id}`" in answer
    words = text.split()
    resource = harness.runtime.catalog.resources[stored.resource]
    assert (words[0].lower(), words[1], stored.requester) == ("request", stored.resource, user)
    assert stored.reason == " ".join(words[3:]) and 0 < len(stored.reason.strip()) <= MAX_REASON
    assert resource.min_duration <= stored.duration <= resource.max_duration


# --- properties -------------------------------------------------------------------------------------------


@FUZZ
@given(user=USER, text=ANY_TEXT | STRUCTURED)
def test_access_command_when_text_is_anything_then_clear_ephemeral_reply_and_only_valid_requests_created(
    harness: Harness, user: str, text: str
) -> None:
    answer = harness.answer(user, text)
    check_consistent(harness, user, text, answer)
    words = text.split()
    if words and words[0].lower() not in KNOWN_VERBS:
        assert answer.endswith(USAGE) and len(answer) - len(USAGE) <= UNKNOWN_VERB_FRAME + ECHO_LIMIT, answer


@FEW
@given(verb=st.text(CHARS, min_size=ECHO_LIMIT, max_size=2000), rest=ANY_TEXT)
def test_access_command_when_verb_is_unknown_and_long_then_usage_and_at_most_sixty_characters_echoed(
    harness: Harness, verb: str, rest: str
) -> None:
    text = "x" + "".join(verb.split()) + " " + rest  # one long first word that no verb can be
    answer = harness.answer("U0ALICE", text)
    assert harness.created() == []
    assert answer.endswith(USAGE) and len(answer) - len(USAGE) <= UNKNOWN_VERB_FRAME + ECHO_LIMIT, answer


@FEW
@given(
    word=st.text(WORDY, min_size=ECHO_LIMIT + 1, max_size=2000),
    template=st.sampled_from(
        ["{w}", "request {w} 30m INC-1", "request prod-db {w} INC-1", "report {w}", "request prod-db 30m {w}"]
    ),
)
def test_access_command_when_a_typed_word_is_long_then_reply_repeats_at_most_sixty_characters_of_it(
    harness: Harness, word: str, template: str
) -> None:
    answer = harness.answer("U0ALICE", template.format(w=word))
    assert word[: ECHO_LIMIT + 1] not in answer, f"{len(word)} characters echoed by: {answer[:120]}…"


@FEW
@given(reason=st.text(CHARS, min_size=MAX_REASON + 1, max_size=10_240))
def test_access_command_when_reason_exceeds_the_limit_then_refused_naming_it_and_nothing_created(
    harness: Harness, reason: str
) -> None:
    if len(" ".join(reason.split())) <= MAX_REASON:
        reason = "x" * (MAX_REASON + 1) + reason
    answer = harness.answer("U0ALICE", f"request prod-db 30m {reason}")
    assert harness.created() == [] and harness.queued_jobs() == 0
    assert f"the limit is {MAX_REASON}" in answer


@pytest.mark.parametrize(
    ("user", "text"),
    [
        ("U0ALICE", "request prod-db " + "999999d" * 1001 + " INC-1"),  # 1,000,998,999 days: past timedelta's max
        ("U0ALICE", "request prod-db " + "999999d" * 2000 + " INC-1"),
        ("U0ADMIN", "report " + "999999d" * 1001),
    ],
)
def test_access_command_when_duration_parts_add_up_past_any_date_then_usage_reply_not_an_error(
    harness: Harness, user: str, text: str
) -> None:
    answer = harness.answer(user, text)
    assert harness.created() == [] and harness.queued_jobs() == 0
    assert "duration" in answer or "maximum" in answer or "at most" in answer, answer


@pytest.mark.parametrize("period", ["999999d", f"{MAX_PERIOD.days + 1}d"])
def test_access_command_when_report_period_exceeds_the_review_limit_then_refused_naming_it(
    harness: Harness, period: str
) -> None:
    """`jitbot report --period` refuses more than MAX_PERIOD; the slash command must too, not queue a failing job."""
    answer = harness.answer("U0ADMIN", f"report {period}")
    assert harness.queued_jobs() == 0, f"a report job was queued for {period}: {answer}"
    assert f"{MAX_PERIOD.days}d" in answer, answer
