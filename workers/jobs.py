"""Kept for jobs queued by an older jitbot: up to 0.1.0, jobs were queued as `workers.jobs.<name>`, and RQ keeps
that path in Redis across a deploy (a queued job, a scheduled retry, a failed job requeued by hand). Each name
runs its job through the registry (jitbot.jobs), as `jitbot.jobs.entry.<name>` now does.

Delete this module in the release after the one that introduced jitbot.jobs, once no queue, scheduled retry or
failed-job registry of a deployment still holds a `workers.jobs.` job."""

from __future__ import annotations

from jitbot.jobs.entry import for_this_process
from jitbot.jobs.names import JobName

issue = for_this_process(JobName.ISSUE)
revoke = for_this_process(JobName.REVOKE)
renew = for_this_process(JobName.RENEW)
sync_slack = for_this_process(JobName.SYNC_SLACK)
escalate = for_this_process(JobName.ESCALATE)
remind = for_this_process(JobName.REMIND)
review_alert = for_this_process(JobName.REVIEW_ALERT)
alert_revocation = for_this_process(JobName.ALERT_REVOCATION)
tell_deferral = for_this_process(JobName.TELL_DEFERRAL)
publish_home = for_this_process(JobName.PUBLISH_HOME)
scan_clouds = for_this_process(JobName.SCAN_CLOUDS)
post_report = for_this_process(JobName.POST_REPORT)
