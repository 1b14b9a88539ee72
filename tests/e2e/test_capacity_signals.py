"""Capacity signals read by the health monitor from real aiohttp regions, and pushed loads
that expire: the controller's shares as the monitor publishes them."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from geodns.health.load import STEP
from geodns.health.monitor import HealthMonitor
from geodns.yamlsource import load_yaml
from geodns.zones.loader import build_zone
from geodns.zones.model import ZoneSet
from tests.e2e.test_health_checks import FAST, SERVICE, monitoring, state
from tests.regions import simulated, until

SIGNALS = {"num_requests_waiting": {"low": 8, "high": 32}}


def zoneset(health: dict[str, dict[str, Any] | None]) -> ZoneSet:
    regions = {
        name: {"addresses": [f"192.0.2.{i + 1}"], **({"health": h} if h else {})}
        for i, (name, h) in enumerate(health.items())
    }
    doc = {
        "zone": "example.com",
        "soa": {"mname": "ns1", "rname": "hostmaster"},
        "ns": ["ns1"],
        "services": {"inference": {"regions": regions, "capacity": {"signals": SIGNALS}}},
    }
    zone = build_zone(load_yaml(json.dumps(doc), "example.com.yaml"))
    return ZoneSet({zone.origin: zone})


def test_the_worst_signal_sheds_and_garbage_is_unknown() -> None:
    async def main() -> None:
        async with simulated("us", "eu") as r:
            r["us"].utilization = 0.3  # GPUs idle, but the queue is long
            r["us"].extra = {"num_requests_waiting": 40}
            r["eu"].utilization = 0.1
            zones = zoneset({n: {"url": r[n].health_url, **FAST} for n in ("us", "eu")})
            async with monitoring(zones) as (monitor, _):
                await until(lambda: state(monitor, "us").shed == STEP)
                assert state(monitor, "us").accept == 0.0
                assert state(monitor, "eu").accept > 0
                # A garbled signal is unknown: the probe passes, nothing crashes, and the
                # region's other signals still count.
                r["eu"].extra = {"num_requests_waiting": "lots"}
                seen = r["eu"].health_requests
                await until(lambda: r["eu"].health_requests >= seen + 3)
                eu = state(monitor, "eu")
                assert eu.checked is not None and eu.up and eu.accept > 0
                r["eu"].extra = {"num_requests_waiting": [1, 2]}
                seen = r["eu"].health_requests
                await until(lambda: r["eu"].health_requests >= seen + 3)
                assert state(monitor, "eu").up

    asyncio.run(main())


def test_a_pushed_load_expires() -> None:
    now = [1000.0]
    zones = zoneset({"us": None, "eu": None})
    for expires, after in ((10.0, 0.0), (3600.0, 2 * STEP)):
        monitor = HealthMonitor(zones, lambda *_: None, clock=lambda: now[0])
        now[0] = 1000.0
        monitor.push_load(SERVICE, "eu", {"utilization": 0.1}, 3600.0)
        monitor.push_load(SERVICE, "us", {"utilization": 1.3}, expires)
        assert monitor.snapshot.get(SERVICE, "us").shed == STEP
        now[0] = 1031.0  # a TTL on: the share may move again
        monitor.revote()
        # Expired: the load is unknown and the share is released; else it sheds more.
        assert monitor.snapshot.get(SERVICE, "us").shed == after, expires
