"""The Slack stand-in's views methods: modals (views.open) and App Home tabs (views.publish), and what tests read of
them."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

from jitbot.testing.slack_http import view_param
from jitbot.testing.slack_methods_directory import AUTH


class ViewMethods:
    """Mixed into SlackStandIn, whose `__init__` sets the state declared here and which serves the calls."""

    _cond: threading.Condition
    _views: dict[str, dict[str, Any]]  # view id → the modal as views.open received it, with its id
    _triggers: set[str]  # Slack lets a trigger_id open one view
    _homes: dict[str, dict[str, Any]]  # user id → the Home tab last published for them

    def opened_views(self) -> list[dict[str, Any]]:
        """Every modal opened with views.open so far, in order, each with the `id` Slack gave it."""
        with self._cond:
            return [dict(v) for v in self._views.values()]

    def home(self, user: str) -> dict[str, Any] | None:
        """The App Home view last published for `user` (views.publish), with its `id`; None if never published."""
        with self._cond:
            view = self._homes.get(user)
            return dict(view) if view is not None else None

    def wait_for_home(
        self, user: str, predicate: Callable[[dict[str, Any]], bool] = lambda _: True, timeout: float = 10.0
    ) -> dict[str, Any]:
        """`user`'s Home view once the latest one published satisfies `predicate` (it is replaced whole on each
        publish, so this can wait for something to disappear too); AssertionError after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                view = self._homes.get(user)
                if view is not None and predicate(view):
                    return dict(view)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    shown = json.dumps(view)[:2000] if view is not None else "never published"
                    raise AssertionError(f"{user}'s Home did not match within {timeout}s; latest: {shown}")
                self._cond.wait(remaining)

    def _open_view(self, params: dict[str, Any]) -> dict[str, Any]:
        """views.open: a modal for the person whose trigger_id this is; a trigger opens one view at most."""
        trigger, view = str(params.get("trigger_id", "")), view_param(params)
        if not trigger:
            return {"ok": False, "error": "invalid_trigger_id"}
        if trigger in self._triggers:
            return {"ok": False, "error": "exchanged_trigger_id"}
        if view is None:
            return {"ok": False, "error": "invalid_arguments"}
        self._triggers.add(trigger)
        opened = {**view, "id": f"V{len(self._views) + 1:010d}", "team_id": AUTH["team_id"]}
        self._views[opened["id"]] = opened
        return {"ok": True, "view": opened}

    def _publish_view(self, params: dict[str, Any]) -> dict[str, Any]:
        """views.publish: the user's App Home tab, replaced whole; its view id stays the same per user."""
        user, view = str(params.get("user_id", "")), view_param(params)
        if not user:
            return {"ok": False, "error": "invalid_arguments"}
        if view is None or view.get("type") != "home":
            return {"ok": False, "error": "invalid_arguments"}
        published = {**view, "id": _home_id(user), "team_id": AUTH["team_id"]}
        self._homes[user] = published
        return {"ok": True, "view": published}


def _home_id(user: str) -> str:
    """Slack keeps one Home view per user and app; its id stays the same across publishes."""
    return "VH" + user[1:]
