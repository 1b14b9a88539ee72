"""The health-check loop: each checked region probed on its own timer, one snapshot for all.

Every probe result that changes anything produces a new immutable StateSnapshot, handed to
`on_change(snapshot, routing_changed)`. Since each probe records its time and latency, that
is a new snapshot per probe; `routing_changed` is true only when some region's effective
health or utilization changed, the only fields routing reads, so that the caller can keep
its decision caches otherwise.

Rise and fall: the first result of a region counts at once (the server's first answers are
informed); after that `fall` consecutive failures take an up region down and `rise`
consecutive successes bring a down one up. An operator's forced state outranks the checks.

In a fleet, that verdict is this node's vote (`own`): `set_votes` gives the other live
nodes' votes, and a region's `checked` health is the service's quorum over all the fresh
ones (geodns.health.quorum). Alone, a node's own vote decides.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType

import aiohttp

from geodns.errors import GeodnsError
from geodns.health import load
from geodns.health.probes import ProbeResult, TLSContexts, probe
from geodns.health.quorum import Verdict, Vote, decide
from geodns.health.state import Health, RegionState, StateSnapshot, effective_health
from geodns.zones.healthspec import HealthCheck
from geodns.zones.model import Quorum, Service, ZoneSet

logger = logging.getLogger("geodns.health")

Key = tuple[str, str]  # (service key, region name), as snapshots are keyed
OnChange = Callable[[StateSnapshot, bool], None]
MODES = ("drain", "up", "down", "auto")
FIRST_ROUND_MARGIN = 0.5  # seconds past the largest timeout that start() waits at most
MAX_CHANGES = 100
STALE_AFTER = 3  # probe intervals after which a node's vote on a region no longer counts


@dataclass(frozen=True, slots=True)
class Transition:
    """A change of a region's effective health."""

    time: float  # epoch seconds, from the monitor's clock
    service: str
    region: str
    old: Health
    new: Health
    reason: str  # "3 failures: timeout after 2.0s", "2 successes", "forced by operator"


@dataclass(slots=True)
class CheckStats:
    """Counters of one region's probes, for metrics."""

    ok: int = 0
    failed: int = 0
    last_duration: float = 0.0  # seconds
    total_duration: float = 0.0  # seconds, over every probe


@dataclass(slots=True)
class _Run:
    """Consecutive results of the same kind: what rise and fall count."""

    successes: int = 0
    failures: int = 0


class UnknownRegion(GeodnsError, KeyError):
    """No such service or region in the zones (force, from the admin API)."""

    def __str__(self) -> str:
        return str(self.args[0])  # KeyError would quote the message


class HealthMonitor:
    """Probes every region that has a `health:` check and keeps the state snapshot.

    `initial` seeds the state (a `--state` file, or a previous monitor's snapshot): its
    entries are kept for regions the zones still have, and a region it marks down or
    drained without saying why is taken as forced so, since that is what a state file means.
    """

    def __init__(
        self,
        zones: ZoneSet,
        on_change: OnChange,
        *,
        clock: Callable[[], float] = time.time,
        concurrency: int = 64,
        initial: StateSnapshot | None = None,
        node: str = "",
    ) -> None:
        self._on_change = on_change
        self._clock = clock
        self._concurrency = concurrency
        self.node = node
        self._checks: dict[Key, HealthCheck | None] = _checks_of(zones)
        self._quorum: dict[Key, Quorum] = _quorum_of(zones)
        self._services: dict[str, Service] = {s.key: s for s in zones.services()}
        self._loads: dict[Key, load.Load] = {}  # the capacity controller's, per region
        self._probed: dict[Key, dict[str, float]] = {}  # the latest probe's signals
        self._pushed: dict[Key, tuple[float, dict[str, float]]] = {}  # (until, signals)
        self._own: dict[Key, Vote] = {}  # this node's latest vote per checked region
        self._others: dict[Key, list[Vote]] = {}  # other live nodes' votes
        self.verdicts: dict[Key, Verdict] = {}  # the latest quorum per checked region
        self._runs: dict[Key, _Run] = {}
        self._tasks: dict[Key, asyncio.Task[None]] = {}
        self._retired: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None
        self._semaphore: asyncio.Semaphore | None = None
        self._tls = TLSContexts()
        self._random = random.Random()
        self._running = False
        self.changes: collections.deque[Transition] = collections.deque(maxlen=MAX_CHANGES)
        self.stats: dict[Key, CheckStats] = {
            key: CheckStats() for key, check in self._checks.items() if check is not None
        }
        base = initial if initial is not None else StateSnapshot()
        regions = {key: _seeded(base.regions.get(key)) for key in self._checks}
        self._snapshot = StateSnapshot(base.version + 1, MappingProxyType(regions))

    @property
    def snapshot(self) -> StateSnapshot:
        return self._snapshot

    # --- running ---------------------------------------------------------------------

    async def start(self) -> None:
        """Probe every checked region once, waiting for that first round at most the largest
        timeout plus a margin, then keep probing in background tasks."""
        if self._running:
            return
        self._running = True
        self._semaphore = asyncio.Semaphore(self._concurrency)
        # A fresh connection per probe: a pooled one would hide a region that stopped
        # accepting connections, and reuse saves nothing at one request per interval.
        connector = aiohttp.TCPConnector(force_close=True, limit=self._concurrency)
        self._session = aiohttp.ClientSession(connector=connector, trust_env=False)
        firsts = [self._spawn(key, check) for key, check in self._checks.items() if check]
        if firsts:
            budget = max(c.timeout for c in self._checks.values() if c) + FIRST_ROUND_MARGIN
            await asyncio.wait(firsts, timeout=budget)

    async def stop(self) -> None:
        """Cancel every probe and close the HTTP session."""
        self._running = False
        tasks = [*self._tasks.values(), *self._retired]
        self._tasks.clear()
        self._retired.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _spawn(self, key: Key, check: HealthCheck) -> asyncio.Future[None]:
        """Start a region's probe loop; the future is done once its first result is in."""
        first: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(self._probe_loop(key, check, first), name=f"health {key}")
        self._tasks[key] = task
        return first

    def _retire(self, key: Key) -> None:
        task = self._tasks.pop(key, None)
        if task is not None:
            task.cancel()
            self._retired.add(task)
            task.add_done_callback(self._retired.discard)

    async def _probe_loop(self, key: Key, check: HealthCheck, first: asyncio.Future[None]) -> None:
        loop = asyncio.get_running_loop()
        this = asyncio.current_task()
        try:
            # Until stopped or retired; the test, besides the cancellation, is for one that
            # was lost (Python 3.11's wait_for could drop it, in code of ours or a library's).
            while self._running and self._tasks.get(key) is this:
                started = loop.time()
                try:
                    assert self._semaphore is not None and self._session is not None
                    async with self._semaphore:
                        result = await probe(check, self._session, self._tls)
                    self._record(key, check, result)
                except Exception:  # a bug of ours must not stop this region's checks
                    logger.exception("health check of region %s of %s failed", key[1], key[0])
                if not first.done():
                    first.set_result(None)
                # Fixed rate from the start of each probe; the jitter spreads regions apart.
                spread = self._random.uniform(-check.jitter, check.jitter)
                next_at = started + check.interval * (1 + spread)
                await asyncio.sleep(max(0.0, next_at - loop.time()))
        finally:
            if not first.done():
                first.cancel()

    # --- recording results -----------------------------------------------------------

    def _record(self, key: Key, check: HealthCheck, result: ProbeResult) -> None:
        if self._checks.get(key) is not check:
            return  # the zones changed while this probe ran
        now = self._clock()
        stats = self.stats.setdefault(key, CheckStats())
        if result.ok:
            stats.ok += 1
        else:
            stats.failed += 1
        stats.last_duration = result.latency
        stats.total_duration += result.latency
        run = self._runs.setdefault(key, _Run())
        if result.ok:
            run.successes, run.failures = run.successes + 1, 0
        else:
            run.successes, run.failures = 0, run.failures + 1
        old = self._snapshot.get(*key)
        own, reason = old.own, ""
        if own is None:
            own = Health.UP if result.ok else Health.DOWN
            reason = "first check passed" if result.ok else f"first check: {result.error}"
        elif own is Health.UP and run.failures >= check.fall:
            own = Health.DOWN
            reason = f"{_count(run.failures, 'failure')}: {result.error}"
        elif own is Health.DOWN and run.successes >= check.rise:
            own = Health.UP
            reason = _count(run.successes, "success")
        before = self._own.get(key)
        # A failed probe says nothing about load or version: keep what was last reported.
        utilization = result.utilization if result.ok else (before and before.utilization)
        if utilization is not None:
            # To the percent, as the dashboard shows it: a reading that wobbles below that is
            # not news for the fleet, which hears of every change of a vote.
            utilization = round(utilization, 2)
        version = result.version if result.ok else (before and before.version)
        # `observed`: when this vote last changed, which is what "freshest" means to every
        # node; `at`: when it was last confirmed, which keeps it fresh.
        same = before is not None and (before.health, before.utilization, before.version) == (
            own,
            utilization,
            version,
        )
        observed = before.observed if same and before is not None else now
        self._own[key] = Vote(self.node, own, utilization, version, now, observed)
        verdict = self._judge(key, now)
        if verdict.up + verdict.down > 1 or not reason:
            reason = verdict.describe()  # more than this node's word decided
        if verdict.checked is not old.checked and old.forced is not None:
            logger.debug(
                "region %s of %s: checks say %s (%s); forced %s holds",
                key[1],
                key[0],
                verdict.checked,
                reason,
                old.forced,
            )
        new = replace(
            old,
            own=own,
            checked=verdict.checked,
            utilization=verdict.utilization,
            version=verdict.version,
            last_check=now,
            last_error=result.error,
            last_latency=result.latency,
        )
        self._commit(key, new, now, reason)
        if result.ok:
            values = dict(result.numbers)
            if verdict.utilization is not None:
                values["utilization"] = verdict.utilization
            self._probed[key] = values
            self._read(key, now)

    # --- the fleet's votes ------------------------------------------------------------

    def _judge(self, key: Key, now: float) -> Verdict:
        check = self._checks.get(key)
        max_age = STALE_AFTER * (check.interval if check is not None else 5.0)
        policy = self._quorum.get(key, Quorum.MAJORITY)
        verdict = decide(policy, self._own.get(key), self._others.get(key, ()), now, max_age)
        self.verdicts[key] = verdict
        return verdict

    def set_votes(self, others: dict[Key, list[Vote]]) -> None:
        """The other live nodes' votes, as last heard; then every region judged again."""
        self._others = others
        self.revote()

    def revote(self) -> None:
        """Judge every checked region again: call it on a timer too, since a vote goes stale
        with time alone."""
        now = self._clock()
        for key, check in self._checks.items():
            if check is None:
                continue
            old = self._snapshot.get(*key)
            verdict = self._judge(key, now)
            if (verdict.checked, verdict.utilization, verdict.version) == (
                old.checked,
                old.utilization,
                old.version,
            ):
                continue
            new = replace(
                old,
                checked=verdict.checked,
                utilization=verdict.utilization,
                version=verdict.version,
            )
            self._commit(key, new, now, verdict.describe())
        for service in {k[0] for k in self._loads}:
            self.steer(service)  # a signal goes stale with time alone, too

    # --- capacity ----------------------------------------------------------------------

    def _read(self, key: Key, now: float) -> None:
        """Fold the region's latest signals (its probe's, overlaid by a fresh push) into
        its controller as one reading, then steer its service."""
        values = dict(self._probed.get(key, {}))
        pushed = self._pushed.get(key)
        if pushed is not None and pushed[0] > now:
            values.update(pushed[1])
        spec = self._services.get(key[0])
        reading = load.level(values, spec.capacity) if spec is not None else None
        if reading is None and key not in self._loads:
            return  # no load ever read: nothing to control
        before = self._loads.get(key, load.Load())
        self._loads[key] = load.observe(before, reading, now, self._ttl(key[0]))
        self.steer(key[0])

    def _ttl(self, service: str) -> float:
        spec = self._services.get(service)
        return float(spec.ttl) if spec is not None else 30.0

    def steer(self, service: str) -> None:
        """Decide the service's shed shares (geodns.health.load) and install those that moved.
        Regions no reading has reached keep no share of their own (routing reads their
        utilization, if a state file gave one)."""
        spec = self._services.get(service)
        if spec is None or not any(k[0] == service for k in self._loads):
            return
        now = self._clock()
        self._expire_pushes(now)
        loads = {r.name: self._loads.get((service, r.name), load.Load()) for r in spec.regions}
        sizes = {r.name: r.gpus for r in spec.regions if r.gpus is not None}
        low, high = spec.capacity.low, spec.capacity.high
        changed: dict[Key, RegionState] = {}
        for name, x in load.decide(loads, sizes, now, spec.ttl, low, high).items():
            key = (service, name)
            if key not in self._loads and x == loads[name]:
                continue  # never read: routing reads it as a state file gave it
            self._loads[key] = x
            old = self._snapshot.get(*key)
            if (old.shed, old.accept) != (x.share, x.accept):
                changed[key] = replace(old, shed=x.share, accept=x.accept)
                level = "unknown" if x.level is None else f"{x.level:.0%}"
                # Shedding is news (at most once per TTL); who takes the shed is detail.
                moved = x.share != (old.shed or 0.0)
                logger.log(
                    logging.INFO if moved else logging.DEBUG,
                    "region %s of %s: load %s, sheds %s of its networks, takes %s of others'",
                    name,
                    service,
                    level,
                    f"{x.share:.0%}",
                    f"{x.accept:.0%}",
                )
        if changed:
            # One snapshot for the whole service: a region's shed and another's accept are
            # one decision, never published apart.
            self._snapshot = self._snapshot.with_regions({**self._snapshot.regions, **changed})
            self._notify(True)

    def push_load(
        self, service: str, region: str, values: Mapping[str, float], expires: float
    ) -> None:
        """Signal values pushed for a region (`utilization` as a ratio, and the service's
        signal keys), counting for `expires` seconds: an autoscaler that stops pushing does
        not pin the region. Raises UnknownRegion."""
        key = self._key(service, region)
        now = self._clock()
        self._pushed[key] = (now + expires, dict(values))
        self._read(key, now)

    def _expire_pushes(self, now: float) -> None:
        """A push past its time counts no more: without a probe's signals, the load is
        unknown at once (and shares are released by steps)."""
        for key, (until, _) in list(self._pushed.items()):
            if until <= now:
                del self._pushed[key]
                if key in self._loads and not self._probed.get(key):
                    self._loads[key] = replace(self._loads[key], level=None)

    def own_votes(self) -> dict[Key, Vote]:
        """This node's own vote per checked region, for the other nodes."""
        return dict(self._own)

    def _commit(self, key: Key, state: RegionState, now: float, reason: str) -> None:
        """Install one region's new state: effective health, transition, snapshot, notice."""
        old = self._snapshot.get(*key)
        health = effective_health(state.checked, state.forced)
        state = replace(state, health=health)
        if health is not old.health:
            state = replace(state, since=now)
            self._transition(Transition(now, key[0], key[1], old.health, health, reason))
        elif state.since is None and state.last_check is not None:
            state = replace(state, since=now)  # the first result: health is known from now
        if state == old:
            return
        self._snapshot = self._snapshot.with_region(*key, state)
        self._notify(state.routing != old.routing)

    def _transition(self, t: Transition) -> None:
        self.changes.append(t)
        level = logging.WARNING if t.new is Health.DOWN else logging.INFO
        logger.log(
            level, "region %s of %s: %s -> %s (%s)", t.region, t.service, t.old, t.new, t.reason
        )

    def _notify(self, routing_changed: bool) -> None:
        try:
            self._on_change(self._snapshot, routing_changed)
        except Exception:  # the caller's bug must not stop the checks
            logger.exception("health state change handler failed")

    # --- operators and reloads ---------------------------------------------------------

    def force(self, service: str, region: str, mode: str, why: str | None = None) -> StateSnapshot:
        """Force a region drain, up or down, or give it back to the checks with `auto`;
        `why` goes in the transition's reason (default: "forced by operator").

        Raises UnknownRegion (a KeyError) or ValueError with a message for people.
        """
        key, mode = self.force_check(service, region, mode)
        forced = None if mode == "auto" else Health(mode)
        old = self._snapshot.get(*key)
        reason = why or ("force cleared by operator" if forced is None else "forced by operator")
        if forced is None and old.forced is not None and old.checked is not None:
            reason += f"; checks say {old.checked}"
        self._commit(key, replace(old, forced=forced), self._clock(), reason)
        return self._snapshot

    def force_check(self, service: str, region: str, mode: str) -> tuple[Key, str]:
        """The region's key and the mode, normalised; UnknownRegion or ValueError if wrong."""
        key = self._key(service, region)
        mode = mode.strip().lower() if isinstance(mode, str) else mode
        if mode not in MODES:
            raise ValueError(f"mode {mode!r} is not one of {', '.join(MODES)}")
        return key, mode

    def _key(self, service: str, region: str) -> Key:
        name = service.strip().rstrip(".").lower()
        regions = [r for (s, r) in self._checks if s == name]
        if not regions:
            services = sorted({s for s, _ in self._checks})
            raise UnknownRegion(f"no service {service!r} (known: {', '.join(services)})")
        if region not in regions:
            raise UnknownRegion(
                f"service {name} has no region {region!r} (it has: {', '.join(sorted(regions))})"
            )
        return (name, region)

    def set_zones(self, zones: ZoneSet) -> None:
        """After a config reload. Regions that still exist keep their state, forced state
        included; new regions start up and unchecked; removed regions stop being probed.
        Call it from the event loop's thread."""
        checks = _checks_of(zones)
        self._quorum = _quorum_of(zones)
        self._services = {s.key: s for s in zones.services()}
        old_snapshot = self._snapshot
        now = self._clock()
        regions: dict[Key, RegionState] = {}
        kept: dict[Key, HealthCheck | None] = {}
        for key in self._checks.keys() - checks.keys():
            self._retire(key)
            self._runs.pop(key, None)
            self.stats.pop(key, None)
            self._own.pop(key, None)
            self._loads.pop(key, None)
            self._probed.pop(key, None)
            self._pushed.pop(key, None)
            self.verdicts.pop(key, None)
        for key, check in checks.items():
            previous = self._checks.get(key)
            state = old_snapshot.regions.get(key) or RegionState()
            if check is not None and check == previous:
                kept[key] = previous  # the same check: its loop keeps running
                regions[key] = state
                continue
            kept[key] = check
            self._retire(key)
            self._runs.pop(key, None)
            self._own.pop(key, None)
            if check is None:
                self.verdicts.pop(key, None)
                self.stats.pop(key, None)
                if state.checked is not None:
                    # Nothing checks it any more: only the operator has a say.
                    state = self._uncheck(key, state, now)
            else:
                self.stats.setdefault(key, CheckStats())
            regions[key] = state
        self._checks = kept
        if self._running:
            for key, check in kept.items():
                if check is not None and key not in self._tasks:
                    self._spawn(key, check)
        if regions != dict(old_snapshot.regions):
            self._snapshot = old_snapshot.with_regions(regions)
            self._notify(old_snapshot.routing_differs(self._snapshot))

    def _uncheck(self, key: Key, state: RegionState, now: float) -> RegionState:
        health = effective_health(None, state.forced)
        new = replace(state, checked=None, own=None, health=health, last_error=None)
        if health is not state.health:
            new = replace(new, since=now)
            self._transition(
                Transition(now, key[0], key[1], state.health, health, "health check removed")
            )
        return new


def _checks_of(zones: ZoneSet) -> dict[Key, HealthCheck | None]:
    return {
        (service.key, region.name): region.health
        for zone in zones.zones.values()
        for service in zone.services.values()
        for region in service.regions
    }


def _quorum_of(zones: ZoneSet) -> dict[Key, Quorum]:
    return {
        (service.key, region.name): service.quorum
        for zone in zones.zones.values()
        for service in zone.services.values()
        for region in service.regions
    }


def _seeded(state: RegionState | None) -> RegionState:
    if state is None:
        return RegionState()
    if state.checked is None and state.forced is None and state.health is not Health.UP:
        return replace(state, forced=state.health)
    return state


def _count(n: int, noun: str) -> str:
    plural = "successes" if noun == "success" else f"{noun}s"
    return f"{n} {noun if n == 1 else plural}"
