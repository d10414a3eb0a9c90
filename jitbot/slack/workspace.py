"""Whether the Slack workspace is ready for the catalog (`jitbot check --live`): the bot token, its scopes, and the
channels, people and user groups the catalog names.

Read-only calls: auth.test, conversations.info, users.info, usergroups.list. Of a refusal only Slack's error code
is kept, never the request: its Authorization header carries the token.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from jitbot.core.catalog import NEEDS_IDENTITY, Catalog

# manifest.yml's bot scopes, each with what needs it (a test holds the two lists equal)
SCOPE_FEATURES = {
    "commands": "/access, the slash command",
    "chat:write": "approval messages, DMs and their updates in place (chat.postMessage, chat.update)",
    "usergroups:read": "who is in the user groups the catalog names (usergroups.users.list)",
    "im:write": "/access report: the admin's DM that carries the files (conversations.open)",
    "files:write": "/access report: the access review's files",
    "users:read": "who is asking: full member, guest, another organisation, bot (users.info)",
    "users:read.email": "the Slack profile email as the person's cloud identity (users.info's profile)",
    "channels:read": "jitbot invited to a public channel (member_joined_channel); jitbot check --live's channel check",
    "groups:read": "the same for a private channel (member_joined_channel, conversations.info)",
}
REINSTALL = "reinstall the app to the workspace and set SLACK_BOT_TOKEN to its new Bot User OAuth Token"
SET_TOKEN = "set SLACK_BOT_TOKEN to the app's Bot User OAuth Token (xoxb-…, under OAuth & Permissions)"
REFUSED = {  # auth.test's errors for a token Slack will not take (its method reference), with the fix
    "invalid_auth": SET_TOKEN,
    "not_authed": SET_TOKEN,
    "account_inactive": f"the token's app or workspace is gone: {REINSTALL}",
    "token_revoked": f"the token was revoked or the app removed: {REINSTALL}",
}
USER_PROBLEMS = {"user_not_found": "unknown to Slack (user_not_found): fix", "deactivated": "deactivated: remove from"}
LATER = ("scopes", "channels", "users", "user groups")  # what auth.test must pass before it can be asked


class State(StrEnum):
    OK = "ok"
    FAILED = "FAILED"
    NOT_CHECKED = "not checked"


@dataclass(frozen=True)
class Finding:
    subject: str
    state: State
    text: str


@dataclass
class Workspace:
    """What Slack said: the findings, and the people and user groups it knows (for `who may`)."""

    findings: list[Finding]
    users: dict[str, dict[str, Any] | str] = field(default_factory=dict)  # id → users.info's user, or the error
    groups: dict[str, dict[str, Any]] | None = None  # id → usergroups.list's group; None: not listed

    @property
    def failed(self) -> list[str]:
        return [f.subject for f in self.findings if f.state is State.FAILED]

    def name(self, entry: str) -> str:
        """An id as `who may` shows it: a user group with its members, a person with their name, and any id
        Slack does not know flagged."""
        if entry[0] == "S":
            group = None if self.groups is None else self.groups.get(entry)
            if group is None:
                return entry if self.groups is None else f"{entry} (UNKNOWN to Slack)"
            if group.get("date_delete"):
                return f"{entry} (disabled)"
            return f"{entry} ({', '.join(group.get('users') or []) or 'no members'})"
        user = self.users.get(entry)
        if user is None:
            return entry
        if isinstance(user, str):
            return f"{entry} (UNKNOWN to Slack: {user})"
        return f"{entry} ({'deactivated' if user.get('deleted') else user.get('name') or 'known'})"


def needed_scopes(catalog: Catalog) -> dict[str, str]:
    """The bot scopes the catalog's features need, each with the feature (and what in the catalog uses it)."""
    email = ", ".join(r.name for r in catalog.resources.values() if "email" in NEEDS_IDENTITY.get(r.kind, ()))
    admins = f"admins {', '.join(catalog.admins)}" if catalog.admins else ""  # /access report is for admins
    users_of = {  # the scopes only some catalogs need → what needs them ("": nothing); the others always
        "users:read.email": email and f"resources {email}",
        "usergroups:read": ", ".join(sorted(i for i in named_ids(catalog) if i[0] == "S")),
        "im:write": admins,
        "files:write": admins,
    }
    return {
        scope: feature + (f" ({users_of[scope]})" if scope in users_of else "")
        for scope, feature in SCOPE_FEATURES.items()
        if users_of.get(scope) != ""
    }


def named_ids(catalog: Catalog) -> dict[str, list[str]]:
    """Every Slack id the catalog names (channels C…/G…, user groups S…, users U…/W…) → the keys naming it."""
    where: dict[str, list[str]] = defaultdict(list)

    def note(ids: Iterable[str], key: str) -> None:
        for entry in ids:
            where[entry].append(key)

    note([catalog.approver_channel], "approver_channel")
    note([catalog.alert_channel] if catalog.alert_channel else [], "alert_channel")
    note(catalog.admins, "admins")
    note(catalog.identities, "identities")
    for r in catalog.resources.values():
        note([r.channel] if r.channel != catalog.approver_channel else [], f"resources.{r.name}.channel")
        for key in ("approvers", "requesters", "breakglass_requesters", "escalate_to"):
            note(getattr(r, key) or (), f"resources.{r.name}.{key}")
    return dict(where)


def check_workspace(client: WebClient, catalog: Catalog) -> Workspace:
    """Ask Slack, read-only, whether it is ready for the catalog; a refused token is the one finding checked."""
    auth = _ask(client, "auth.test")
    if auth.error is not None:
        skipped = [Finding(subject, State.NOT_CHECKED, "the token was refused") for subject in LATER]
        return Workspace([_token_refused(auth.error), *skipped])
    bot, granted, where = str(auth.data.get("user")), granted_scopes(auth.headers), named_ids(catalog)
    team = f"{auth.data.get('team')} ({auth.data.get('team_id')})"
    findings = [Finding("token", State.OK, f"bot @{bot} ({auth.data.get('user_id')}) in {team}")]
    findings += _scope_findings(granted, needed_scopes(catalog))
    findings += [_channel(client, c, keys, bot, granted or set()) for c, keys in where.items() if c[0] in "CG"]
    users = _ask_people(client, [i for i in where if i[0] in "UW"])
    findings += _people_findings(users, where)
    groups = {i: keys for i, keys in where.items() if i[0] == "S"}
    listed, lacking = _ask_groups(client) if groups else (None, None)
    findings += _group_findings(listed, lacking, groups)
    return Workspace(findings, users or {}, listed)


def granted_scopes(headers: Mapping[str, Any]) -> set[str] | None:
    """The token's scopes, as Slack lists them in the `x-oauth-scopes` header of its Web API answers (comma-separated;
    read so by node-slack-sdk's WebClient.buildResult and Bolt's authorization middleware); None without it."""
    value = next((str(v) for k, v in headers.items() if k.lower() == "x-oauth-scopes"), None)
    return None if value is None else {scope.strip() for scope in value.split(",") if scope.strip()}


def render(workspace: Workspace) -> str:
    width = max(len(f.subject) for f in workspace.findings)
    return "\n".join(f"  {f.subject.ljust(width)}  {f.state.value}: {f.text}" for f in workspace.findings)


@dataclass(frozen=True)
class _Answer:
    data: Mapping[str, Any]
    headers: Mapping[str, Any]

    @property
    def error(self) -> str | None:
        return None if self.data.get("ok") else str(self.data.get("error") or "unknown")


def _ask(client: WebClient, method: str, **params: str) -> _Answer:
    """One read-only call. A refusal is an answer too (`error`: Slack's code), and so is no answer at all."""
    try:
        response = client.api_call(method, http_verb="GET", params=params)
    except SlackApiError as error:
        data = error.response.data if isinstance(error.response.data, dict) else {}
        return _Answer({"ok": False, **data}, error.response.headers or {})
    except (SlackClientError, OSError) as error:  # unreachable: name the kind of failure, never the request
        return _Answer({"ok": False, "error": f"no answer from Slack ({type(error).__name__})"}, {})
    return _Answer(response.data if isinstance(response.data, dict) else {}, response.headers or {})


def _token_refused(error: str) -> Finding:
    if error in REFUSED:
        return Finding("token", State.FAILED, f"Slack refused it ({error}): {REFUSED[error]}")
    return Finding("token", State.FAILED, f"auth.test: {error}")


def _scope_findings(granted: set[str] | None, needed: dict[str, str]) -> list[Finding]:
    if granted is None:
        return [Finding("scopes", State.NOT_CHECKED, "Slack's answer carried no x-oauth-scopes header")]
    fix = "add it to the app's bot scopes (manifest.yml, or OAuth & Permissions) and reinstall the app"
    missing = [
        Finding(f"scope {scope}", State.FAILED, f"missing; needed for {why}: {fix}")
        for scope, why in needed.items()
        if scope not in granted
    ]
    return missing or [Finding("scopes", State.OK, f"all {len(needed)} needed: {', '.join(needed)}")]


def _channel(client: WebClient, channel: str, keys: list[str], bot: str, granted: set[str]) -> Finding:
    """A channel jitbot posts to: it exists, is not archived, and the bot is in it (or, public, may post anyway
    with chat:write.public). Slack answers channel_not_found also for a private channel the bot is not in."""
    subject, named = f"channel {channel}", f"(named in {', '.join(keys)})"
    answer = _ask(client, "conversations.info", channel=channel)
    if answer.error == "missing_scope":
        return Finding(subject, State.NOT_CHECKED, f"the token lacks {answer.data.get('needed', 'a scope')}")
    if answer.error == "channel_not_found":
        text = f"Slack knows no such channel {named}: fix the id or, if it is private, invite @{bot} to it"
        return Finding(subject, State.FAILED, text)
    if answer.error is not None:
        return Finding(subject, State.FAILED, f"conversations.info: {answer.error} {named}")
    info = answer.data.get("channel") or {}
    name = f"#{info.get('name') or channel}"
    if info.get("is_archived"):
        return Finding(subject, State.FAILED, f"{name} is archived: unarchive it, or name another channel {named}")
    if not info.get("is_member") and (info.get("is_private") or "chat:write.public" not in granted):
        return Finding(subject, State.FAILED, f"@{bot} is not in {name}: invite @{bot} to {name} {named}")
    return Finding(subject, State.OK, f"{name} {named}")


def _ask_people(client: WebClient, users: list[str]) -> dict[str, dict[str, Any] | str] | None:
    """users.info of each: the user, or Slack's error (user_not_found…); None when the token lacks users:read."""
    found: dict[str, dict[str, Any] | str] = {}
    for user in users:
        answer = _ask(client, "users.info", user=user)
        if answer.error == "missing_scope":
            return None
        found[user] = answer.error or dict(answer.data.get("user") or {})
    return found


def _people_findings(users: dict[str, dict[str, Any] | str] | None, where: dict[str, list[str]]) -> list[Finding]:
    if users is None:
        return [Finding("users", State.NOT_CHECKED, "the token lacks users:read")]
    problems = []
    for user, info in users.items():
        why = info if isinstance(info, str) else "deactivated" if info.get("deleted") else None
        if why is not None:
            text = f"{USER_PROBLEMS.get(why, f'users.info: {why}; see')} {', '.join(where[user])}"
            problems.append(Finding(f"user {user}", State.FAILED, text))
    return [Finding("users", State.OK, f"{len(users) - len(problems)} of {len(users)} known"), *problems]


def _ask_groups(client: WebClient) -> tuple[dict[str, dict[str, Any]] | None, str | None]:
    """Every user group, disabled ones too, with its members; else None and why (Slack's error code)."""
    answer = _ask(client, "usergroups.list", include_users="true", include_disabled="true")
    if answer.error is not None:
        return None, answer.error
    return {str(g.get("id")): dict(g) for g in answer.data.get("usergroups") or []}, None


def _group_findings(
    listed: dict[str, dict[str, Any]] | None, error: str | None, named: dict[str, list[str]]
) -> list[Finding]:
    if not named:
        return []
    if error == "missing_scope":
        return [Finding("user groups", State.NOT_CHECKED, "the token lacks usergroups:read")]
    if listed is None:
        return [Finding("user groups", State.FAILED, f"usergroups.list: {error}")]
    problems = []
    for group, keys in named.items():
        why = "unknown to Slack" if group not in listed else "disabled" if listed[group].get("date_delete") else None
        if why is not None:
            problems.append(Finding(f"user group {group}", State.FAILED, f"{why}: fix {', '.join(keys)}"))
    return [Finding("user groups", State.OK, f"{len(named) - len(problems)} of {len(named)} known"), *problems]
