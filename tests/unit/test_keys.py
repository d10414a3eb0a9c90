"""Key names are data: Redis already holds what earlier versions wrote under them, so each is pinned here."""

import hashlib

from jitbot.store import keys

NAMES = {
    "EXPIRY": "jitbot:expiry",
    "PENDING": "jitbot:pending",
    "TIMERS": "jitbot:timers",
    "UNDECIDED": "jitbot:undecided",
    "HOME_VIEWERS": "jitbot:home_viewers",
    "REVIEWS": "jitbot:reviews",
    "DRIFT": "jitbot:drift",
    "DRIFT_DUE": "jitbot:drift:due",
    "UNVERIFIED_SINCE": "jitbot:unverified:since",
    "AUDIT": "jitbot:audit",
    "AUDIT_HEAD": "jitbot:audit:head",
    "COUNTERS": "jitbot:metrics:counters",
    "REVOCATION_LAG": "jitbot:metrics:revocation_lag",
    "REPLICATED": "jitbot:replicated",
    "SLACK_PACE": "jitbot:slack:pace:",
}


def test_keys_constants_then_named_as_before() -> None:
    assert {name: getattr(keys, name) for name in NAMES} == NAMES
    assert {name for name in vars(keys) if name.isupper()} == set(NAMES)  # a new key is pinned here too


def test_keys_of_one_thing_then_named_as_before() -> None:
    assert keys.request_key("r-abc234") == "jitbot:req:r-abc234"
    assert keys.slack_key("r-abc234") == "jitbot:slack:r-abc234"
    assert keys.mine_key("U0ALICE") == "jitbot:mine:U0ALICE"
    assert keys.review_key("r-abc234") == "jitbot:review:r-abc234"
    assert keys.digest_key("C0APPROVALS", "1.2") == "jitbot:digest:C0APPROVALS:1.2"
    assert keys.blocked_key("C0APPROVALS") == "jitbot:blocked:C0APPROVALS"
    assert keys.failures_key("r-abc234") == "jitbot:revoke_failures:r-abc234"
    assert keys.person_key("U0ALICE") == "jitbot:person:U0ALICE"
    assert keys.group_key("S0GROUP") == "jitbot:group:S0GROUP"
    assert keys.lock_key("issue:r-abc234") == "jitbot:lock:issue:r-abc234"
    assert keys.slack_alert_key("C0APPROVALS", "not_in_channel") == "jitbot:slack_alert:C0APPROVALS:not_in_channel"
    assert keys.unverified_window_key("forged") == "jitbot:unverified:window:forged"


def test_keys_hashed_then_bounded_and_as_before() -> None:
    assert keys.shared_key("arn:aws:sso:::instance/x|123|U") == "jitbot:shared:" + _sha(
        "arn:aws:sso:::instance/x|123|U"
    )
    assert keys.delivery_key("1.2.trigger") == "jitbot:delivery:" + _sha("1.2.trigger")
    assert len(keys.delivery_key("x" * 10_000)) == len("jitbot:delivery:") + 32


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]
