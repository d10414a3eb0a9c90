"""The App Home tab: each person's grants and requests, and for approvers what waits for them.

Published when someone opens the tab and, for everyone a change concerns, on every change of state.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from jitbot.app.people import People
from jitbot.core.catalog import Catalog, Resource
from jitbot.core.clock import Clock
from jitbot.core.domain import AccessRequest, Status
from jitbot.core.policy import approver_groups, find_resource, is_approver
from jitbot.slack import lists
from jitbot.slack.notify import Notifier, NotifyError
from jitbot.slack.state import SlackStore

QUEUE_LIMIT = 200


class Homes:
    def __init__(self, catalog: Catalog, store: SlackStore, notifier: Notifier, people: People, clock: Clock) -> None:
        self.catalog = catalog
        self.store = store
        self.notifier = notifier
        self.people = people
        self.clock = clock

    def concerned(self, request: AccessRequest, groups: Mapping[str, frozenset[str]]) -> set[str]:
        """Whose Home shows `request`: the requester, and everyone who may decide on it."""
        resource = find_resource(self.catalog, request.resource)
        people = {request.requester, *self.catalog.admins}
        eligible = [*resource.approvers, *(resource.escalate_to if request.escalated else ())]
        people.update(a for a in eligible if a[0] in "UW")
        for group in eligible:
            people.update(groups.get(group, frozenset()))
        return people

    def publish_for(self, request: AccessRequest) -> None:
        """Republish the Home of everyone concerned who uses the tab. Slack shows a Home only once it has been
        opened: publishing for everyone else would spend Slack calls and store reads on every change."""
        viewers = self.store.slack.home_viewers()
        if not viewers:
            return
        groups = self.notifier.group_members(approver_groups(find_resource(self.catalog, request.resource)))
        self.publish(sorted(self.concerned(request, groups) & viewers), groups)

    def opened(self, user: str) -> None:
        """The person opened their Home: publish it now, and keep it current from now on."""
        self.store.slack.add_home_viewer(user)
        self.publish([user])

    def publish(self, users: Iterable[str], groups: Mapping[str, frozenset[str]] | None = None) -> None:
        if groups is None:
            every = sorted({g for r in self.catalog.resources.values() for g in approver_groups(r)})
            groups = self.notifier.group_members(every)
        undecided = self.store.requests.undecided(QUEUE_LIMIT)
        now = self.clock()
        for user in users:
            waiting = [r for r in undecided if self._waits_for(r, user, groups)]
            mine = self.store.requests.open_requests_of(user)
            self.notifier.publish_home(user, lists.home(user, mine, waiting, now, self._offered(user)))

    def _offered(self, user: str) -> list[Resource] | None:
        """What the person may ask for; None when Slack cannot say (the Home still shows their grants)."""
        try:
            return self.people.offered(user)
        except NotifyError:
            return None

    def _waits_for(self, request: AccessRequest, user: str, groups: Mapping[str, frozenset[str]]) -> bool:
        approvals = request.extend_approvals if request.status is Status.ACTIVE else request.approvals
        if user == request.requester or user in approvals:
            return False
        return is_approver(self.catalog, find_resource(self.catalog, request.resource), user, groups, request)
