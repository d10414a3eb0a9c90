"""Event names are stored in the hash-chained trail: the values are pinned, so a rename cannot rewrite history."""

from jitbot.core.events import AUTO, EventName

STORED = {
    *("requested", "refused", "endorsed", "approved", "denied", "granted", "failed", "expired", "revoked"),
    *("cancelled", "timed out", "escalated", "break-glass", "end requested", "extension requested"),
    *("extension endorsed", "extended", "extension denied", "extension timed out", "renewed"),
    *("review opened", "review re-alerted", "review acknowledged", "review flagged"),
    *("revocation deferred", "revocation failed", "renewal failed"),
    *("orphan removed", "orphan not removed", "announcement blocked"),
}


def test_event_names_when_read_then_exactly_the_names_already_on_the_trail() -> None:
    assert {name.value for name in EventName} == STORED and len(EventName) == len(STORED)


def test_auto_then_the_actor_the_trail_has_always_named() -> None:
    assert AUTO == "jitbot"
