"""Background jobs on RQ — the only rq import in jitbot/. Jobs are named by JobName (jitbot.jobs), queued under the
dotted path RQ imports to run them, and take ids only."""

from __future__ import annotations

from typing import Protocol

import redis
from redis.client import Pipeline
from rq import Queue, Retry, get_current_job
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from jitbot.jobs.names import JobName

QUEUE = "jitbot"
# Every worker takes a job from here before any from QUEUE: issuing and ending access, and the Slack jobs that deliver
# or take away a secret, never wait behind a backlog of approval messages paced at one a second per channel.
URGENT_QUEUE = "jitbot-urgent"
QUEUES = (URGENT_QUEUE, QUEUE)  # in the order a worker listens
# jobs never carry secrets, but JSON keeps them readable to anyone auditing Redis, unlike pickle
SERIALIZER = JSONSerializer
ISSUE_RETRY = Retry(max=3, interval=[5, 20, 60])
REVOKE_RETRY = Retry(max=5, interval=[5, 10, 30, 60, 120])
SYNC_RETRY = Retry(max=10, interval=[2, 5, 15, 60, 120, 300, 600, 600, 600, 600])  # ~50 min of Slack outage
BUSY = {JobStatus.QUEUED, JobStatus.STARTED, JobStatus.SCHEDULED, JobStatus.DEFERRED}
# An issue job holds its request's lock for 2 minutes (lifecycle.ISSUE_LOCK) and must end within it: once the
# lock lapses, the reconciler may end a request the cloud is still granting (RQ's default timeout is 3 minutes).
ISSUE_TIMEOUT_S = 90


def make_queue(connection: redis.Redis, name: str = QUEUE) -> Queue:
    return Queue(name, connection=connection, serializer=SERIALIZER)


def waiting_jobs(connection: redis.Redis) -> int:
    """Jobs queued, running or scheduled (a retry, say) on every queue: 0 once all that was asked is done."""
    queues = [make_queue(connection, name) for name in QUEUES]
    registries = [r for q in queues for r in (q.started_job_registry, q.scheduled_job_registry)]
    return int(sum(q.count for q in queues) + sum(r.count for r in registries))


class Durable(Protocol):
    """What makes a write outlive a failover (jitbot.store.redis_url.Replicas is one)."""

    def wait(self) -> None:
        """Return once the writes so far have reached a replica (or once waiting for one is no use)."""
        ...


class Tasks:
    def __init__(self, connection: redis.Redis, replicas: Durable | None = None) -> None:
        self.queue = make_queue(connection)
        self.urgent = make_queue(connection, URGENT_QUEUE)
        self.replicas = replicas  # the jobs that issue and end access reach a replica (None: one Redis, no wait)

    def issue(self, request_id: str) -> None:
        self._once(JobName.ISSUE, request_id, f"issue-{request_id}", ISSUE_RETRY, timeout=ISSUE_TIMEOUT_S)

    def revoke_now(self, request_id: str) -> None:
        """End now (and the reconciler's second net): unless a revocation of it is already queued or running."""
        self._once(JobName.REVOKE, request_id, f"revoke-now-{request_id}", REVOKE_RETRY)

    def sync_slack(self, request_id: str, pipeline: Pipeline | None = None, *, urgent: bool = False) -> None:
        """Bring the approval message and the requester's DMs up to the request's current state. Given a
        pipeline (a transaction), the job is queued with whatever else it holds, or not at all. `urgent`: the access
        has ended, and its secrets are to be scrubbed and its end told."""
        queue = self.urgent if urgent else self.queue
        queue.enqueue_call(JobName.SYNC_SLACK.path, (request_id,), retry=SYNC_RETRY, pipeline=pipeline)

    def renew(self, request_id: str) -> None:
        """An extension was approved: the cloud's access is brought up to the new expiry."""
        self._once(JobName.RENEW, request_id, f"renew-{request_id}", ISSUE_RETRY)

    def escalate(self, request_id: str) -> None:
        self.queue.enqueue(JobName.ESCALATE.path, request_id, retry=SYNC_RETRY)

    def remind(self, request_id: str) -> None:
        self.queue.enqueue(JobName.REMIND.path, request_id, retry=SYNC_RETRY)

    def review_alert(self, request_id: str) -> None:
        """Post (or bring up to date) the break-glass alert and its review buttons."""
        self.queue.enqueue(JobName.REVIEW_ALERT.path, request_id, retry=SYNC_RETRY)

    def publish_home(self, user: str) -> None:
        self.queue.enqueue(JobName.PUBLISH_HOME.path, user, retry=SYNC_RETRY)

    def alert_revocation(self, request_id: str) -> None:
        self.urgent.enqueue(JobName.ALERT_REVOCATION.path, request_id, retry=SYNC_RETRY)

    def tell_deferral(self, request_id: str, why: str) -> None:
        """Tell the requester their access ends later than planned, and why (the cloud's words, never a secret)."""
        self.urgent.enqueue(JobName.TELL_DEFERRAL.path, request_id, why, retry=SYNC_RETRY)

    def scan_clouds(self) -> None:
        """The drift scan (jitbot.drift): once per claim, no retry (the next one comes SCAN_EVERY later)."""
        self.queue.enqueue(JobName.SCAN_CLOUDS.path, job_timeout=600)

    def post_report(self, user: str, period_s: int) -> None:
        self.queue.enqueue(JobName.POST_REPORT.path, user, period_s, job_timeout=600)

    def is_last_attempt(self) -> bool:
        """Inside a job: True when RQ will not retry it again (or when not running under RQ at all)."""
        job = get_current_job()
        return job is None or not job.retries_left

    def _once(self, name: JobName, request_id: str, job_id: str, retry: Retry, timeout: int | None = None) -> None:
        """An urgent job (issuing, renewing or ending access), unless one of that id is already queued or running."""
        existing = (
            Job.fetch(job_id, connection=self.queue.connection, serializer=SERIALIZER) if self._exists(job_id) else None
        )
        if existing is not None and existing.get_status(refresh=False) in BUSY:
            return
        self.urgent.enqueue(name.path, request_id, job_id=job_id, retry=retry, job_timeout=timeout)
        if self.replicas is not None:
            self.replicas.wait()

    def _exists(self, job_id: str) -> bool:
        return bool(self.queue.connection.exists(Job.key_for(job_id)))
