"""The one error tree of jitbot; every error a person can see is a JitError with a message for them.

JitError                    message is safe to show the person who caused it
├── UsageError              the command text could not be understood
├── PolicyError             understood, but not allowed (bounds, who may approve, …)
│   └── NotEligible         this person may not ask for this resource; `code` is the audited reason
├── NotFound                no such request or resource
├── InvalidTransition       the request is no longer in a state where that makes sense
│   └── TimedOut            a decision came after the request's (or its extension's) deadline
├── ConfigError             jitbot.yml or the environment is wrong (stops start-up)
├── GaveUp                  Redis stayed away longer than JITBOT_REDIS_GIVE_UP_S allows (stops the process)
└── ProviderError           a cloud refused or failed; `retryable` says whether to try again
"""

from __future__ import annotations

from datetime import datetime


class JitError(Exception):
    """Base of every error jitbot raises on purpose; str(error) is written for a person."""

    audited = False  # set once the refusal it stands for is in the audit trail, so it is recorded once
    code: str | None = None  # a refusal's named reason, for the audit trail (`guest`, `not eligible`, …)


class UsageError(JitError):
    """The command could not be parsed."""


class PolicyError(JitError):
    """The command is understood but the catalog's policy does not allow it."""


class NotEligible(PolicyError):
    """Who is asking may not ask for this: `code` names why, for the audit trail (`guest`, `not eligible`, …)."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


class NotFound(JitError):
    """No such request or resource."""


class InvalidTransition(JitError):
    """The request's current status does not allow the action."""


class TimedOut(InvalidTransition):
    """Nobody decided by the deadline: the decision is refused, and the caller times the request out (a late
    reconciler must not let a stale request through)."""


class MessengerError(JitError):
    """The people-facing side (Slack) refused or could not be reached; the message names what was asked and its
    answer. A use case that needed an answer refuses (never allow by default); one that only tells waits for a
    retry (jitbot.app.ports)."""


class ConfigError(JitError):
    """A setting or the catalog is wrong; the message names the setting or key."""


class GaveUp(JitError):
    """Redis has been unreachable longer than the operator allows: the process exits for its supervisor."""


class ProviderError(JitError):
    """A cloud call failed. Never carries a secret.

    `not_before`, when the cloud said when to try again (Retry-After, Azure PIM's first five minutes): a retry
    earlier than that is pointless, and waiting for it is not a failure worth an alert.
    `unanswered`: the cloud did not answer at all (no connection, or no reply within the SDK's timeouts). The
    attempt has already waited; another soon costs the cloud nothing, and uses it again as soon as it is back.
    `throttled`: the cloud answered that jitbot calls too often (HTTP 429, AWS's Throttling): nothing is wrong, the
    call is to be made again soon, no earlier than `not_before` when the cloud named a time (Retry-After).
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        not_before: datetime | None = None,
        unanswered: bool = False,
        throttled: bool = False,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.not_before = not_before
        self.unanswered = unanswered
        self.throttled = throttled


def echo(user_text: str, limit: int = 40) -> str:
    """At most `limit` characters of what someone typed, safe inside `code` markup in a reply."""
    text = user_text.replace("`", "'")
    return text if len(text) <= limit else text[:limit] + "…"
