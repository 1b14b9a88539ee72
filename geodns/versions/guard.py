"""RolloutGuard: the control plane's holder of rollouts, one per service, kept on disk.

Called from the event loop, and quick: every mutation is a pure step (rollout.py) and one
small atomic file write. A mutation whose write fails changes nothing in memory either,
so what the guard enforces is always what a restart would load.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from geodns.health.state import StateSnapshot
from geodns.versions import rollout as core
from geodns.versions.rollout import Rollout, RolloutNotFound, RolloutRefused
from geodns.versions.store import RolloutStore
from geodns.zones.model import Service, ZoneSet

__all__ = ["RolloutGuard", "RolloutNotFound", "RolloutRefused"]


class RolloutGuard:
    def __init__(self, store: RolloutStore, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock
        # The latest rollout per service key, finished ones included so status shows them.
        self.rollouts: dict[str, Rollout] = store.load()

    def _commit(self, rollout: Rollout) -> Rollout:
        rollouts = {**self.rollouts, rollout.service: rollout}
        self.store.save(rollouts)
        self.rollouts = rollouts
        return rollout

    def get(self, service_key: str) -> Rollout:
        """The service's latest rollout; RolloutNotFound when it never had one."""
        rollout = self.rollouts.get(service_key.rstrip("."))
        if rollout is None:
            raise RolloutNotFound(f"no rollout of {service_key.rstrip('.')}")
        return rollout

    def start(
        self,
        service: Service,
        state: StateSnapshot,
        to: str,
        min_old: int = 2,
        soak_seconds: float | None = None,
    ) -> Rollout:
        existing = self.rollouts.get(service.key)
        return self._commit(
            core.start(service, state, to, min_old, soak_seconds, self.clock(), existing)
        )

    def begin(self, service: Service, state: StateSnapshot, region: str) -> Rollout:
        rollout = self.get(service.key)
        return self._commit(core.begin(rollout, service, state, region, self.clock()))

    def validate(self, service_key: str) -> Rollout:
        return self._commit(core.validate(self.get(service_key), self.clock()))

    def abort(self, service_key: str) -> Rollout:
        return self._commit(core.abort(self.get(service_key), self.clock()))

    def observe(self, zones: ZoneSet, state: StateSnapshot) -> list[str]:
        """Progress every active rollout from a new state (call it on a timer too: a soak
        ends with time alone); returns a log line per change. Rollouts of services no
        longer in the zones wait unchanged until they come back or are aborted."""
        now = self.clock()
        services = {s.key: s for s in zones.services()}
        changed: dict[str, Rollout] = {}
        lines: list[str] = []
        for key, rollout in self.rollouts.items():
            service = services.get(key)
            if service is None or not rollout.active:
                continue
            after = core.observe(rollout, service, state, now)
            if after != rollout:
                changed[key] = after
                lines += core.changes(rollout, after)
        if changed:
            rollouts = {**self.rollouts, **changed}
            self.store.save(rollouts)
            self.rollouts = rollouts
        return lines

    def drained(self) -> set[tuple[str, str]]:
        """(service key, region) pairs the guard holds drained now."""
        return {(key, name) for key, r in self.rollouts.items() for name in core.drained_regions(r)}

    def approved(self, service: Service, state: StateSnapshot) -> frozenset[str]:
        """Versions plain answers of `service` may reach."""
        return core.approved_versions(
            self.rollouts.get(service.key), core.current_version(service, state)
        )

    def canary(self, service: Service) -> str | None:
        """The new version before validation, for version-named hosts and the canary share."""
        return core.canary_version(self.rollouts.get(service.key))
