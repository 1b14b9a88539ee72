"""The monitor in a fleet: this node's own checks are one vote, the other live nodes' votes
(set_votes) the rest, and a region's checked health is the service's quorum over the fresh
ones. Real aiohttp regions on 127.0.0.1; only the clock is the test's, so that freshness is
exact."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Coroutine
from typing import Any

from geodns.demo.region import SimulatedRegion
from geodns.health.monitor import STALE_AFTER, HealthMonitor
from geodns.health.quorum import Vote
from geodns.health.state import Health, RegionState, StateSnapshot
from geodns.yamlsource import load_yaml
from geodns.zones.loader import build_zone
from geodns.zones.model import ZoneSet
from tests.regions import simulated, until

SERVICE = "inference.example.com"
KEY = (SERVICE, "eu")
UP, DOWN = Health.UP, Health.DOWN
INTERVAL = 0.2  # seconds: a vote is stale after STALE_AFTER of them
MAX_AGE = STALE_AFTER * INTERVAL


class Clock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def zoneset(region: SimulatedRegion, quorum: str | None = None, **health: Any) -> ZoneSet:
    """Service `inference` with one checked region `eu` and an unchecked one `us`."""
    check = {"url": region.health_url, "interval": INTERVAL, "timeout": 0.2, "jitter": 0.1}
    service: dict[str, Any] = {
        "regions": {
            "eu": {"addresses": ["192.0.2.1"], "health": {**check, **health}},
            "us": {"addresses": ["192.0.2.2"]},
        }
    }
    if quorum is not None:
        service["quorum"] = quorum
    doc = {
        "zone": "example.com",
        "soa": {"mname": "ns1", "rname": "hostmaster"},
        "ns": ["ns1"],
        "services": {"inference": service},
    }
    zone = build_zone(load_yaml(json.dumps(doc), "example.com.yaml"))  # JSON is YAML
    return ZoneSet({zone.origin: zone})


@contextlib.asynccontextmanager
async def monitoring(zones: ZoneSet, clock: Clock) -> AsyncIterator[HealthMonitor]:
    seen: list[StateSnapshot] = []
    monitor = HealthMonitor(zones, lambda s, _: seen.append(s), clock=clock, node="dns-a")
    await monitor.start()
    try:
        yield monitor
    finally:
        await monitor.stop()


def vote(node: str, health: Health, at: float, utilization: float | None = None) -> Vote:
    return Vote(node, health, utilization, None, at)


def eu(monitor: HealthMonitor) -> RegionState:
    return monitor.snapshot.get(*KEY)


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(coro)


def test_two_other_nodes_seeing_it_down_take_it_down_under_majority() -> None:
    async def main() -> None:
        clock = Clock()
        async with simulated("eu") as r, monitoring(zoneset(r["eu"]), clock) as monitor:
            assert (eu(monitor).own, eu(monitor).checked, eu(monitor).health) == (UP, UP, UP)
            monitor.set_votes({KEY: [vote("dns-b", DOWN, clock.t), vote("dns-c", DOWN, clock.t)]})
            state = eu(monitor)
            # This node's own checks still say up; the fleet's majority says down.
            assert (state.own, state.checked, state.health) == (UP, DOWN, DOWN)
            assert monitor.own_votes()[KEY].health is UP
            verdict = monitor.verdicts[KEY]
            assert (verdict.up, verdict.down) == (1, 2)
            assert verdict.describe() == "down: 2 of 3 nodes see it down (majority)"
            assert monitor.changes[-1].reason == "down: 2 of 3 nodes see it down (majority)"
            # The next probe (it passes) judges again with the same votes: still down.
            ok = monitor.stats[KEY].ok
            await until(lambda: monitor.stats[KEY].ok > ok)
            assert eu(monitor).checked is DOWN
            # The unchecked region has no votes and is not judged.
            assert monitor.snapshot.get(SERVICE, "us") == RegionState()
            assert (SERVICE, "us") not in monitor.verdicts

    run(main())


def test_one_other_node_seeing_it_down_leaves_it_up_two_against_one() -> None:
    async def main() -> None:
        clock = Clock()
        async with simulated("eu") as r, monitoring(zoneset(r["eu"]), clock) as monitor:
            monitor.set_votes({KEY: [vote("dns-b", UP, clock.t), vote("dns-c", DOWN, clock.t)]})
            assert (eu(monitor).checked, eu(monitor).health) == (UP, UP)
            verdict = monitor.verdicts[KEY]
            assert (verdict.up, verdict.down) == (2, 1)
            assert verdict.describe() == "up: 1 of 3 nodes see it down, no majority"
            # A tie stays up too: this node up, one other down.
            monitor.set_votes({KEY: [vote("dns-c", DOWN, clock.t)]})
            assert eu(monitor).checked is UP
            assert (monitor.verdicts[KEY].up, monitor.verdicts[KEY].down) == (1, 1)

    run(main())


def test_under_any_one_other_node_seeing_it_down_takes_it_down() -> None:
    async def main() -> None:
        clock = Clock()
        async with simulated("eu") as r, monitoring(zoneset(r["eu"], "any"), clock) as monitor:
            monitor.set_votes({KEY: [vote("dns-b", UP, clock.t), vote("dns-c", DOWN, clock.t)]})
            assert (eu(monitor).own, eu(monitor).checked, eu(monitor).health) == (UP, DOWN, DOWN)
            assert monitor.verdicts[KEY].describe() == "down: 1 of 3 nodes see it down (any)"
            # Its vote withdrawn (the node gone with its lease): up again.
            monitor.set_votes({KEY: [vote("dns-b", UP, clock.t)]})
            assert (eu(monitor).checked, eu(monitor).health) == (UP, UP)

    run(main())


def test_under_local_only_this_nodes_checks_count() -> None:
    async def main() -> None:
        clock = Clock()
        async with simulated("eu") as r, monitoring(zoneset(r["eu"], "local"), clock) as monitor:
            monitor.set_votes({KEY: [vote("dns-b", DOWN, clock.t), vote("dns-c", DOWN, clock.t)]})
            assert eu(monitor).checked is UP
            assert monitor.verdicts[KEY].up + monitor.verdicts[KEY].down == 1

    run(main())


def test_stale_votes_are_ignored() -> None:
    async def main() -> None:
        clock = Clock()
        async with simulated("eu") as r, monitoring(zoneset(r["eu"]), clock) as monitor:
            # Heard longer ago than three probe intervals: dead nodes' last words.
            old = clock.t - MAX_AGE - 0.01
            monitor.set_votes({KEY: [vote("dns-b", DOWN, old), vote("dns-c", DOWN, old)]})
            assert eu(monitor).checked is UP
            assert (monitor.verdicts[KEY].up, monitor.verdicts[KEY].down) == (1, 0)
            # Fresh votes take it down; time alone makes them stale, noticed by revote().
            monitor.set_votes({KEY: [vote("dns-b", DOWN, clock.t), vote("dns-c", DOWN, clock.t)]})
            assert eu(monitor).checked is DOWN
            heard = clock.t
            clock.t = heard + MAX_AGE - 0.01  # not quite three intervals old: still fresh
            monitor.revote()
            assert eu(monitor).checked is DOWN
            clock.t = heard + MAX_AGE + 0.01
            # This node's own vote is kept fresh by its probes (the clock is the test's).
            await until(lambda: monitor.own_votes()[KEY].at == clock.t)
            monitor.revote()
            assert (eu(monitor).checked, eu(monitor).health) == (UP, UP)
            assert (monitor.verdicts[KEY].up, monitor.verdicts[KEY].down) == (1, 0)
            assert monitor.changes[-1].new is UP

    run(main())


def test_a_vote_bearing_this_nodes_name_is_its_own_word() -> None:
    async def main() -> None:
        clock = Clock()
        async with simulated("eu") as r, monitoring(zoneset(r["eu"]), clock) as monitor:
            # This node's own vote as it came back through the store, older: the first-hand
            # one counts instead, and once.
            monitor.set_votes({KEY: [vote("dns-a", DOWN, clock.t), vote("dns-b", UP, clock.t)]})
            assert eu(monitor).checked is UP
            assert (monitor.verdicts[KEY].up, monitor.verdicts[KEY].down) == (2, 0)

    run(main())


def test_own_votes_follow_rise_and_fall_while_the_fleet_decides() -> None:
    async def main() -> None:
        clock = Clock()
        async with simulated("eu") as r:
            zones = zoneset(r["eu"], rise=2, fall=2)
            async with monitoring(zones, clock) as monitor:
                region = r["eu"]
                others = [vote("dns-b", UP, clock.t, 0.5), vote("dns-c", UP, clock.t, 0.5)]
                monitor.set_votes({KEY: others})
                own = monitor.own_votes()[KEY]
                assert (own.node, own.health, own.utilization, own.version) == (
                    "dns-a",
                    UP,
                    0.42,
                    "42",
                )
                region.mode = "failing"
                failed = monitor.stats[KEY].failed
                await until(lambda: monitor.stats[KEY].failed == failed + 1)
                assert monitor.own_votes()[KEY].health is UP  # one failure is not a fall
                await until(lambda: monitor.own_votes()[KEY].health is DOWN)
                assert monitor.stats[KEY].failed == failed + 2
                # A failed probe says nothing about load or version: the last ones stay.
                assert monitor.own_votes()[KEY].utilization == 0.42
                # This node sees it down; two others up: the region stays up.
                state = eu(monitor)
                assert (state.own, state.checked, state.health) == (DOWN, UP, UP)
                assert state.last_error == "HTTP 500"
                region.mode = "healthy"
                ok = monitor.stats[KEY].ok
                await until(lambda: monitor.stats[KEY].ok == ok + 1)
                assert monitor.own_votes()[KEY].health is DOWN  # one success is not a rise
                await until(lambda: monitor.own_votes()[KEY].health is UP)
                assert eu(monitor).own is UP

    run(main())
