"""The Slack stand-in's workspace directory: who the bot is (auth.test), the people (users.info), the user groups
(usergroups.list, usergroups.users.list) and channels (conversations.info), and the scopes its token holds."""

from __future__ import annotations

from typing import Any

AUTH = {
    "ok": True,
    "url": "https://jitbot-test.slack.com/",
    "team": "Test",
    "user": "jitbot",
    "team_id": "T0TEAM",
    "user_id": "U0JITBOT",
    "bot_id": "B0JITBOT",
    "is_enterprise_install": False,
}
# the bot scope a method needs (its method reference); conversations.info needs one by the kind of channel
METHOD_SCOPES = {
    "users.info": "users:read",
    "usergroups.list": "usergroups:read",
    "usergroups.users.list": "usergroups:read",
}


class DirectoryMethods:
    """Mixed into SlackStandIn, whose `__init__` sets the state declared here; tests change it to describe the
    workspace."""

    usergroups: dict[str, list[str]]
    disabled_usergroups: set[str]  # of those, the ones disabled (usergroups.list)
    emails: dict[str, str]  # user id → the email on their profile (users.info); others have none
    # user id → what users.info says besides a full member's defaults (is_restricted, team_id, deleted, …);
    # None: no such user. An id not listed is a full member of the test workspace.
    people: dict[str, dict[str, Any] | None]
    # channel id → what conversations.info says besides its defaults (name, is_member, is_archived, is_private);
    # a channel not listed does not exist (channel_not_found)
    channels: dict[str, dict[str, Any]]
    scopes: set[str]  # the token's bot scopes (x-oauth-scopes): the manifest's

    def _missing_scope(self, scope: str | None) -> dict[str, Any] | None:
        """Slack's refusal of a method the token has no scope for: `missing_scope`, naming the scope `needed` and
        the scopes `provided` (the error fields of the Web API's method references)."""
        if scope is None or scope in self.scopes:
            return None
        return {"ok": False, "error": "missing_scope", "needed": scope, "provided": ",".join(sorted(self.scopes))}

    def _conversation_info(self, params: dict[str, Any]) -> dict[str, Any]:
        """conversations.info as Slack answers it (docs.slack.dev/reference/methods/conversations.info): the
        conversation with `name`, `is_private`, `is_archived` and `is_member` (whether the bot is in it);
        `channel_not_found` for an id it does not know, and for a private channel the bot is not in, which it
        cannot see. Its scope depends on the kind: channels:read for a public channel, groups:read for a private one.
        """
        channel = str(params.get("channel", ""))
        known = self.channels.get(channel)
        if known is None or (known.get("is_private") and not known.get("is_member", True)):
            return {"ok": False, "error": "channel_not_found"}
        conversation = {"id": channel, "name": channel.lower(), "is_channel": True, "is_private": False}
        conversation |= {"is_archived": False, "is_member": True, "is_mpim": False, "is_im": False, **known}
        scope = "groups:read" if conversation["is_private"] else "channels:read"
        return self._missing_scope(scope) or {"ok": True, "channel": conversation}

    def _usergroups_list(self, params: dict[str, Any]) -> dict[str, Any]:
        """usergroups.list (docs.slack.dev/reference/methods/usergroups.list): every user group of the workspace as
        usergroup objects, their members (`users`) only with include_users; `date_delete` is non-zero for a
        disabled group, listed only with include_disabled (`disabled_usergroups` holds the ids of those)."""
        wanted = {name for name in ("include_users", "include_disabled") if params.get(name) in ("1", "true", True)}
        groups = []
        for group, members in self.usergroups.items():
            disabled = group in self.disabled_usergroups
            if disabled and "include_disabled" not in wanted:
                continue
            entry = {"id": group, "team_id": AUTH["team_id"], "is_usergroup": True, "handle": group.lower()}
            entry |= {"date_delete": 1700000000 if disabled else 0, "user_count": len(members)}
            groups.append(entry | ({"users": list(members)} if "include_users" in wanted else {}))
        return {"ok": True, "usergroups": groups}

    def _user_info(self, params: dict[str, Any]) -> dict[str, Any]:
        """users.info as Slack answers it: `user_not_found` for an id it does not know; the standing flags
        (is_restricted and is_ultra_restricted for guests, is_bot, deleted, the home team_id of a Slack Connect
        user); the profile carries an email only for users in `emails` (as with users:read.email).

        Source: Slack's users.info method reference (errors: user_not_found) and the Web API client's
        UsersInfoResponse type (@slack/web-api): deleted, is_bot, is_app_user, is_restricted, is_ultra_restricted,
        is_stranger, team_id, enterprise_user.enterprise_id, profile.email."""
        user = str(params.get("user", ""))
        flags = self.people.get(user, {})
        if flags is None or not user:
            return {"ok": False, "error": "user_not_found"}
        profile = {"email": self.emails[user]} if user in self.emails else {}
        defaults = {"deleted": False, "is_bot": False, "is_app_user": False, "is_restricted": False}
        answer = {"id": user, "team_id": AUTH["team_id"], **defaults, "is_ultra_restricted": False, **flags}
        return {"ok": True, "user": {**answer, "profile": profile}}

    def _usergroup_users(self, params: dict[str, Any]) -> dict[str, Any]:
        users = self.usergroups.get(str(params.get("usergroup", "")))
        if users is None:
            return {"ok": False, "error": "no_such_subteam"}
        return {"ok": True, "users": list(users)}
