"""Everything jitbot's Slack listeners drive, built once per process: the use cases and the Slack side of them."""

from __future__ import annotations

from dataclasses import dataclass

from jitbot.app.deciding import Deciding
from jitbot.app.guard import Guard
from jitbot.app.ports import Jobs, Messenger
from jitbot.app.requesting import Requesting
from jitbot.slack.commands import Commands
from jitbot.slack.notify import Notifier
from jitbot.slack.submissions import Submissions


@dataclass(frozen=True)
class Surface:
    requesting: Requesting
    deciding: Deciding
    commands: Commands
    submissions: Submissions
    jobs: Jobs
    notifier: Notifier  # answers a click, and opens the forms

    def channel_joined(self, channel: str) -> None:
        """jitbot was invited to `channel`: every request waiting to be announced there goes out now, once
        (jitbot.slack.repair held them; the announcement itself is idempotent)."""
        for request_id in self.notifier.store.slack.unblock_channel(channel):
            self.jobs.sync_slack(request_id)


def build_surface(guard: Guard, jobs: Jobs, notifier: Notifier, messenger: Messenger) -> Surface:
    requesting, deciding = Requesting(guard, jobs), Deciding(guard, jobs, messenger)
    commands = Commands(requesting, notifier)
    return Surface(requesting, deciding, commands, Submissions(commands, deciding, messenger), jobs, notifier)
