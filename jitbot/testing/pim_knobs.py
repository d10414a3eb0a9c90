"""What a test sets in the ARM stand-in's PIM (`ArmStandIn.pim`): each role's policy, the five-minute rule, the names
it knows, a schedule request that settles later, an assignment someone else made."""

from __future__ import annotations

import threading
from datetime import timedelta

from jitbot.testing.pim import Pim
from jitbot.testing.role_management import Assignment, PimPolicy


class PimKnobs:
    """The knobs of one stand-in's `Pim`, each turned under the stand-in's lock (the server thread reads them)."""

    def __init__(self, pim: Pim, lock: threading.Lock) -> None:
        self._pim = pim
        self._lock = lock

    @property
    def min_active(self) -> timedelta:
        """PIM refuses to remove an assignment younger than this."""
        return self._pim.min_active

    @min_active.setter
    def min_active(self, value: timedelta) -> None:
        self._pim.min_active = value

    @property
    def role_definitions(self) -> dict[str, str]:
        """GUID → role name (the dict itself: add to it)."""
        return self._pim.role_definitions

    @property
    def principal_names(self) -> dict[str, str]:
        """Object id → the display name Entra ID knows it by (the dict itself: add to it)."""
        return self._pim.principal_names

    def set_policy(self, scope: str, role_definition_id: str, policy: PimPolicy) -> None:
        """The role management policy for this role at this scope (PIM keeps one per scope and role)."""
        with self._lock:
            self._pim.set_policy(scope, role_definition_id, policy)

    def pending(self, status: str, *, gets: int = 1, final: str | None = None) -> None:
        """The next schedule request that ARM accepts answers `status` and takes effect only when, `gets` GETs later,
        it answers `final` (Provisioned for an assign or extend, Revoked for a remove; a failure: no effect)."""
        with self._lock:
            self._pim.next_pending = (status, gets, final)

    def standing(self, scope: str, role_definition_id: str, principal_id: str, duration: timedelta) -> Assignment:
        """An active assignment another admin made in the portal: no ticket, not jitbot's request."""
        with self._lock:
            return self._pim.standing(scope, role_definition_id, principal_id, duration)
