"""The drift scan: access the clouds hold that jitbot made and no live grant explains, found and taken away.

Every revocation is read back when it happens (`Provider.verify_revoked`); this scan is the net under what
happens afterwards: a binding put back by another writer or a restored backup, an assignment left by a grant
whose record ended without its cloud call, a grant issued after its request ended whose one cut failed. Each
provider lists what carries jitbot's marks (`Provider.held`); what no approved or active request holds is
removed and audited `orphan removed` — or, if the cloud refuses, audited `orphan not removed`, counted in
`jitbot_orphaned_access` and alerted. `jitbot reconcile --clouds` runs one scan; the worker one every SCAN_EVERY.

The requests are read after the clouds: a grant issued meanwhile is found live, never taken for an orphan.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from jitbot.app.ports import Messenger
from jitbot.app.repository import Repository
from jitbot.core.catalog import Catalog, Resource
from jitbot.core.clock import Clock, utcnow
from jitbot.core.domain import Status
from jitbot.core.errors import ProviderError
from jitbot.core.events import AUTO, AuditEvent, EventName
from jitbot.observability import logs
from jitbot.providers.base import Held, Provider

SCAN_EVERY = timedelta(minutes=15)
EXPLAINING = {Status.APPROVED, Status.ACTIVE}  # being issued, or in force (ending included)
_log = logs.get("jitbot.drift")


@dataclass(frozen=True)
class Orphan:
    """Access no live grant explains; `error` says why the cloud did not let it be removed (None: removed)."""

    resource: str
    provider: str
    held: Held
    error: str | None = None


@dataclass(frozen=True)
class Scan:
    explained: int
    orphans: tuple[Orphan, ...]
    unreadable: tuple[tuple[str, str], ...]  # (resource, why its cloud could not be listed)

    @property
    def kept(self) -> tuple[Orphan, ...]:
        return tuple(orphan for orphan in self.orphans if orphan.error)

    @property
    def clean(self) -> bool:
        return not self.kept and not self.unreadable


class DriftScan:
    def __init__(
        self,
        catalog: Catalog,
        store: Repository,
        messenger: Messenger,
        provider: Callable[[Resource], Provider],
        clock: Clock = utcnow,
    ) -> None:
        self.catalog = catalog
        self.store = store
        self.messenger = messenger
        self.provider = provider
        self.clock = clock

    def run(self) -> Scan:
        """Look at every resource's cloud once; remove and audit what no live grant explains; report."""
        now = self.clock()
        seen: set[tuple[str, str]] = set()  # two catalog entries on one role find the same access
        explained, orphans, unreadable = 0, [], []
        for resource in self.catalog.resources.values():
            try:
                found = self.provider(resource).held(resource, now)
            except ProviderError as error:
                unreadable.append((resource.name, str(error)))
                continue
            fresh = [held for held in found if (resource.kind, held.what) not in seen]
            seen |= {(resource.kind, held.what) for held in fresh}
            live = self._live({holder for held in fresh for holder in held.holders})
            for held in fresh:
                if held.holders & live:
                    explained += 1
                elif (orphan := self._remove(resource, held, now)) is not None:
                    orphans.append(orphan)
        scan = Scan(explained, tuple(orphans), tuple(unreadable))
        self._report(scan, now)
        return scan

    def _live(self, holders: set[str]) -> set[str]:
        return {request.id for request in self.store.requests.many(sorted(holders)) if request.status in EXPLAINING}

    def _remove(self, resource: Resource, held: Held, now: datetime) -> Orphan | None:
        """Take it away and audit it; None when it was gone already (ended meanwhile: nothing to record)."""
        try:
            if not self.provider(resource).remove(held, resource, now):
                return None
        except ProviderError as error:
            orphan = Orphan(resource.name, resource.provider, held, str(error))
        else:
            orphan = Orphan(resource.name, resource.provider, held)
        detail = {"what": held.what, "holders": sorted(held.holders)} | (
            {"error": orphan.error} if orphan.error else {}
        )
        event = EventName.ORPHAN_KEPT if orphan.error else EventName.ORPHAN_REMOVED
        first = min(held.holders, default="-")
        self.store.chain.record(AuditEvent(event, first, AUTO, resource.name, now, "-", detail, resource.provider))
        return orphan

    def _report(self, scan: Scan, now: datetime) -> None:
        kept = Counter(orphan.provider for orphan in scan.kept)
        providers = {resource.provider for resource in self.catalog.resources.values()}
        findings = [(orphan.resource, orphan.held.what, orphan.error or "") for orphan in scan.kept]
        # Of what is found, not of the alert's text (the messenger renders that): a store written by an older
        # jitbot holds the text's hash, so the first scan after an upgrade may repeat its last alert, once.
        found = json.dumps([findings, scan.unreadable])
        fingerprint = "" if scan.clean else hashlib.sha256(found.encode()).hexdigest()
        before = self.store.locks.save_drift({provider: kept[provider] for provider in providers}, now, fingerprint)
        _log.info(
            "clouds_scanned",
            explained=scan.explained,
            removed=len(scan.orphans) - len(scan.kept),
            kept=len(scan.kept),
            unreadable=len(scan.unreadable),
        )
        if not fingerprint or fingerprint == before:
            return  # nothing to say, or the same as the alert before: said once
        self.messenger.alert_drift(findings, scan.unreadable, SCAN_EVERY)
