"""Whether a web process may be sent work: what /livez, /readyz and /healthz check (jitbot.web serves them).

- live: the process answers; nothing else is asked.
- ready: Redis answers, Slack accepted the bot token (auth.test), the catalog is loaded.
- healthy: Redis answers — what /healthz has always meant, and what the stack and older probes wait on.

Slack is asked by a watcher thread, never by a probe: at start, then every RECHECK_S while the token is refused or
Slack cannot be reached (so a token Slack accepts again is seen without a restart) and every CONFIRM_S once it is
accepted (so a token revoked later is seen too). A probe reads the last verdict: a thousand probes, no Slack call.
Only Slack's word on the token decides: once it accepted the token, Slack failing or out of reach leaves the
process ready (every pod unready at once would turn a Slack outage into a jitbot outage that outlasts it).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import redis

from jitbot.observability import logs
from jitbot.observability.outage import describe
from jitbot.slack.notify import Notifier, NotifyError, SlackMisconfigured
from jitbot.store import Store

OK = "ok"
# auth.test "allows hundreds of requests per minute" (https://docs.slack.dev/reference/methods/auth.test): a check
# every 30 s per web worker while something is wrong, every 5 minutes while all is well, is far below that
RECHECK_S = 30.0
CONFIRM_S = 300.0
_log = logs.get("jitbot.health")


@dataclass(frozen=True)
class Verdict:
    """Slack's last answer on the bot token. `str()` is what /readyz shows: the kind and Slack's error code, never
    the token; `fix` (for the log) says what an operator should do."""

    kind: str  # ok, refused, error, unreachable, unchecked
    code: str = ""
    fix: str = ""

    def __str__(self) -> str:
        return f"{self.kind}: {self.code}" if self.code else self.kind


class SlackToken:
    """The bot token as Slack last judged it; `watch` keeps the verdict current."""

    def __init__(self, notifier: Notifier) -> None:
        self.notifier = notifier
        self.verdict = Verdict("unchecked")
        self.accepted = False  # Slack's last definitive word on the token: accepted (True) or refused

    @property
    def shown(self) -> str:
        """What /readyz says of Slack: `ok` on an accepted token even while Slack fails or is out of reach."""
        if self.accepted and self.verdict.kind in ("error", "unreachable"):
            return OK
        return str(self.verdict)

    def check(self) -> float:
        """Ask Slack once; log the verdict when it changes; the seconds until Slack should be asked again."""
        verdict = self._ask()
        if verdict != self.verdict:
            log, said = (_log.info if verdict.kind == OK else _log.error), {"error": verdict.code, "fix": verdict.fix}
            log(f"slack_token_{verdict.kind}", **{key: value for key, value in said.items() if value})
        self.verdict = verdict
        if verdict.kind in (OK, "refused"):
            self.accepted = verdict.kind == OK
        return CONFIRM_S if verdict.kind == OK else RECHECK_S

    def watch(self, wait: Callable[[float], bool]) -> None:
        """Check, then check again after each pause `check` asks for, until `wait` (an Event's) says stop."""
        while not wait(self.check()):
            pass

    def _ask(self) -> Verdict:
        try:
            self.notifier.installation()
        except SlackMisconfigured as error:  # the token errors, each with its fix
            return Verdict("refused" if error.token_refused else "error", error.slack_error, error.fix)
        except NotifyError as error:  # a 5xx, a 429, an answer that is not Slack's
            return Verdict("error", fix=str(error))
        except OSError as error:  # no answer at all: a name that does not resolve, a refused connection, a timeout
            url = self.notifier.client.base_url
            return Verdict("unreachable", fix=f"let this process reach SLACK_API_URL ({url}): {describe(error)}")
        return Verdict(OK)


def start_watching(token: SlackToken, stop: threading.Event) -> threading.Thread:
    """`token.watch` in a daemon thread until `stop` is set (in a gunicorn worker, never: it ends with the worker)."""
    thread = threading.Thread(target=token.watch, args=(stop.wait,), name="slack-token-watch", daemon=True)
    thread.start()
    return thread


class Readiness:
    def __init__(self, store: Store, token: SlackToken) -> None:
        self.store = store
        self.token = token

    def live(self) -> dict[str, str]:
        return {}

    def healthy(self) -> dict[str, str]:
        try:
            self.store.ping()
        except redis.RedisError:
            return {"redis": "unreachable"}
        return {"redis": OK}

    def ready(self) -> dict[str, str]:
        # a Readiness is built from a runtime, and there is no runtime without a loaded catalog (a bad one stops
        # start-up), so that check is passed by the time anyone can ask
        return {**self.healthy(), "slack": self.token.shown, "catalog": OK}
