"""The control plane: health checks, forced states, zone reloads, and counts from every worker.

It runs once per server, in the first process, beside that process's DNS worker. Workers
forked beside it get every routing-relevant state and every new ZoneSet over a channel,
and send their counts back once a second. The admin HTTP side (geodns.admin) reads and
drives it; nothing here knows HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from geodns import __version__
from geodns.control.forces import Force, ForceStore
from geodns.control.forces import default_path as default_forces_path
from geodns.control.scopes import ScopeMerger
from geodns.control.zonesource import ZoneSource
from geodns.errors import ConfigErrors
from geodns.geo.geoip import GeoIPDatabase
from geodns.geo.scopes import ScopeFiles
from geodns.health.monitor import HealthMonitor, UnknownRegion
from geodns.health.state import ALL_UP, ServiceVersions, StateSnapshot, effective_health
from geodns.server.channel import Channel
from geodns.server.run import DnsWorker
from geodns.server.stats import QueryTotals, combine
from geodns.versions.guard import RolloutGuard
from geodns.versions.rollout import region_version
from geodns.versions.store import RolloutStore, default_path
from geodns.zones.model import ZoneSet

log = logging.getLogger("geodns.control")
rollout_log = logging.getLogger("geodns.rollout")

ANSWER_SAMPLE_INTERVAL = 5.0  # seconds between samples of answer counts ("last minute")
ANSWER_WINDOW = 60.0
RELOAD_SETTLE = 0.2  # seconds to let an editor finish writing before a changed file is read


class Attachment(Protocol):
    """Something that lives as long as the control plane: the admin HTTP server, the demo."""

    async def start(self) -> None: ...
    async def stop(self) -> None: ...


@dataclass(frozen=True)
class ReloadResult:
    time: float
    trigger: str  # "SIGHUP", "file change", "admin API"
    ok: bool
    errors: tuple[str, ...] = ()  # file:line: message, one per problem


@dataclass
class ReloadCounts:
    ok: int = 0
    failed: int = 0


@dataclass
class ControlPlane:
    source: ZoneSource
    zones: ZoneSet
    geoip: GeoIPDatabase | None = None
    initial_state: StateSnapshot = ALL_UP
    watch_interval: float = 1.0  # seconds between looks at the zone files; 0: never look
    clock: Callable[[], float] = time.time
    attachments: list[Attachment] = field(default_factory=list)
    # Started before the first health-check round (the demo's simulated regions).
    prerequisites: list[Attachment] = field(default_factory=list)
    rollouts_file: Path | None = None  # default: .geodns-rollouts.json beside the zones
    # Operator forces kept across restarts; default: .geodns-forces.json beside the rollouts.
    forces_file: Path | None = None
    scope_cache: str | None = None  # where merged ECS scopes are built; None: not merged

    def __post_init__(self) -> None:
        self.started = self.clock()
        self.config_version = 1
        self.config_loaded = self.started
        self.last_reload: ReloadResult | None = None
        self.reload_error: ReloadResult | None = None
        self.reloads = ReloadCounts()
        rollouts_path = self.rollouts_file or default_path(self.source.path)
        rollout_store = RolloutStore(rollouts_path)
        rollout_store.remove_stale_temps()
        self.guard = RolloutGuard(rollout_store, self.clock)
        self.force_store = ForceStore(self.forces_file or default_forces_path(rollouts_path))
        self.force_store.remove_stale_temps()
        # Every kept force, those of regions the zones no longer have included: such a force
        # is ignored (and logged) while its region is absent, and holds again if it returns.
        self.forces: dict[tuple[str, str], Force] = self.force_store.load()
        self._guard_drained: set[tuple[str, str]] = set()
        self._seen_versions: dict[str, set[str]] = {}
        # Kept forces are in the very first snapshot: the first answer already obeys them.
        initial = self._with_kept_forces(self.initial_state)
        self.monitor = HealthMonitor(self.zones, self._on_state, initial=initial)
        self.local: DnsWorker | None = None
        self.children: list[Channel] = []
        self._child_stats: dict[int, dict[str, Any]] = {}
        self.published = self.monitor.snapshot.with_versions({})
        self.published_at = self.clock()
        self._answer_samples: deque[tuple[float, dict[tuple[str, str], int]]] = deque()
        self._tasks: list[asyncio.Future[Any]] = []
        self._reload_lock = asyncio.Lock()
        self.scopes: ScopeMerger | None = None
        if self.geoip is not None and self.scope_cache is not None:
            self.scopes = ScopeMerger(
                self.geoip, self.scope_cache, lambda: self.zones, self._publish_scopes
            )

    @property
    def version(self) -> str:
        return __version__

    @property
    def state(self) -> StateSnapshot:
        """The full state: health, and what people read (errors, latency, version)."""
        return self.monitor.snapshot

    # --- running ---------------------------------------------------------------------

    async def start(self, local: DnsWorker, children: list[Channel]) -> None:
        self.local = local
        self.children = children
        for attachment in self.prerequisites:
            await attachment.start()
        await self.monitor.start()
        # A restart mid-rollout: the regions the guard holds are drained again at once.
        self._progress(self.monitor.snapshot)
        self._publish(self.monitor.snapshot)
        for i, link in enumerate(children):
            self._tasks.append(asyncio.ensure_future(self._listen(i, link)))
        if self.watch_interval > 0:
            self._tasks.append(asyncio.ensure_future(self._watch_zones()))
        self._tasks.append(asyncio.ensure_future(self._sample_answers()))
        self._tasks.append(asyncio.ensure_future(self._tick_rollouts()))
        if self.scopes is not None:
            self._tasks.append(asyncio.ensure_future(self.scopes.run()))
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGHUP, self._on_sighup)
        try:
            for attachment in self.attachments:
                await attachment.start()
        except BaseException:
            await self.stop()  # the health checks' HTTP session among the rest
            raise

    async def stop(self) -> None:
        for attachment in reversed(self.attachments):
            with contextlib.suppress(Exception):
                await attachment.stop()
        for task in self._tasks:
            task.cancel()
        await self.monitor.stop()
        for attachment in reversed(self.prerequisites):
            with contextlib.suppress(Exception):
                await attachment.stop()

    # --- state -----------------------------------------------------------------------

    def _on_state(self, snapshot: StateSnapshot, routing_changed: bool) -> None:
        self._progress(snapshot)
        current = self.monitor.snapshot  # the guard's drains may have made a newer one
        versions_changed = self._versions(current) != dict(self.published.versions)
        # Utilization moves with every probe, but answers change only when a region crosses
        # a watermark or moves inside the band where it sheds: only then are the workers'
        # caches worth dropping. (Explanations then quote the last published figure.)
        if versions_changed or (
            routing_changed
            and self._routing_signature(current) != self._routing_signature(self.published)
        ):
            self._publish(current)

    def _routing_signature(self, state: StateSnapshot) -> tuple[object, ...]:
        """What the routing steps can tell apart in `state`, given the services' watermarks."""
        out: list[object] = []
        for service in self.zones.services():
            low, high = service.capacity.low, service.capacity.high
            for region in service.regions:
                st = state.get(service.key, region.name)
                u = st.utilization
                band: object = u
                if u is None or u <= low:
                    band = "keep"
                elif u >= high:
                    band = "full"
                out.append((st.health, band, region_version(service, region, state)))
        return tuple(out)

    def _progress(self, state: StateSnapshot) -> None:
        """Move rollouts on from a new state, and drain or release what the guard holds."""
        for line in self.guard.observe(self.zones, state):
            rollout_log.info("%s", line)
        wanted = self.guard.drained()
        before, self._guard_drained = self._guard_drained, wanted
        for service, region in sorted(wanted - before):
            self._force_quietly(service, region, "drain")
        for service, region in sorted(before - wanted):
            # Released: back to the operator's force if one is kept, else to the checks.
            kept = self.forces.get((service, region))
            self._force_quietly(service, region, "auto" if kept is None else str(kept.state))

    def _force_quietly(self, service: str, region: str, mode: str) -> None:
        try:
            self.monitor.force(service, region, mode)
        except (KeyError, ValueError) as exc:  # a region gone from the zones
            log.warning("rollout: cannot set %s of %s to %s: %s", region, service, mode, exc)

    def rollouts_changed(self) -> None:
        """After a rollout was started, begun, validated or aborted through the API."""
        self._on_state(self.monitor.snapshot, False)

    async def _tick_rollouts(self) -> None:
        # A soak ends with time alone, when no probe result comes to say so.
        while True:
            await asyncio.sleep(1.0)
            self._on_state(self.monitor.snapshot, False)

    def _versions(self, state: StateSnapshot) -> dict[str, ServiceVersions]:
        """Per service: the versions plain answers may reach, the canary, every one seen."""
        out = {}
        for service in self.zones.services():
            seen = self._seen_versions.setdefault(service.key, set())
            seen.update(v for r in service.regions if (v := region_version(service, r, state)))
            if seen:
                out[service.key] = ServiceVersions(
                    self.guard.approved(service, state),
                    self.guard.canary(service),
                    frozenset(seen),
                )
        return out

    def _publish(self, snapshot: StateSnapshot) -> None:
        """Hand a state to every DNS worker: their decision caches go with it.

        `published` is the state answers are decided on now; `state` can be newer in
        what routing does not read (probe times, latencies, errors).
        """
        snapshot = snapshot.with_versions(self._versions(snapshot))
        self.published = snapshot
        self.published_at = self.clock()
        if self.local is not None:
            self.local.apply_state(snapshot)
        for link in self.children:
            link.send(("state", snapshot))

    def _publish_scopes(self, scopes: ScopeFiles) -> None:
        if self.local is not None:
            self.local.apply_scopes(scopes)
        for link in self.children:
            link.send(("scopes", scopes))

    def force(self, service: str, region: str, mode: str, by: str = "") -> StateSnapshot:
        """drain | up | down | auto for one region, kept in the forces file across restarts.

        Raises UnknownRegion or ValueError if wrong, ForceStoreError (nothing changed) if
        the forces file cannot be written. `auto` also clears a kept force of a region the
        zones no longer have.
        """
        key = (service.strip().rstrip(".").lower(), region)
        try:
            before = self.monitor.snapshot.get(*key)
            snapshot = self.monitor.force(service, region, mode)
        except UnknownRegion:
            if key in self.forces and str(mode).strip().lower() == "auto":
                forces = dict(self.forces)
                del forces[key]
                self.force_store.save(forces)
                self.forces = forces
                log.info("forced state of absent region %s of %s cleared", key[1], key[0])
                return self.monitor.snapshot
            raise
        forced = snapshot.get(*key).forced
        forces = dict(self.forces)
        if forced is None:
            forces.pop(key, None)
        else:
            forces[key] = Force(key[0], key[1], forced, self.clock(), by)
        if forces != self.forces:
            try:
                self.force_store.save(forces)
            except Exception:
                # Not kept, so not applied: a restart would otherwise quietly undo it.
                old = "auto" if before.forced is None else str(before.forced)
                self.monitor.force(service, region, old)
                raise
            self.forces = forces
        return snapshot

    def _with_kept_forces(self, state: StateSnapshot) -> StateSnapshot:
        """`state` with every kept force of a region the zones have; the others logged."""
        known = {(s.key, r.name) for s in self.zones.services() for r in s.regions}
        regions = dict(state.regions)
        for key, force in sorted(self.forces.items()):
            if key not in known:
                log.warning(
                    "forced %s of region %s of %s (set %s by %s) is kept in %s but ignored:"
                    " the zones have no such region",
                    force.state,
                    key[1],
                    key[0],
                    _iso(force.set_at),
                    force.by or "?",
                    self.force_store.path.name,
                )
                continue
            old = state.get(*key)
            health = effective_health(old.checked, force.state)
            regions[key] = replace(old, forced=force.state, health=health)
            log.info(
                "region %s of %s: forced %s, as set %s by %s",
                key[1],
                key[0],
                force.state,
                _iso(force.set_at),
                force.by or "?",
            )
        return state.with_regions(regions) if regions != dict(state.regions) else state

    def _reapply_kept_forces(self) -> None:
        """After a reload: a region back in the zones takes its kept force again."""
        known = {(s.key, r.name) for s in self.zones.services() for r in s.regions}
        for key, force in sorted(self.forces.items()):
            if key not in known:
                log.warning(
                    "forced %s of region %s of %s is kept but ignored: the zones have no such"
                    " region",
                    force.state,
                    key[1],
                    key[0],
                )
            elif self.monitor.snapshot.get(*key).forced is None and key not in self._guard_drained:
                log.info("region %s of %s is back: forced %s again", key[1], key[0], force.state)
                self._force_quietly(key[0], key[1], str(force.state))

    def kept_force(self, service: str, region: str) -> Force | None:
        """The operator force kept for a region, if any (a rollout may outrank it now)."""
        return self.forces.get((service, region))

    def ignored_forces(self) -> list[Force]:
        """Kept forces of regions the zones do not have."""
        known = {(s.key, r.name) for s in self.zones.services() for r in s.regions}
        return [f for k, f in sorted(self.forces.items()) if k not in known]

    # --- reload ----------------------------------------------------------------------

    def _on_sighup(self) -> None:
        self._tasks.append(asyncio.ensure_future(self.reload("SIGHUP")))

    async def reload(self, trigger: str) -> ReloadResult:
        """Load and validate every zone; swap them in whole, or keep serving the old ones."""
        async with self._reload_lock:
            now = self.clock()
            try:
                zones = self.source.load()
            except ConfigErrors as exc:
                result = ReloadResult(now, trigger, False, tuple(str(e) for e in exc.errors))
                self.reloads.failed += 1
                self.reload_error = self.last_reload = result
                log.error(
                    "reload (%s) refused, still serving config version %d: %s",
                    trigger,
                    self.config_version,
                    "; ".join(result.errors),
                )
                return result
            self.zones = zones
            self.config_version += 1
            self.config_loaded = now
            self.monitor.set_zones(zones)
            self._reapply_kept_forces()
            if self.local is not None:
                self.local.apply_zones(zones)
            for link in self.children:
                link.send(("zones", zones))
            self._publish(self.monitor.snapshot)
            result = ReloadResult(now, trigger, True)
            self.reloads.ok += 1
            self.reload_error = None
            self.last_reload = result
            log.info(
                "reload (%s): config version %d, %d zones from %s",
                trigger,
                self.config_version,
                len(zones.zones),
                self.source.path,
            )
            return result

    async def _watch_zones(self) -> None:
        seen = self.source.signature()
        while True:
            await asyncio.sleep(self.watch_interval)
            current = self.source.signature()
            if current == seen:
                continue
            await asyncio.sleep(RELOAD_SETTLE)
            # Whatever the outcome, this version of the files has been judged: a broken
            # edit is reported once, not every second, and the next edit is looked at.
            seen = self.source.signature()
            await self.reload("file change")

    # --- counts ----------------------------------------------------------------------

    async def _listen(self, index: int, link: Channel) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                kind, value = await link.receive()
                if kind == "stats":
                    self._child_stats[index] = value

    def query_stats(self) -> QueryTotals:
        """Every worker's counts, summed (other workers' as of their last report)."""
        exports = [self.local.stats.export()] if self.local is not None else []
        return combine(exports + list(self._child_stats.values()))

    def _answer_totals(self) -> dict[tuple[str, str], int]:
        totals: dict[tuple[str, str], int] = {}
        for counts in self.query_stats().replies.values():
            for key, n in counts.items():
                for region in key.regions:
                    k = (key.service or "", region)
                    totals[k] = totals.get(k, 0) + n
        return totals

    async def _sample_answers(self) -> None:
        while True:
            now = time.monotonic()
            self._answer_samples.append((now, self._answer_totals()))
            while self._answer_samples and now - self._answer_samples[0][0] > ANSWER_WINDOW:
                self._answer_samples.popleft()
            await asyncio.sleep(ANSWER_SAMPLE_INTERVAL)

    def answers_last_minute(self) -> dict[tuple[str, str], int]:
        """Answers per (service, region) over the last minute (less, just after start)."""
        now = self._answer_totals()
        if not self._answer_samples:
            return now
        _, then = self._answer_samples[0]
        return {k: n - then.get(k, 0) for k, n in now.items()}


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
