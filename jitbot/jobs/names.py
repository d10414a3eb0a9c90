"""Every background job, named once: the name it is queued under and the dotted path RQ imports to run it."""

from __future__ import annotations

from enum import StrEnum

# The module RQ imports a job from (RQ stores the dotted path in Redis). A queued job outlives a deploy, so a
# path once released stays importable: workers.jobs keeps those of the release before this module existed.
ENTRY_MODULE = "jitbot.jobs.entry"


class JobName(StrEnum):
    """One member per job; its value names the job in RQ's dotted path, in the worker's log and in tests."""

    ISSUE = "issue"
    REVOKE = "revoke"
    RENEW = "renew"
    SYNC_SLACK = "sync_slack"
    ESCALATE = "escalate"
    REMIND = "remind"
    REVIEW_ALERT = "review_alert"
    ALERT_REVOCATION = "alert_revocation"
    TELL_DEFERRAL = "tell_deferral"
    PUBLISH_HOME = "publish_home"
    SCAN_CLOUDS = "scan_clouds"
    POST_REPORT = "post_report"

    @property
    def path(self) -> str:
        """What RQ stores for the job and imports to run it: derived, so the enqueuer and the worker agree."""
        return f"{ENTRY_MODULE}.{self.value}"
