"""The control plane: health checks, forced states, zone reloads, and counts from every worker.

It runs once per server, in the first process, beside that process's DNS worker. Workers
forked beside it get every routing-relevant state and every new ZoneSet over a channel,
and send their counts back once a second. The admin HTTP side (geodns.admin) reads and
drives it; nothing here knows HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import json
import logging
import os
import secrets
import signal
import socket
import time
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from geodns import __version__
from geodns.control.fleetview import fleet_view
from geodns.control.rollouts import RolloutGuard
from geodns.control.rum import RumConfig, RumIngest
from geodns.control.scopes import ScopeMerger
from geodns.control.zonesource import ZoneSource
from geodns.errors import ConfigErrors
from geodns.geo.geoip import GeoIPDatabase
from geodns.geo.locate import locate
from geodns.geo.rum import NO_MEASUREMENTS, MeasuredLatency
from geodns.geo.rumshare import from_share, merge
from geodns.geo.scopes import ScopeFiles
from geodns.health.monitor import HealthMonitor, UnknownRegion
from geodns.health.quorum import Vote
from geodns.health.state import ALL_UP, Health, ServiceVersions, StateSnapshot
from geodns.routing import capacity
from geodns.sdnotify import ready, reloading
from geodns.server.channel import Channel
from geodns.server.run import DnsWorker
from geodns.server.standin import run_now
from geodns.server.stats import QueryTotals, combine
from geodns.store.follower import SharedFollower
from geodns.store.kv import KVStore, StoreUnavailable, Txn
from geodns.store.legacy import import_legacy, legacy_files
from geodns.store.local import FILE_NAME as LOCAL_STATE_FILE
from geodns.store.local import LocalStore
from geodns.store.shared import (
    Force,
    NodeRecord,
    Observation,
    SharedState,
    force_key,
    force_value,
    rum_key,
    rum_value,
    versions_key,
    versions_value,
)
from geodns.versions.rollout import Rollout
from geodns.versions.rollout import changes as rollout_changes
from geodns.versions.serving import region_version
from geodns.zones.model import ZoneSet

log = logging.getLogger("geodns.control")
rollout_log = logging.getLogger("geodns.rollout")

ANSWER_SAMPLE_INTERVAL = 5.0  # seconds between samples of answer counts ("last minute")
ANSWER_WINDOW = 60.0
RELOAD_SETTLE = 0.2  # seconds to let an editor finish writing before a changed file is read
SHARED_CACHE_FILE = ".geodns-shared-cache.json"  # the fleet's lasting state, for a cold start
LEASE_INTERVALS = 3  # a node's lease lasts this many of its shortest probe interval
LEASE_MIN, LEASE_MAX = 3.0, 30.0  # seconds


def default_state_dir(zones: str | os.PathLike[str]) -> Path:
    """The zones directory; the file's directory when the zones are one file."""
    zones = Path(zones)
    return zones if zones.is_dir() else zones.parent


def lease_ttl(zones: ZoneSet) -> float:
    """A few probe intervals: a dead node's votes outlive it about as long as a probe
    round takes to notice a region down."""
    intervals = [
        r.health.interval for s in zones.services() for r in s.regions if r.health is not None
    ]
    return min(LEASE_MAX, max(LEASE_MIN, LEASE_INTERVALS * min(intervals, default=5.0)))


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
    # Where the embedded store keeps forces and rollouts, and where the shared state of an
    # external store is cached for a cold start; default: beside the zones.
    state_dir: Path | None = None
    store: KVStore | None = None  # the fleet's store; None: the embedded one in state_dir
    node: str = ""  # this node's name in the fleet; default: the host name
    node_dns: tuple[str, ...] = ()  # where this node answers DNS, for the fleet's view
    node_http: str | None = None  # its admin HTTP address
    lease_ttl: float | None = None  # seconds; default: from the probe intervals
    rollouts_file: Path | None = None  # a --rollouts-file of before the store, to take in
    scope_cache: str | None = None  # where merged ECS scopes are built; None: not merged
    rum_config: RumConfig | None = None  # the RUM ingest (POST /api/rum); None: off

    def __post_init__(self) -> None:
        self.started = self.clock()
        self.config_version = 1
        self.config_loaded = self.started
        self.last_reload: ReloadResult | None = None
        self.reload_error: ReloadResult | None = None
        self.reloads = ReloadCounts()
        self.node = self.node or socket.gethostname()
        state_dir = self._state_dir = self.state_dir or default_state_dir(self.source.path)
        self.embedded = self.store is None
        store = self.store or LocalStore(state_dir / LOCAL_STATE_FILE)
        record = NodeRecord(
            self.node,
            secrets.token_hex(8),
            __version__,
            self.started,
            self.node_dns,
            self.node_http,
        )
        self.shared = SharedFollower(
            store,
            record,
            self._on_shared,
            cache=None if self.embedded else state_dir / SHARED_CACHE_FILE,
            lease_ttl=self.lease_ttl or lease_ttl(self.zones),
            clock=self.clock,
        )
        self.monitor = HealthMonitor(
            self.zones, self._on_state, initial=self.initial_state, node=self.node
        )
        self.guard = RolloutGuard(self.shared, lambda: self.monitor.snapshot, self.clock)
        # What a --state file forces: it holds under the fleet's forces for this process's
        # life, as the file says, and is not shared (it is this process's start, not a change).
        self._baseline = {k: st.forced for k, st in self.monitor.snapshot.regions.items()}
        self._ignored_logged: set[tuple[str, str]] = set()
        self._votes_published: dict[tuple[str, str], Observation] = {}
        self._writing_versions: set[str] = set()
        self._progressing: set[str] = set()
        self.local: DnsWorker | None = None
        self.children: list[Channel] = []
        self._child_stats: dict[int, dict[str, Any]] = {}
        self.published = self.monitor.snapshot.with_versions({})
        self.published_at = self.clock()
        self._answer_samples: deque[tuple[float, dict[tuple[str, str], int]]] = deque()
        self._tasks: list[asyncio.Future[Any]] = []
        self._reload_lock = asyncio.Lock()
        self.rum = RumIngest(
            self.rum_config or RumConfig(), self._locate_record, self._region_names
        )
        self.measured = NO_MEASUREMENTS  # the estimates the published state carries
        # With a fleet store: this node's estimates as it shared them (what the others
        # merge), and the other nodes' tables the current `measured` was merged from.
        self._measured_own = NO_MEASUREMENTS
        self._measured_from: dict[str, int] = {}
        self._measured_put = False
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
        if local.addresses:
            self.advertise(dns=local.addresses)
        for attachment in self.prerequisites:
            await attachment.start()
        # The shared state first, so that kept forces and a rollout's drains are in the very
        # first snapshot: the first answer already obeys them.
        if self.embedded:
            # A damaged state file stops the start: serving without the forces it holds, and
            # overwriting it at the next change, would lose them for good.
            await self.shared.store.open()
            files = legacy_files(self._state_dir, self.rollouts_file)
            await import_legacy(self.shared.store, files)
        await self.shared.start()
        await self.monitor.start()
        self._progress(self.monitor.snapshot)
        self._publish(self.monitor.snapshot)
        for i, link in enumerate(children):
            self._tasks.append(asyncio.ensure_future(self._listen(i, link)))
        if self.watch_interval > 0:
            self._tasks.append(asyncio.ensure_future(self._watch_zones()))
        self._tasks.append(asyncio.ensure_future(self._sample_answers()))
        self._tasks.append(asyncio.ensure_future(self._tick()))
        if self.rum.config.token is not None or self.shares_measured:
            self._tasks.append(asyncio.ensure_future(self._aggregate_rum()))
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
        await self.shared.stop()
        for attachment in reversed(self.prerequisites):
            with contextlib.suppress(Exception):
                await attachment.stop()

    # --- state -----------------------------------------------------------------------

    def _on_state(self, snapshot: StateSnapshot, routing_changed: bool) -> None:
        self._progress(snapshot)
        self._share_votes()
        current = self.monitor.snapshot  # forces applied just now may have made a newer one
        versions_changed = self._versions(current) != dict(self.published.versions)
        # Utilization moves with every probe, but answers change only when a region crosses
        # a watermark or moves inside the band where it sheds: only then are the workers'
        # caches worth dropping. (Explanations then quote the last published figure.)
        if versions_changed or (
            routing_changed
            and self._routing_signature(current) != self._routing_signature(self.published)
        ):
            self._publish(current)

    def _on_shared(self, shared: SharedState) -> None:
        """A new shared state (a change anywhere in the fleet, or the store lost or back)."""
        self._apply_forces()
        self._take_votes(shared)
        if self.shares_measured and self._measured_inputs() != self._measured_from:
            self.aggregate_rum()  # another node shared new estimates
        self._on_state(self.monitor.snapshot, False)

    def _routing_signature(self, state: StateSnapshot) -> tuple[object, ...]:
        return routing_signature(self.zones, state)

    def _progress(self, state: StateSnapshot) -> None:
        """Move rollouts on from a new state: each step one compare-and-swap, so that of
        several nodes seeing the same step, one writes it."""
        for key, (before, after) in self.guard.observe(self.zones, state).items():
            if key in self._progressing or not self.shared.connected:
                continue  # written already, or waits for the store
            self._progressing.add(key)
            self._spawn(self._write_progress(key, before, after))

    async def _write_progress(self, key: str, before: Rollout, after: Rollout) -> None:
        try:
            if await self.guard.progress(before, after):
                for line in rollout_changes(before, after):
                    rollout_log.info("%s", line)
        except StoreUnavailable as exc:
            log.debug("rollout of %s: progress waits for the store: %s", key, exc)
        finally:
            self._progressing.discard(key)

    def _spawn(self, job: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(job)
        self._tasks.append(task)
        task.add_done_callback(self._tasks.remove)

    def _apply_forces(self) -> None:
        """Give every region the force the fleet holds for it: a rollout's drain, else the
        operator's force, else none (its checks decide)."""
        shared = self.shared.state
        drained = self.guard.drained()
        known = set()
        for service in self.zones.services():
            for region in service.regions:
                key = (service.key, region.name)
                known.add(key)
                force = shared.forces.get(key)
                wanted = Health.DRAIN if key in drained else (force and force.state)
                wanted = wanted or self._baseline.get(key)
                if self.monitor.snapshot.get(*key).forced is wanted:
                    continue
                if key in drained:
                    why = "drained for its rollout"
                elif force is not None:
                    why = f"forced {force.state}, as set {_iso(force.set_at)} by {force.by or '?'}"
                elif wanted is not None:
                    why = f"forced {wanted} by the --state file"
                else:
                    why = "force cleared by operator"
                try:
                    self.monitor.force(key[0], key[1], str(wanted or "auto"), why)
                except (KeyError, ValueError) as exc:
                    log.warning("cannot set %s of %s to %s: %s", key[1], key[0], wanted, exc)
                    continue
                log.info("region %s of %s: %s", key[1], key[0], why)
        for key, force in sorted(shared.forces.items()):
            if key not in known and key not in self._ignored_logged:
                log.warning(
                    "forced %s of region %s of %s (set %s by %s) is kept but ignored:"
                    " the zones have no such region",
                    force.state,
                    key[1],
                    key[0],
                    _iso(force.set_at),
                    force.by or "?",
                )
        self._ignored_logged = {k for k in shared.forces if k not in known}

    def _take_votes(self, shared: SharedState) -> None:
        """The other live nodes' votes, to the monitor. While the store answers, a vote
        stands as long as its node's lease; once cut off, votes age from that moment and
        this node is left with its own."""
        heard = self.clock() if self.shared.connected else self.shared.since
        votes: dict[tuple[str, str], list[Vote]] = {}
        for name, node in shared.nodes.items():
            if name == self.node:
                continue
            for key, seen in node.observations.items():
                vote = Vote(name, seen.health, seen.utilization, seen.version, heard, seen.observed)
                votes.setdefault(key, []).append(vote)
        self.monitor.set_votes(votes)

    def _share_votes(self) -> None:
        """This node's own votes, to the fleet, when they change."""
        snapshot = self.monitor.snapshot
        votes = {
            key: Observation(
                v.health, v.utilization, v.version, snapshot.get(*key).last_error, v.observed
            )
            for key, v in self.monitor.own_votes().items()
        }
        # Only news is published (a vote changed, not merely confirmed): every publication is
        # an etcd revision that every node handles.
        if votes != self._votes_published:
            self._votes_published = votes
            self.shared.update_node(replace(self.shared.node, observations=votes))

    async def _tick(self) -> None:
        # A soak ends with time alone, and a vote goes stale with it.
        while True:
            await asyncio.sleep(1.0)
            self._take_votes(self.shared.state)
            self._on_state(self.monitor.snapshot, False)

    def _versions(self, state: StateSnapshot) -> dict[str, ServiceVersions]:
        """Per service: the versions plain answers may reach, the canary, every one seen
        (by any node, ever: kept in the store)."""
        out = {}
        for service in self.zones.services():
            kept = self.shared.state.seen.get(service.key, frozenset())
            reported = {v for r in service.regions if (v := region_version(service, r, state))}
            writing = service.key in self._writing_versions
            if not reported <= kept and self.shared.connected and not writing:
                self._writing_versions.add(service.key)
                self._spawn(self._remember_versions(service.key, reported))
            seen = kept | reported
            if seen:
                out[service.key] = ServiceVersions(
                    self.guard.approved(service, state),
                    self.guard.canary(service),
                    frozenset(seen),
                )
        return out

    async def _remember_versions(self, service: str, reported: set[str]) -> None:
        """Add versions to the service's seen set in the store (a compare-and-swap: every
        node adds, none removes another's)."""
        key = versions_key(service)
        try:
            for _ in range(5):
                shared = self.shared.state
                kept = shared.seen.get(service, frozenset())
                if reported <= kept:
                    return
                txn = Txn(
                    expect={key: shared.mod_of(key)}, put={key: versions_value(kept | reported)}
                )
                if await self.shared.commit(txn) is not None:
                    return
                await self.shared.refresh()
        except StoreUnavailable as exc:
            log.debug("versions of %s wait for the store: %s", service, exc)
        finally:
            self._writing_versions.discard(service)

    def _publish(self, snapshot: StateSnapshot) -> None:
        """Hand a state to every DNS worker: their decision caches go with it.

        `published` is the state answers are decided on now; `state` can be newer in
        what routing does not read (probe times, latencies, errors).
        """
        snapshot = snapshot.with_versions(self._versions(snapshot)).with_measured(self.measured)
        self.published = snapshot
        self.published_at = self.clock()
        if self.local is not None:
            self.local.apply_state(snapshot)
        for link in self.children:
            link.send(("state", snapshot))
        digest = self.digest(snapshot)
        if digest != self.shared.node.digest:
            self.shared.update_node(replace(self.shared.node, digest=digest))

    def digest(self, snapshot: StateSnapshot) -> str:
        """A short fingerprint of what answers are decided on: nodes that agree have the same."""
        versions = sorted(
            (k, sorted(v.approved), v.canary, sorted(v.seen)) for k, v in snapshot.versions.items()
        )
        parts: tuple[object, ...] = (self._routing_signature(snapshot), versions)
        if snapshot.measured.regions:
            # Each node measures what its own clients report: without a shared store
            # their estimates, and so their answers, may differ (docs/rum.md).
            parts = (*parts, snapshot.measured.routing_key())
        text = repr(parts)
        return hashlib.blake2s(text.encode(), digest_size=6).hexdigest()

    # --- measured latency -------------------------------------------------------------

    def _locate_record(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> Any:
        return None if self.geoip is None else locate(self.geoip, address).record

    def _region_names(self) -> set[str]:
        return {r.name for s in self.zones.services() for r in s.regions}

    @property
    def shares_measured(self) -> bool:
        """Whether measured latency is shared: with a fleet store (the embedded one is this
        node's alone)."""
        return not self.embedded

    def aggregate_rum(self) -> bool:
        """Aggregate the samples received so far (and, in a fleet, every node's shared
        estimates) into the published state when routing could tell the new estimates
        apart (ageing out included); whether it did."""
        now = self.clock()
        measured = self.rum.table(now)
        if self.shares_measured:
            measured = self._merge_fleet(measured, now)
        if measured.routing_key() == self.measured.routing_key():
            return False
        self.measured = measured
        self._publish(self.monitor.snapshot)
        return True

    def _merge_fleet(self, own: MeasuredLatency, now: float) -> MeasuredLatency:
        """Share this node's estimates when they changed, and merge them with every other
        live node's. This node's own count as shared (rounded, capped), so that nodes
        seeing the same revision merge the same tables and answer alike."""
        settings = self.rum.config.settings
        if own.routing_key() != self._measured_own.routing_key():
            value = rum_value(own)
            self._measured_own = from_share(json.loads(value), settings)
            # A node that never had a sample writes nothing (most nodes of a fleet without
            # RUM); one that had writes on, down to its empty table when its samples age out.
            mine = self._measured_own
            if self._measured_put or mine.networks or mine.countries or mine.continents:
                self.shared.put_leased(rum_key(self.node), value)
                self._measured_put = True
        self._measured_from = self._measured_inputs()
        others = [t for n, t in self.shared.state.measured.items() if n != self.node]
        return merge([self._measured_own, *others], settings, now)

    def _measured_inputs(self) -> dict[str, int]:
        """Which other nodes' tables the merge would read (by identity: a new value of a
        node's key is a new table)."""
        return {n: id(t) for n, t in self.shared.state.measured.items() if n != self.node}

    async def _aggregate_rum(self) -> None:
        while True:
            await asyncio.sleep(self.rum.config.publish_interval)
            self.aggregate_rum()

    def _publish_scopes(self, scopes: ScopeFiles) -> None:
        if self.local is not None:
            self.local.apply_scopes(scopes)
        for link in self.children:
            link.send(("scopes", scopes))

    async def force(self, service: str, region: str, mode: str, by: str = "") -> StateSnapshot:
        """drain | up | down | auto for one region, for the whole fleet, kept in the store.

        Raises UnknownRegion or ValueError if wrong, StoreUnavailable (nothing changed) when
        the store cannot take it. `auto` also clears a kept force of a region the zones no
        longer have.
        """
        key = (service.strip().rstrip(".").lower(), region)
        mode = mode.strip().lower() if isinstance(mode, str) else mode
        try:
            self.monitor.force_check(*key, mode)
        except UnknownRegion:
            if not (key in self.shared.state.forces and mode == "auto"):
                raise
        k = force_key(*key)
        if mode == "auto":
            txn = Txn(delete=(k,))
        else:
            txn = Txn(put={k: force_value(Force(*key, Health(mode), self.clock(), by))})
        await self.shared.commit(txn)
        return self.monitor.snapshot

    def advertise(self, dns: tuple[str, ...] | None = None, http: str | None = None) -> None:
        """Where this node answers, as bound (a port 0 in the options is not an address)."""
        node = self.shared.node
        self.shared.update_node(
            replace(node, dns=node.dns if dns is None else dns, http=http or node.http)
        )

    def fleet_view(self) -> dict[str, Any]:
        """The fleet as this node sees it (geodns.control.fleetview)."""
        return fleet_view(
            self.zones, self.shared, self.monitor.verdicts, self.embedded, self.clock()
        )

    def kept_force(self, service: str, region: str) -> Force | None:
        """The operator force kept for a region, if any (a rollout may outrank it now)."""
        return self.shared.state.forces.get((service, region))

    def ignored_forces(self) -> list[Force]:
        """Kept forces of regions the zones do not have."""
        known = {(s.key, r.name) for s in self.zones.services() for r in s.regions}
        return [f for k, f in sorted(self.shared.state.forces.items()) if k not in known]

    # --- reload ----------------------------------------------------------------------

    def _on_sighup(self) -> None:
        self._tasks.append(asyncio.ensure_future(self.reload("SIGHUP")))

    async def reload(self, trigger: str) -> ReloadResult:
        """Load and validate every zone; swap them in whole, or keep serving the old ones.

        Reading, validating and building the zones blocks this process's loop (about
        0.25 s of CPU for a zone of 10,000 records), so a stand-in (a forked copy of the local
        DNS worker, see geodns.server.standin) answers from the old zones meanwhile, and
        the work runs at the lowest priority, in a thread the loop waits for; other
        workers fork their own while they take the new zones in. Reloads run one at a
        time (the lock), and nothing between the load and the swap awaits.
        """
        async with self._reload_lock:
            reloading()  # systemd shows the unit "reloading" until the READY=1 below
            now = self.clock()
            started = time.monotonic()
            relief = await self.local.relief() if self.local is not None else None
            try:
                result = self._reload(trigger, now, run_now if relief is None else relief.run)
            finally:
                if relief is not None:
                    assert self.local is not None
                    await self.local.end_relief(relief)
                refused = "; the last reload was refused (see the log)" if self.reload_error else ""
                ready(f"config version {self.config_version}{refused}")
            if result.ok:
                # Logged once the stand-in is gone, the loop answering from the new zones:
                # the time is trigger to applied, what a client can tell.
                log.info(
                    "reload (%s): config version %d, %d zones from %s in %.2f s",
                    trigger,
                    self.config_version,
                    len(self.zones.zones),
                    self.source.path,
                    time.monotonic() - started,
                )
            return result

    def _reload(self, trigger: str, now: float, run: Callable) -> ReloadResult:
        """The blocking part of reload(), while a stand-in answers: the heavy steps go
        through `run` (StandIn.run: at the lowest priority, leaving the core to it)."""
        try:
            zones = run(self.source.load)
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
        self._apply_forces()  # a region back in the zones takes its kept force again
        if self.local is not None:
            self.local.apply_zones(zones, run)
        for link in self.children:
            link.send(("stand-in", None))
            link.send(("zones", zones))
        self._publish(self.monitor.snapshot)
        result = ReloadResult(now, trigger, True)
        self.reloads.ok += 1
        self.reload_error = None
        self.last_reload = result
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


def routing_signature(zones: ZoneSet, state: StateSnapshot) -> tuple[object, ...]:
    """What the routing steps can tell apart in `state`: per region its health, the share
    it sheds and whether it takes shed clients (geodns.routing.capacity.share), its version.
    A utilization that moves without moving the share is not worth a new state."""
    out: list[object] = []
    for service in zones.services():
        for region in service.regions:
            st = state.get(service.key, region.name)
            shed = capacity.share(st, service.capacity)
            out.append((st.health, shed, region_version(service, region, state)))
    return tuple(out)


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
