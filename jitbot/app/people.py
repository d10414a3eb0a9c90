"""Who a Slack user is, who is in a user group, and so what each person may ask for.

Slack's answers are kept briefly in Redis: requests read the cache, so the ack stays fast. An approval, by a
person or by policy, asks Slack afresh, so that someone removed from a group or made a guest meanwhile is not
granted: a group's members always, a person unless Slack was asked about them in the last FRESH_S (users.info is
Tier 4, 100 a minute: a burst of requests approved as they are announced would otherwise ask twice per person,
and Slack would refuse some of both). When Slack cannot be asked, MessengerError leaves here and the caller
refuses: never allow by default.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from jitbot.app.ports import Directory
from jitbot.app.repository import Repository
from jitbot.core.catalog import Catalog, Resource
from jitbot.core.eligibility import (
    Installation,
    Person,
    Standing,
    classify,
    eligible,
    is_named,
    refusal,
    requester_groups,
)
from jitbot.core.errors import NotEligible

Origin = tuple[str | None, str | None]  # the team and enterprise a payload says the person acts from
FRESH_S = 30  # an answer of users.info this recent is as good as a new one (an approval, made as soon as announced)
# While a command is handled (People.asking): the person who sent it, and what the store held of them
_ASKING: ContextVar[tuple[str, dict[str, str] | None] | None] = ContextVar("jitbot_asking", default=None)


class People:
    def __init__(self, catalog: Catalog, directory: Directory, store: Repository) -> None:
        self.catalog = catalog
        self.directory = directory
        self.store = store
        self._installation: Installation | None = None

    def refusal(
        self, resource: Resource, user: str, breakglass: bool = False, fresh: bool = False, origin: Origin | None = None
    ) -> NotEligible | None:
        """Why `user` may not ask for `resource` (or break glass on it) now, or None. A person named by id needs
        no look-up: what Slack says of them cannot change the answer."""
        if is_named(resource, user, breakglass):
            return None
        groups = self.members(requester_groups([resource]), fresh)
        return refusal(resource, self.person(user, fresh, origin), groups, breakglass)

    def offered(self, user: str, origin: Origin | None = None) -> list[Resource]:
        """What `user` may ask for: the only resources the catalog, the form, App Home and help show them."""
        resources = list(self.catalog.resources.values())
        if all(is_named(r, user) for r in resources):
            return resources
        groups = self.members(requester_groups(resources))
        return eligible(resources, self.person(user, origin=origin), groups)

    def person(self, user: str, fresh: bool = False, origin: Origin | None = None) -> Person:
        """users.info, unless asked within the cache's time (`fresh`: within FRESH_S). A payload from another
        organisation's team makes the person external whatever the cache says."""
        cached = self._cached(user)
        if cached is not None and (not fresh or time.time() - float(cached.get("at", 0)) <= FRESH_S):
            person = Person(user, Standing(cached["standing"]), cached.get("email"))
        else:
            person = classify(user, self.directory.user_info(user), self.installation())
            facts = {"standing": person.standing.value, "at": f"{time.time():.0f}"}
            self._cache(user, facts | ({"email": person.email} if person.email else {}))
        if origin is not None and origin[0] and not self.installation().is_home(*origin):
            return Person(user, Standing.EXTERNAL, person.email)
        return person

    @contextmanager
    def asking(self, user: str, cached: dict[str, str] | None) -> Iterator[None]:
        """While `user`'s command is handled, `cached` (what the store held of them, read in the command's first
        round trip: Deliveries.first_command) stands for the cache: a command reads it once, not once per question."""
        token = _ASKING.set((user, cached))
        try:
            yield
        finally:
            _ASKING.reset(token)

    def _cached(self, user: str) -> dict[str, str] | None:
        asking = _ASKING.get()
        return asking[1] if asking is not None and asking[0] == user else self.store.deliveries.cached_person(user)

    def _cache(self, user: str, facts: dict[str, str]) -> None:
        self.store.deliveries.cache_person(user, facts)
        asking = _ASKING.get()
        if asking is not None and asking[0] == user:
            _ASKING.set((user, facts))

    def members(self, groups: Iterable[str], fresh: bool = False) -> dict[str, frozenset[str]]:
        """Each group's members (usergroups.users.list: Slack limits its calls per minute, hence the cache)."""
        found: dict[str, frozenset[str]] = {}
        for group in groups:
            cached = None if fresh else self.store.deliveries.cached_members(group)
            if cached is None:
                cached = self.directory.group_members([group])[group]
                self.store.deliveries.cache_members(group, cached)
            found[group] = cached
        return found

    def installation(self) -> Installation:
        """The workspace jitbot's token belongs to: asked once per process."""
        if self._installation is None:
            self._installation = Installation(*self.directory.installation())
        return self._installation
