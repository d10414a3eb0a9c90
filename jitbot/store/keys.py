"""Every Redis key jitbot writes, each with what it holds: the one place a key's name is spelt (as rq's keys.py).

Data already in Redis is read by these names, so a name never changes; tests/unit/test_keys.py pins them. RQ's own
keys (`rq:*`) are RQ's.
"""

from __future__ import annotations

import hashlib

EXPIRY = "jitbot:expiry"  # ACTIVE grants by expiry; APPROVED ones by the latest their grant could end: the schedule
PENDING = "jitbot:pending"  # PENDING requests by the time they time out
TIMERS = "jitbot:timers"  # `<kind>:<request id>` by when the reconciler should act (auto-approve, escalate, …)
UNDECIDED = "jitbot:undecided"  # requests (or extensions) waiting for approvers, by when they were asked
HOME_VIEWERS = "jitbot:home_viewers"  # people who have opened jitbot's App Home: theirs is kept current
REVIEWS = "jitbot:reviews"  # open break-glass reviews by their next re-alert
DRIFT = "jitbot:drift"  # the last drift scan: `orphaned:<provider>` counts, `scanned_at`, `findings` (a hash)
DRIFT_DUE = "jitbot:drift:due"  # held while the scan is not due: the worker that takes it queues one
UNVERIFIED_SINCE = "jitbot:unverified:since"  # per reason: refused since its last audit record
AUDIT = "jitbot:audit"  # the audit trail: a stream of hash-chained records (jitbot.audit)
AUDIT_HEAD = "jitbot:audit:head"  # the trail's last record as `seq:hash`, written with it
COUNTERS = "jitbot:metrics:counters"  # every process's counters, field `<family>:<label>…` (jitbot.metrics)
REVOCATION_LAG = "jitbot:metrics:revocation_lag"  # the histogram: a cumulative count per bucket bound, and `sum`
REPLICATED = "jitbot:replicated"  # a counter written just before WAIT (jitbot.redis_url.Replicas)
SLACK_PACE = "jitbot:slack:pace:"  # prefix: Slack token buckets (store.pacing): `channel:<id>`, `method:<name>`


def request_key(request_id: str) -> str:
    """A request, encoded (jitbot.store.codec)."""
    return f"jitbot:req:{request_id}"


def slack_key(request_id: str) -> str:
    """A request's Slack message references (approval message, DM, digest, the channel it waits for)."""
    return f"jitbot:slack:{request_id}"


def mine_key(user: str) -> str:
    """A person's open requests (pending, approved, active), by creation: their list and App Home."""
    return f"jitbot:mine:{user}"


def review_key(request_id: str) -> str:
    """A break-glass grant's review: status, who closed it and when, alerts sent."""
    return f"jitbot:review:{request_id}"


def digest_key(channel: str, ts: str) -> str:
    """The requests a digest message carries, each with the version of it the message shows."""
    return f"jitbot:digest:{channel}:{ts}"


def blocked_key(channel: str) -> str:
    """Requests whose approval message waits for an admin to fix `channel`."""
    return f"jitbot:blocked:{channel}"


def failures_key(request_id: str) -> str:
    """A grant's failed revocations: count, last error, first failure, whether alerted."""
    return f"jitbot:revoke_failures:{request_id}"


def shared_key(key: str) -> str:
    """The holders of a cloud object grants share, and whether jitbot created it; any text in, a bounded key out."""
    return "jitbot:shared:" + hashlib.sha256(key.encode()).hexdigest()[:32]


def person_key(user: str) -> str:
    """What Slack said of a person (standing, email), for a short while."""
    return f"jitbot:person:{user}"


def group_key(group: str) -> str:
    """A Slack user group's members, for a short while."""
    return f"jitbot:group:{group}"


def delivery_key(delivery: str) -> str:
    """A Slack delivery seen (its trigger_id), then the reply given to it; any text in, a bounded key out."""
    return "jitbot:delivery:" + hashlib.sha256(delivery.encode()).hexdigest()[:32]


def lock_key(name: str) -> str:
    """An exclusive section's holder (a random token)."""
    return f"jitbot:lock:{name}"


def slack_alert_key(channel: str, code: str) -> str:
    """Held while an alert of one Slack misconfiguration (channel and error) is recent."""
    return f"jitbot:slack_alert:{channel}:{code}"


def unverified_window_key(reason: str) -> str:
    """Held while an audit record of requests refused for `reason` is recent."""
    return f"jitbot:unverified:window:{reason}"
