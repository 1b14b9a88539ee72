"""Capacity shedding in a closed loop: simulated regions whose utilization follows the share
of client networks the answers send them, 300 client networks re-resolving every TTL
through the real route(), a health round every few seconds. Pure: simulated time, no
sockets. The loop must settle: after the transient no network switches region more than
once per SETTLED_TTLS TTLs, and the busy region's utilization stays inside the band."""

from __future__ import annotations

import ipaddress
import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from types import MappingProxyType

import dns.name
import dns.rrset

from geodns.control.plane import routing_signature
from geodns.geo.geoip import GeoRecord
from geodns.geo.locate import Client
from geodns.health.monitor import HealthMonitor
from geodns.health.state import RegionState, StateSnapshot
from geodns.routing.pipeline import route
from geodns.zones.model import Capacity, Region, Service, Zone, ZoneSet

TTL = 30  # seconds, the service's
PROBE = 5  # seconds between health rounds
NETWORKS = 300
DURATION = 40 * TTL
TRANSIENT = 10 * TTL  # what the loop may take to settle
SETTLED_TTLS = 5  # after the transient: at most one switch per network per this many TTLs
NOISE = 0.01  # each reading is off by up to this much, as real GPU counters are

# us-east-1 would be at 120% of its capacity if it took every network (the loop);
# us-west-2 is as big and idle otherwise, so there is room to shed to.
DEMAND = {"us-east-1": 1.2, "us-west-2": 1.2}

SERVICE = Service(
    dns.name.from_text("inference.example.com"),
    TTL,
    (
        Region("us-east-1", ("192.0.2.10",), 38.9, -77.0),
        Region("us-west-2", ("192.0.2.40",), 45.5, -122.7),
    ),
    capacity=Capacity(0.75, 0.92),
    latency=None,
)
KEY = SERVICE.key
# East-coast networks: us-east-1 is every one's nearest region.
EAST = GeoRecord("US", "NA", None, 40.7, -74.0)

Publish = Callable[[StateSnapshot, dict[str, float], float], StateSnapshot]


def today(published: StateSnapshot, readings: dict[str, float], now: float) -> StateSnapshot:
    """What the health monitor publishes for a round's readings: each region's
    utilization, to the percent (the control plane publishes every change inside the band)."""
    regions = {(KEY, name): RegionState(utilization=round(u, 2)) for name, u in readings.items()}
    return StateSnapshot(published.version + 1, MappingProxyType(regions))


class Controlled:
    """The health monitor's capacity controller, fed each round's readings (as a probe or
    a push would), published as the control plane publishes: when routing_signature
    changes."""

    def __init__(self, service: Service = SERVICE) -> None:
        origin = dns.name.from_text("example.com")
        soa = dns.rrset.from_text(origin, 300, "IN", "SOA", "ns1 hostmaster 1 3600 600 86400 60")
        zone = Zone(origin, "sim.yaml", soa, {}, {service.name: service})
        self.zones = ZoneSet({origin: zone})
        self.now = 0.0
        self.monitor = HealthMonitor(self.zones, lambda *_: None, clock=lambda: self.now)

    def __call__(
        self, published: StateSnapshot, readings: dict[str, float], now: float
    ) -> StateSnapshot:
        self.now = now
        for name, u in readings.items():
            self.monitor.push_load(KEY, name, {"utilization": u}, 3 * TTL)
        current = self.monitor.snapshot
        if routing_signature(self.zones, current) != routing_signature(self.zones, published):
            return current
        return published


@dataclass
class Run:
    """What one closed loop did."""

    utilization: list[tuple[int, dict[str, float]]] = field(default_factory=list)
    switches: list[list[int]] = field(default_factory=list)  # per network: times it moved
    states: set[tuple[object, ...]] = field(default_factory=set)

    def after(self, start: int) -> list[float]:
        return [u["us-east-1"] for t, u in self.utilization if t >= start]

    def worst_switches(self, start: int, window: int) -> int:
        """The most switches any network made in any `window` seconds from `start` on."""
        worst = 0
        for times in self.switches:
            late = [t for t in times if t >= start]
            for i, t in enumerate(late):
                worst = max(worst, sum(1 for u in late[i:] if u < t + window))
        return worst

    def settled_at(self, low: float, high: float) -> int:
        """The first time after which us-east-1 stays inside the band and no network
        moves more than once per SETTLED_TTLS TTLs."""
        out = 0
        for t, u in self.utilization:
            if not low <= u["us-east-1"] <= high:
                out = t + 1
        for times in self.switches:
            for a, b in itertools.pairwise(times):
                if b - a < SETTLED_TTLS * TTL:
                    out = max(out, b + 1)
        return out


def simulate(
    publish: Publish, seed: int = 14, service: Service = SERVICE, demand: dict[str, float] = DEMAND
) -> Run:
    rng = random.Random(seed)
    clients = []
    for i in range(NETWORKS):
        net = ipaddress.ip_network(f"{ipaddress.IPv4Address((100 << 24) + (i << 8) * 37)}/24")
        clients.append(Client(net.network_address, None, net, EAST))
    expiry = [rng.randrange(TTL) for _ in range(NETWORKS)]  # resolvers' caches, out of step
    answer: list[str | None] = [None] * NETWORKS
    run = Run(switches=[[] for _ in range(NETWORKS)])
    published = StateSnapshot()
    for now in range(DURATION):
        for i in range(NETWORKS):
            if expiry[i] <= now:
                got = route(clients[i], service, published).regions[0].name
                if answer[i] is not None and got != answer[i]:
                    run.switches[i].append(now)
                answer[i] = got
                expiry[i] = now + TTL
        load = {name: sum(a == name for a in answer) / NETWORKS for name in demand}
        actual = {name: demand[name] * load[name] for name in demand}
        run.utilization.append((now, actual))
        if now % PROBE == 0:
            # A GPU is at most 100% busy: what it cannot serve queues up unseen.
            readings = {
                n: min(1.0, max(0.0, u + rng.uniform(-NOISE, NOISE))) for n, u in actual.items()
            }
            published = publish(published, readings, float(now))
            run.states.add(tuple(sorted((k, v.routing) for k, v in published.regions.items())))
    return run


def check_settles(run: Run) -> None:
    low, high = SERVICE.capacity.low, SERVICE.capacity.high
    late = run.after(TRANSIENT)
    print(
        f"\nclosed loop: us-east-1 {min(late):.2f}..{max(late):.2f} after {TRANSIENT} s;"
        f" worst switches per network in {SETTLED_TTLS} TTLs:"
        f" {run.worst_switches(TRANSIENT, SETTLED_TTLS * TTL)};"
        f" networks that moved twice or more in 100 s:"
        f" {sum(1 for s in run.switches if _twice_in(s, 100, TRANSIENT))} of {NETWORKS};"
        f" settled after {run.settled_at(low, high)} s; {len(run.states)} distinct states"
    )
    assert run.worst_switches(TRANSIENT, SETTLED_TTLS * TTL) <= 1
    assert low <= min(late) and max(late) <= high


def _twice_in(times: list[int], window: int, start: int) -> bool:
    late = [t for t in times if t >= start]
    return any(b - a < window for a, b in itertools.pairwise(late))


def test_closed_loop_settles() -> None:
    run = simulate(Controlled())
    check_settles(run)


def test_closed_loop_oscillates_without_the_controller() -> None:
    """The loop as the health monitor and control plane published before the controller
    (the issue's measurement): the undamped share does not settle."""
    run = simulate(today)
    try:
        check_settles(run)
    except AssertionError:
        return
    raise AssertionError("the undamped loop settled: the simulation no longer shows the issue")


# The same demand (76.8 GPUs' worth, 120% of us-east-1's 64) next to a small region on the
# way: us-west-2 has 8 GPUs and is every east-coast client's second choice, eu-west-1 has 64.
SIZED = replace(
    SERVICE,
    regions=(
        replace(SERVICE.regions[0], gpus=64),
        replace(SERVICE.regions[1], gpus=8),
        Region("eu-west-1", ("192.0.2.20",), 53.3, -6.3, gpus=64),
    ),
)
SIZED_DEMAND = {"us-east-1": 1.2, "us-west-2": 1.2 * 64 / 8, "eu-west-1": 1.2}


def test_closed_loop_settles_without_overloading_a_small_region() -> None:
    run = simulate(Controlled(SIZED), service=SIZED, demand=SIZED_DEMAND)
    check_settles(run)
    small = [u["us-west-2"] for t, u in run.utilization if t >= TRANSIENT]
    print(f"us-west-2 (8 GPUs) {min(small):.2f}..{max(small):.2f}")
    assert max(small) <= SIZED.capacity.high
