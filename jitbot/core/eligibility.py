"""Who may ask for what: a Slack user's standing, a resource's `requesters`, its identity domains — pure.

Where a resource names no `requesters`, every full member of the workspace jitbot is installed in may ask;
guests, people of another organisation (Slack Connect), bots and deactivated accounts only when a resource
names them by user id. `breakglass_requesters` narrows break-glass: both lists must let the person in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from jitbot.core.catalog import NEEDS_IDENTITY, Resource
from jitbot.core.domain import AccessRequest, session_name
from jitbot.core.errors import NotEligible
from jitbot.core.policy import mentions
from jitbot.providers.aws_settings import AwsSettings

Groups = Mapping[str, frozenset[str]]  # user-group id → its members


class Standing(StrEnum):
    """What Slack says a user is; the value is the refusal's audited reason."""

    MEMBER = "member"
    GUEST = "guest"
    EXTERNAL = "external organisation"
    BOT = "bot or app"
    DEACTIVATED = "deactivated"


@dataclass(frozen=True)
class Installation:
    """The workspace (or Enterprise Grid organisation) jitbot is installed in, as auth.test names it."""

    team_id: str
    enterprise_id: str | None = None

    def is_home(self, team_id: str | None, enterprise_id: str | None) -> bool:
        """Whether a team (and enterprise) is this installation's own: in a Grid organisation every workspace
        of the organisation is; elsewhere only the one workspace."""
        if self.enterprise_id:
            return enterprise_id == self.enterprise_id or team_id in (self.team_id, self.enterprise_id)
        return team_id == self.team_id


@dataclass(frozen=True)
class Person:
    user: str
    standing: Standing
    email: str | None = None


def classify(user: str, info: Mapping[str, Any], installation: Installation) -> Person:
    """A person from users.info's `user` object: deactivated, bot, from another organisation, guest, or member."""
    enterprise = info.get("enterprise_user") or {}
    if info.get("deleted"):
        standing = Standing.DEACTIVATED
    elif info.get("is_bot") or info.get("is_app_user") or info.get("is_workflow_bot"):
        standing = Standing.BOT
    elif info.get("is_stranger") or not installation.is_home(info.get("team_id"), enterprise.get("enterprise_id")):
        standing = Standing.EXTERNAL
    elif info.get("is_restricted") or info.get("is_ultra_restricted"):
        standing = Standing.GUEST
    else:
        standing = Standing.MEMBER
    email = (info.get("profile") or {}).get("email")
    return Person(user, standing, str(email) if email else None)


REFUSALS = {
    Standing.GUEST: "Guests of this workspace can ask only for what names them in its `requesters`",
    Standing.EXTERNAL: "People of another organisation (Slack Connect) can ask only for what names them in its"
    " `requesters`",
    Standing.BOT: "Bots and apps can ask only for what names them in its `requesters`",
    Standing.DEACTIVATED: "A deactivated account can ask for nothing",
}
NOT_ELIGIBLE = "not eligible"
OUTSIDE_DOMAINS = "identity outside allowed domains"


def refusal(resource: Resource, person: Person, groups: Groups, breakglass: bool = False) -> NotEligible | None:
    """Why `person` may not ask for `resource` (or break glass on it), or None if they may."""
    lists = [("ask for", resource.requesters)]
    if breakglass and resource.breakglass_requesters is not None:
        lists.append(("break glass on", resource.breakglass_requesters))
    for verb, allowed in lists:
        if allowed is not None and person.user in allowed:
            continue
        if person.standing is not Standing.MEMBER:
            return NotEligible(f"{REFUSALS[person.standing]}; `{resource.name}` does not.", person.standing.value)
        if allowed is None or any(person.user in groups.get(group, frozenset()) for group in allowed):
            continue
        return NotEligible(
            f"You may not {verb} `{resource.name}`: it is for {mentions(allowed)}. Ask an admin if you need it.",
            NOT_ELIGIBLE,
        )
    return None


def withdrawn_note(resource: Resource, refused: NotEligible) -> str:
    """Why a request was denied by policy at approval: its requester may no longer ask."""
    return f"may no longer ask for `{resource.name}` ({refused.code})"


def eligible(resources: Iterable[Resource], person: Person, groups: Groups) -> list[Resource]:
    """The resources `person` may ask for: all that the catalog, the form, App Home and help offer them."""
    return [r for r in resources if refusal(r, person, groups) is None]


def requester_groups(resources: Iterable[Resource]) -> tuple[str, ...]:
    """The user groups whose membership decides who may ask for any of `resources`, each once."""
    found = {g for r in resources for g in (*(r.requesters or ()), *(r.breakglass_requesters or ())) if g[0] == "S"}
    return tuple(sorted(found))


def is_named(resource: Resource, user: str, breakglass: bool = False) -> bool:
    """Named by user id in every list that applies: Slack's facts about the person cannot change the answer."""
    lists = [resource.requesters]
    if breakglass and resource.breakglass_requesters is not None:
        lists.append(resource.breakglass_requesters)
    return all(names is not None and user in names for names in lists)


def email_in_use(resource: Resource, identity: Mapping[str, str]) -> str | None:
    """The email the resource's cloud will grant to, if an email is what it will use."""
    wanted = NEEDS_IDENTITY.get(resource.kind, ())
    used = next((key for key in wanted if identity.get(key)), None)
    return identity["email"] if used == "email" else None


def check_identity_domain(resource: Resource, identity: Mapping[str, str]) -> None:
    """An email-mapped identity must be in the resource's `identity_domains`, when it has any: a Slack profile's
    email is editable by its owner in many workspaces, and a binding to a personal address must not happen."""
    email = email_in_use(resource, identity)
    if not resource.identity_domains or email is None:
        return
    domain = email.rsplit("@", 1)[-1].lower()
    if domain not in resource.identity_domains:
        allowed = ", ".join(resource.identity_domains)
        raise NotEligible(
            f"`{resource.name}` grants only to addresses at {allowed}; yours is at {domain}."
            " Ask an admin to map you under `identities:` in jitbot.yml.",
            OUTSIDE_DOMAINS,
        )


def principal(request: AccessRequest, resource: Resource) -> str:
    """Where the access goes, in the cloud's own terms: what approvers see before they click."""
    identity = request.identity
    if resource.kind == "aws":
        return f"role session `{session_name(request)}` of `{resource.settings_as(AwsSettings).role_arn}`"
    if resource.kind == "aws-sso":
        return "Identity Center user " + (
            f"`{identity['aws_sso_user_id']}`" if identity.get("aws_sso_user_id") else f"`{identity.get('email')}`"
        )
    if resource.kind == "azure":
        name = request.grant.get("principal_name")
        oid = request.grant.get("principal_id") or identity.get("azure_object_id")
        return f"Entra object id `{oid}`" + (f" ({name})" if name else "")
    if resource.kind == "gcp":
        return f"`user:{identity.get('email')}`"
    return f"`{identity.get('email') or request.requester}`"
