"""The rollout guard across a fleet: every decision is one compare-and-swap in the store.

The rules are pure (geodns.versions.rollout); this module reads the shared rollouts, runs a
rule on them and on the node's current region state, and commits the result in one store
transaction that holds only if nothing it read has changed since: the service's rollout
and every operator force on its regions. Two `begin`s on two nodes, or two pipelines
calling two nodes at once, cannot both pass the check: the second transaction fails, is
run again on the state the first left, and is refused by the rules if it would now break
`min_old`. What the guard drains follows from the shared rollouts, so every node drains
the same regions.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from geodns.health.state import StateSnapshot
from geodns.store.follower import SharedFollower
from geodns.store.kv import Txn
from geodns.store.shared import force_key, rollout_key, rollout_value
from geodns.versions import rollout as core
from geodns.versions.rollout import Rollout, RolloutNotFound, RolloutRefused
from geodns.versions.serving import current_version
from geodns.zones.model import Service, ZoneSet

__all__ = ["RolloutConflict", "RolloutGuard", "RolloutNotFound", "RolloutRefused"]

ATTEMPTS = 5  # a decision is run again this often when the store changed under it


class RolloutConflict(RolloutRefused):
    """The state kept changing under a decision: nothing was changed; try again."""


class RolloutGuard:
    def __init__(
        self,
        shared: SharedFollower,
        state: Callable[[], StateSnapshot],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.shared = shared
        self._state = state  # the node's current region state, forces of the store applied
        self.clock = clock

    @property
    def rollouts(self) -> dict[str, Rollout]:
        """The latest rollout per service key, finished ones included so status shows them."""
        return dict(self.shared.state.rollouts)

    def get(self, service_key: str) -> Rollout:
        """The service's latest rollout; RolloutNotFound when it never had one."""
        rollout = self.shared.state.rollouts.get(service_key.rstrip("."))
        if rollout is None:
            raise RolloutNotFound(f"no rollout of {service_key.rstrip('.')}")
        return rollout

    async def start(
        self,
        service: Service,
        to: str,
        min_old: int = 2,
        soak_seconds: float | None = None,
    ) -> Rollout:
        return await self._decide(
            service,
            lambda existing, state, now: core.start(
                service, state, to, min_old, soak_seconds, now, existing
            ),
        )

    async def begin(self, service: Service, region: str) -> Rollout:
        return await self._decide(
            service,
            lambda rollout, state, now: core.begin(
                self._need(service.key, rollout), service, state, region, now
            ),
        )

    async def validate(self, service: Service) -> Rollout:
        return await self._decide(
            service, lambda rollout, _, now: core.validate(self._need(service.key, rollout), now)
        )

    async def abort(self, service: Service) -> Rollout:
        return await self._decide(
            service, lambda rollout, _, now: core.abort(self._need(service.key, rollout), now)
        )

    async def _decide(
        self,
        service: Service,
        rule: Callable[[Rollout | None, StateSnapshot, float], Rollout],
    ) -> Rollout:
        """Run `rule` on what the node sees and commit its result if that is still what the
        store holds; else catch up and run it again. StoreUnavailable when cut off."""
        for _ in range(ATTEMPTS):
            shared = self.shared.state
            rollout = rule(shared.rollouts.get(service.key), self._state(), self.clock())
            keys = [rollout_key(service.key)]
            keys += [force_key(service.key, r.name) for r in service.regions]
            txn = Txn(
                expect={k: shared.mod_of(k) for k in keys},
                put={rollout_key(service.key): rollout_value(rollout)},
            )
            if await self.shared.commit(txn) is not None:
                return rollout
            await self.shared.refresh()
        raise RolloutConflict(
            f"the rollout of {service.key} kept changing while this decision was made"
            f" ({ATTEMPTS} tries): nothing was changed; try again"
        )

    @staticmethod
    def _need(key: str, rollout: Rollout | None) -> Rollout:
        if rollout is None:
            raise RolloutNotFound(f"no rollout of {key}")
        return rollout

    def observe(self, zones: ZoneSet, state: StateSnapshot) -> dict[str, tuple[Rollout, Rollout]]:
        """What a new state moves on, by service key: (before, after). The caller commits
        each with `progress`. Rollouts of services no longer in the zones wait unchanged."""
        now = self.clock()
        services = {s.key: s for s in zones.services()}
        changed = {}
        for key, rollout in self.shared.state.rollouts.items():
            service = services.get(key)
            if service is None or not rollout.active:
                continue
            after = core.observe(rollout, service, state, now)
            if after != rollout:
                changed[key] = (rollout, after)
        return changed

    async def progress(self, before: Rollout, after: Rollout) -> bool:
        """Commit what `observe` found, unless another node already moved the rollout on
        (then the watch brings theirs, and this one is dropped)."""
        key = rollout_key(after.service)
        current = self.shared.state.rollouts.get(after.service)
        if current != before:
            return False
        txn = Txn(expect={key: self.shared.state.mod_of(key)}, put={key: rollout_value(after)})
        return await self.shared.commit(txn) is not None

    def drained(self) -> set[tuple[str, str]]:
        """(service key, region) pairs the guard holds drained now."""
        return {
            (key, name)
            for key, r in self.shared.state.rollouts.items()
            for name in core.drained_regions(r)
        }

    def approved(self, service: Service, state: StateSnapshot) -> frozenset[str]:
        """Versions plain answers of `service` may reach."""
        return core.approved_versions(
            self.shared.state.rollouts.get(service.key), current_version(service, state)
        )

    def canary(self, service: Service) -> str | None:
        """The new version before validation, for version-named hosts and the canary share."""
        return core.canary_version(self.shared.state.rollouts.get(service.key))
