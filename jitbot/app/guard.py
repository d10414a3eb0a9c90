"""What every use case shares — the catalog, the store, who people are, the clock — and the one way each loads the
request a person names and audits a refusal: once, on the request it is about, or as a refused command."""

from __future__ import annotations

from jitbot.app.people import People
from jitbot.app.repository import Repository
from jitbot.core.catalog import Catalog, Resource
from jitbot.core.clock import Clock, utcnow
from jitbot.core.domain import AccessRequest, Change, refusal
from jitbot.core.errors import InvalidTransition, JitError, NotFound, PolicyError, echo
from jitbot.core.events import AuditEvent, EventName
from jitbot.core.policy import approver_groups, is_approver

DUPLICATE = "duplicate delivery: a replay, or Slack sent it twice"
REQUEST_ID_LENGTH = 8
SLACK_UNAVAILABLE = "slack unavailable"  # the audited reason when the directory could not say who may ask
UNKNOWN = "unknown"  # the resource of a refused command that names none in the catalog


class Guard:
    def __init__(self, catalog: Catalog, store: Repository, people: People, clock: Clock = utcnow) -> None:
        self.catalog = catalog
        self.store = store
        self.people = people  # the process's one: its installation is asked of the directory once
        self.directory = people.directory
        self.clock = clock

    def load(self, request_id: str) -> AccessRequest:
        """The stored request; what is not shaped like an id is refused before Redis is asked."""
        if len(request_id) != REQUEST_ID_LENGTH or not request_id.startswith("r-"):
            raise NotFound(f"`{echo(request_id)}` is not a request id (they look like `r-7k3q9x`; see `/access list`).")
        return self.store.requests.get(request_id)

    def load_clicked(self, request_id: str, clicker: str, attempted: str) -> AccessRequest:
        """The request a button names; a button naming none is audited, with what it named escaped."""
        try:
            return self.load(request_id)
        except NotFound as error:
            detail = {"attempted": attempted, "reason": str(error), "value": echo(request_id)}
            self.store.chain.record(AuditEvent(EventName.REFUSED, "-", clicker, "-", self.clock(), "-", detail))
            error.audited = True
            raise

    def guarded(self, request: AccessRequest, user: str, attempted: str, change: Change) -> AccessRequest:
        """Apply `change` to the fresh state; a refusal (policy or state) is audited and re-raised."""
        try:
            updated, _ = self.store.requests.transition(request.id, change)
        except (PolicyError, InvalidTransition) as error:
            self.refuse(request, user, attempted, error)
            raise
        return updated

    def refuse(
        self, request: AccessRequest, user: str, attempted: str, error: JitError, code: str | None = None
    ) -> None:
        """Audit a refusal about one request, once: the error carries that it was recorded."""
        self.store.chain.record(refusal(request, user, attempted, str(error), self.clock(), code or error.code))
        error.audited = True

    def refuse_command(self, user: str, text: str, reason: str, code: str | None = None) -> None:
        """Audit a refused command. Its `resource` is a catalog name, `-` when none was typed, else `unknown`
        with the typed word (escaped, cut short) in `detail`: what a user types never fills a column that
        auditors and exports read as a catalog value (a planted `=HYPERLINK(…)`, say)."""
        detail = {"attempted": "command", "reason": reason} | ({"refusal": code} if code else {})
        named = _first_arg(text)
        if named != "-" and self.catalog.resource(named) is None:
            named, detail["typed"] = UNKNOWN, echo(named)
        self.store.chain.record(AuditEvent(EventName.REFUSED, "-", user, named, self.clock(), "-", detail))

    def groups_of(self, resource: Resource, user: str, request: AccessRequest) -> dict[str, frozenset[str]]:
        """User-group members, looked up at click time, and only when the user is not listed by id."""
        if user == request.requester or is_approver(self.catalog, resource, user, {}, request):
            return {}
        try:
            return self.directory.group_members(approver_groups(resource))
        except JitError as error:
            self.refuse(request, user, "lookup", error)
            raise


def _first_arg(text: str) -> str:
    words = text.split()
    return words[1] if len(words) > 1 else "-"
