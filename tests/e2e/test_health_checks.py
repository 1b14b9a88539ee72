"""The health monitor against real aiohttp regions on 127.0.0.1 made slow, failing, busy."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import json
import logging
import socket
import ssl
import time
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import Any

import pytest

from geodns.demo.region import SimulatedRegion, start_region
from geodns.health.monitor import HealthMonitor, UnknownRegion
from geodns.health.state import Health, RegionState, StateSnapshot
from geodns.yamlsource import load_yaml
from geodns.zones.loader import build_zone
from geodns.zones.model import ZoneSet
from tests.regions import simulated, until

SERVICE = "inference.example.com"
# Short enough for quick tests, long enough that a loaded machine does not fail good probes.
FAST = {"interval": 0.2, "timeout": 0.2, "jitter": 0.1}


def zoneset(
    regions: dict[str, dict[str, Any] | None],
    service_health: dict[str, Any] | None = None,
    file: str = "example.com.yaml",
) -> ZoneSet:
    """A zone with service `inference` whose regions have these `health:` mappings."""
    service: dict[str, Any] = {
        "regions": {
            name: {"addresses": [f"192.0.2.{i + 1}"], **({"health": h} if h else {})}
            for i, (name, h) in enumerate(regions.items())
        }
    }
    if service_health:
        service["health"] = service_health
    doc = {
        "zone": "example.com",
        "soa": {"mname": "ns1", "rname": "hostmaster"},
        "ns": ["ns1"],
        "services": {"inference": service},
    }
    zone = build_zone(load_yaml(json.dumps(doc), file))  # JSON is YAML
    return ZoneSet({zone.origin: zone})


def http(region: SimulatedRegion, **keys: Any) -> dict[str, Any]:
    return {"url": region.health_url, **FAST, **keys}


class Recorder:
    """on_change: every snapshot and whether routing changed."""

    def __init__(self) -> None:
        self.calls: list[tuple[StateSnapshot, bool]] = []

    def __call__(self, snapshot: StateSnapshot, routing_changed: bool) -> None:
        self.calls.append((snapshot, routing_changed))

    def healths(self, region: str) -> list[Health]:
        return [s.get(SERVICE, region).health for s, _ in self.calls]


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(coro)


@contextlib.asynccontextmanager
async def monitoring(
    zones: ZoneSet, **kwargs: Any
) -> AsyncIterator[tuple[HealthMonitor, Recorder]]:
    recorder = Recorder()
    monitor = HealthMonitor(zones, recorder, **kwargs)
    await monitor.start()
    try:
        yield monitor, recorder
    finally:
        await monitor.stop()


def state(monitor: HealthMonitor, region: str) -> RegionState:
    return monitor.snapshot.get(SERVICE, region)


def test_healthy_region_is_up_after_the_first_round() -> None:
    async def main() -> None:
        async with simulated("eu") as r:
            zones = zoneset({"eu": http(r["eu"]), "us": None})
            async with monitoring(zones, clock=lambda: 1000.0) as (monitor, recorder):
                eu = state(monitor, "eu")
                assert (eu.health, eu.checked, eu.utilization, eu.version) == (
                    Health.UP,
                    Health.UP,
                    0.42,
                    "42",
                )
                assert eu.last_check == eu.since == 1000.0
                assert eu.last_error is None and eu.last_latency is not None
                assert state(monitor, "us") == RegionState()  # not checked: up
                assert recorder.calls and recorder.calls[0][1]  # utilization became known
                assert monitor.stats[(SERVICE, "eu")].ok >= 1
                assert (SERVICE, "us") not in monitor.stats
                assert not monitor.changes

    run(main())


def test_failing_region_goes_down_after_fall_failures_and_back_after_rise(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="geodns.health")

    async def main() -> None:
        async with simulated("eu") as r:
            zones = zoneset({"eu": http(r["eu"], rise=2, fall=3)})
            async with monitoring(zones) as (monitor, _):
                stats = monitor.stats[(SERVICE, "eu")]
                r["eu"].mode = "failing"
                await until(lambda: stats.failed >= 1)
                assert state(monitor, "eu").up  # one failure is not enough
                assert state(monitor, "eu").last_error == "HTTP 500"
                await until(lambda: not state(monitor, "eu").up)
                assert stats.failed == 3
                r["eu"].mode = "healthy"
                ok = stats.ok
                await until(lambda: stats.ok == ok + 1)
                assert not state(monitor, "eu").up  # one success is not enough
                await until(lambda: state(monitor, "eu").up)
                assert stats.ok == ok + 2
                down, up = monitor.changes
                assert (down.old, down.new, down.reason) == (
                    Health.UP,
                    Health.DOWN,
                    "3 failures: HTTP 500",
                )
                assert (up.service, up.region, up.new, up.reason) == (
                    SERVICE,
                    "eu",
                    Health.UP,
                    "2 successes",
                )

    run(main())
    assert [rec.getMessage() for rec in caplog.records] == [
        "region eu of inference.example.com: up -> down (3 failures: HTTP 500)",
        "region eu of inference.example.com: down -> up (2 successes)",
    ]


def test_a_single_failure_never_flaps_a_region() -> None:
    async def main() -> None:
        async with simulated("eu") as r:
            zones = zoneset({"eu": http(r["eu"], fall=2)})
            async with monitoring(zones) as (monitor, recorder):
                stats = monitor.stats[(SERVICE, "eu")]
                r["eu"].mode = "failing"
                await until(lambda: stats.failed == 1)
                r["eu"].mode = "healthy"
                ok = stats.ok
                await until(lambda: stats.ok >= ok + 3)
                assert stats.failed == 1
                assert set(recorder.healths("eu")) == {Health.UP}
                assert not monitor.changes
                assert state(monitor, "eu").last_error is None

    run(main())


def test_a_first_failure_counts_at_once() -> None:
    async def main() -> None:
        async with simulated("eu") as r:
            r["eu"].mode = "failing"
            async with monitoring(zoneset({"eu": http(r["eu"])})) as (monitor, _):
                assert state(monitor, "eu").health is Health.DOWN
                (change,) = monitor.changes
                assert change.reason == "first check: HTTP 500"

    run(main())


def test_slow_beyond_the_timeout_is_down() -> None:
    async def main() -> None:
        async with simulated("eu") as r:
            r["eu"].configure(mode="slow", delay=0.6)
            zones = zoneset({"eu": http(r["eu"])})
            async with monitoring(zones) as (monitor, _):
                eu = state(monitor, "eu")
                assert eu.health is Health.DOWN
                assert eu.last_error == "timeout after 0.2s"
                assert eu.last_latency is not None and eu.last_latency < 0.5
            # Slow but within the timeout is fine.
            r["eu"].configure(delay=0.01)
            async with monitoring(zones) as (monitor, _):
                assert state(monitor, "eu").up

    run(main())


def test_a_hanging_region_does_not_delay_the_others() -> None:
    async def main() -> None:
        async with simulated("stuck", "fine") as r:
            r["stuck"].mode = "hanging"
            zones = zoneset(
                {
                    "stuck": http(r["stuck"], interval=0.4, timeout=0.4),
                    "fine": http(r["fine"], interval=0.15, timeout=0.15),
                }
            )
            started = time.monotonic()
            async with monitoring(zones, concurrency=4) as (monitor, _):
                # The first round waits for the slowest timeout, not longer.
                assert time.monotonic() - started < 0.4 + 0.5
                assert state(monitor, "stuck").last_error == "timeout after 0.4s"
                assert not state(monitor, "stuck").up and state(monitor, "fine").up
                fine = monitor.stats[(SERVICE, "fine")]
                ok = fine.ok
                await asyncio.sleep(0.85)  # two of stuck's timeouts: count fine's probes
                assert fine.ok >= ok + 4  # about 5-6
                assert fine.failed == 0

    run(main())


def test_garbage_is_down_only_where_the_body_is_required() -> None:
    async def main() -> None:
        async with simulated("strict", "lax", "liar") as r:
            for region in r.values():
                region.mode = "garbage"
            r["liar"].mode = "lying"
            zones = zoneset(
                {
                    "strict": http(r["strict"], require=["ready"]),
                    "lax": http(r["lax"]),
                    "liar": http(r["liar"]),
                }
            )
            async with monitoring(zones) as (monitor, _):
                assert state(monitor, "strict").last_error == "body is not JSON"
                assert not state(monitor, "strict").up
                assert state(monitor, "lax").up and state(monitor, "lax").utilization is None
                assert state(monitor, "liar").last_error == "ready is false"
                assert not state(monitor, "liar").up

    run(main())


def test_utilization_and_version_are_reported() -> None:
    async def main() -> None:
        async with simulated("eu") as r:
            zones = zoneset({"eu": http(r["eu"], require=["utilization"])})
            async with monitoring(zones) as (monitor, recorder):
                stats = monitor.stats[(SERVICE, "eu")]
                ok = stats.ok
                await until(lambda: stats.ok >= ok + 2)
                # Probes that change nothing routing reads: new snapshots, routing unchanged.
                assert recorder.calls[-1][1] is False
                r["eu"].configure(utilization=0.95, version="43")
                await until(lambda: state(monitor, "eu").utilization == 0.95)
                assert state(monitor, "eu").version == "43"
                assert any(
                    changed and s.get(SERVICE, "eu").utilization == 0.95
                    for s, changed in recorder.calls
                )
                r["eu"].utilization = 85  # a percent
                await until(lambda: state(monitor, "eu").utilization == 0.85)
                r["eu"].utilization = 250
                await until(lambda: not state(monitor, "eu").up)
                assert (
                    state(monitor, "eu").last_error
                    == "gpu_utilization 250 is not 0..1 or a percent"
                )
                assert state(monitor, "eu").utilization == 0.85  # the last one reported

    run(main())


def test_tcp_checks() -> None:
    async def main() -> None:
        with socket.socket() as probe_port:
            probe_port.bind(("127.0.0.1", 0))
            closed = probe_port.getsockname()[1]  # nothing listens once it is closed
        async with simulated("eu") as r:
            zones = zoneset(
                {
                    "open": {"tcp": f"127.0.0.1:{r['eu'].port}", **FAST},
                    "closed": {"tcp": f"127.0.0.1:{closed}", **FAST},
                }
            )
            async with monitoring(zones) as (monitor, _):
                assert state(monitor, "open").up
                assert state(monitor, "open").last_latency is not None
                assert not state(monitor, "closed").up
                assert state(monitor, "closed").last_error == "connection refused"

    run(main())


def test_forced_states_outrank_checks(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="geodns.health")

    async def main() -> None:
        async with simulated("eu") as r:
            zones = zoneset({"eu": http(r["eu"], fall=1, rise=1), "us": None})
            async with monitoring(zones) as (monitor, recorder):
                snap = monitor.force(SERVICE, "eu", "drain")
                assert snap is monitor.snapshot and recorder.calls[-1] == (snap, True)
                eu = state(monitor, "eu")
                assert (eu.health, eu.forced, eu.checked) == (Health.DRAIN, Health.DRAIN, Health.UP)
                r["eu"].mode = "failing"
                await until(lambda: state(monitor, "eu").checked is Health.DOWN)
                assert state(monitor, "eu").health is Health.DRAIN
                monitor.force(SERVICE + ".", "eu", "UP")
                assert state(monitor, "eu").health is Health.UP
                monitor.force(SERVICE, "eu", "auto")
                assert state(monitor, "eu").health is Health.DOWN
                assert state(monitor, "eu").forced is None
                monitor.force(SERVICE, "us", "down")  # unchecked regions can be forced too
                assert state(monitor, "us").health is Health.DOWN
                with pytest.raises(UnknownRegion, match=r"no service 'nope\.example\.com'"):
                    monitor.force("nope.example.com", "eu", "down")
                with pytest.raises(KeyError, match="has no region 'mars'"):
                    monitor.force(SERVICE, "mars", "down")
                with pytest.raises(ValueError, match="mode 'off' is not one of drain, up, down"):
                    monitor.force(SERVICE, "eu", "off")
                reasons = [(c.old, c.new, c.reason) for c in monitor.changes]
                assert reasons == [
                    (Health.UP, Health.DRAIN, "forced by operator"),
                    (Health.DRAIN, Health.UP, "forced by operator"),
                    (Health.UP, Health.DOWN, "force cleared by operator; checks say down"),
                    (Health.UP, Health.DOWN, "forced by operator"),
                ]

    run(main())
    assert "region eu of inference.example.com: up -> drain (forced by operator)" in [
        rec.getMessage() for rec in caplog.records
    ]


def test_set_zones_carries_state_over() -> None:
    async def main() -> None:
        async with simulated("a", "b", "c") as r:
            r["b"].mode = "failing"
            before = zoneset({"a": http(r["a"]), "b": http(r["b"]), "gone": http(r["a"])})
            async with monitoring(before) as (monitor, recorder):
                monitor.force(SERVICE, "a", "drain")
                assert not state(monitor, "b").up
                b_stats = monitor.stats[(SERVICE, "b")]
                after = zoneset(
                    {
                        "a": http(r["a"]),
                        "b": http(r["b"]),
                        "c": http(r["c"]),
                        "new-unchecked": None,
                    }
                )
                version = monitor.snapshot.version
                monitor.set_zones(after)
                assert monitor.snapshot.version > version
                assert (SERVICE, "gone") not in monitor.snapshot.regions
                assert (SERVICE, "gone") not in monitor.stats
                assert state(monitor, "a").health is Health.DRAIN
                assert state(monitor, "b").health is Health.DOWN
                assert state(monitor, "new-unchecked") == RegionState()
                await until(lambda: state(monitor, "c").checked is Health.UP)
                # b's checks go on (same check, same loop): rise still applies to it.
                failed = b_stats.failed
                await until(lambda: monitor.stats[(SERVICE, "b")].failed > failed)
                assert monitor.stats[(SERVICE, "b")] is b_stats
                # A region whose check is removed is no longer down by the checks.
                monitor.set_zones(zoneset({"a": http(r["a"]), "b": None}))
                assert state(monitor, "b").up and state(monitor, "b").checked is None
                assert monitor.changes[-1].reason == "health check removed"
                assert recorder.calls[-1][0] is monitor.snapshot

    run(main())


def test_initial_state_file_regions_are_forced() -> None:
    async def main() -> None:
        zones = zoneset({"a": None, "b": None})
        initial = StateSnapshot(7).with_region(SERVICE, "a", RegionState(Health.DRAIN, 0.5))
        monitor = HealthMonitor(zones, Recorder(), initial=initial)
        assert monitor.snapshot.version == 9
        assert state(monitor, "a") == RegionState(Health.DRAIN, 0.5, forced=Health.DRAIN)
        monitor.force(SERVICE, "a", "auto")
        assert state(monitor, "a").up
        await monitor.stop()  # never started: nothing to do

    run(main())


def test_headers_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    async def main() -> None:
        async with simulated("eu", "us") as r:
            headers = {"Authorization": "Bearer ${TEST_GEODNS_TOKEN}", "X-Region": "eu"}
            zones = zoneset(
                {
                    "eu": http(r["eu"]),
                    "us": http(r["us"], headers={"Authorization": "${TEST_GEODNS_MISSING}"}),
                },
                service_health={"headers": headers},
            )
            async with monitoring(zones) as (monitor, _):
                assert r["eu"].last_headers["Authorization"] == "Bearer s3cret"
                assert r["eu"].last_headers["X-Region"] == "eu"
                assert not state(monitor, "us").up
                assert state(monitor, "us").last_error == (
                    "environment variable TEST_GEODNS_MISSING is not set (header value)"
                )
                assert r["us"].health_requests == 0  # never sent without its credentials

    monkeypatch.setenv("TEST_GEODNS_TOKEN", "s3cret")
    monkeypatch.delenv("TEST_GEODNS_MISSING", raising=False)
    run(main())


def self_signed(tmp_path: Path) -> tuple[ssl.SSLContext, Path]:
    """A server context for 127.0.0.1 with a self-signed certificate, and that cert's file."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "geodns test region")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file = tmp_path / "region.pem"
    key_file = tmp_path / "region.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return context, cert_file


def test_tls_is_verified_unless_told_otherwise(tmp_path: Path) -> None:
    context, cert_file = self_signed(tmp_path)

    async def main() -> None:
        region = await start_region("eu", ssl_context=context)
        try:
            url = region.health_url
            assert url.startswith("https://")
            zones = zoneset(
                {
                    "default": {"url": url, **FAST, "timeout": 0.5, "interval": 0.5},
                    "own-ca": {"url": url, **FAST, "ca_file": cert_file.name},
                    "unverified": {"url": url, **FAST, "verify_tls": False},
                },
                file=str(tmp_path / "example.com.yaml"),
            )
            async with monitoring(zones) as (monitor, _):
                default = state(monitor, "default")
                assert not default.up
                assert default.last_error is not None
                assert default.last_error.startswith("TLS: certificate verify failed")
                assert state(monitor, "own-ca").up
                assert state(monitor, "unverified").up
        finally:
            await region.close()

    run(main())


def test_control_endpoint_sets_the_mode() -> None:
    async def main() -> None:
        import aiohttp

        async with simulated("eu") as r, aiohttp.ClientSession() as session:
            base = r["eu"].url
            async with session.get(base + "/") as resp:
                assert await resp.json() == {"region": "eu", "version": "42"}
            body = {"mode": "failing", "utilization": 0.9, "version": "43"}
            async with session.post(base + "/control", json=body) as resp:
                assert resp.status == 200
                assert (await resp.json())["mode"] == "failing"
            assert (r["eu"].mode, r["eu"].utilization, r["eu"].version) == ("failing", 0.9, "43")
            async with session.get(r["eu"].health_url) as resp:
                assert resp.status == 500
            async with session.post(base + "/control", json={"mode": "sleepy"}) as resp:
                assert resp.status == 400
                assert "is not one of" in (await resp.json())["error"]

    run(main())


def test_a_probe_loop_that_lost_its_cancellation_still_ends(monkeypatch) -> None:
    # Python 3.11's asyncio.wait_for drops a cancellation that arrives as the awaited call
    # completes; a probe loop that went on made stop() wait for ever (a CI run hung so).
    # Such a probe is stood in for here by one that swallows the cancellation outright,
    # and is in flight nearly all the time, so that the cancellations land in it.
    from geodns.health import monitor as monitor_module

    real_probe = monitor_module.probe

    async def probe_that_loses_cancellation(*args: Any, **kwargs: Any) -> Any:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(0.5)
        return await real_probe(*args, **kwargs)

    monkeypatch.setattr(monitor_module, "probe", probe_that_loses_cancellation)

    async def main() -> None:
        async with simulated("a", "b") as r:
            zones = zoneset({"a": http(r["a"]), "b": http(r["b"])})
            async with monitoring(zones) as (monitor, _):
                await until(lambda: len(monitor.stats) == 2)
                # A region's check retired by new zones: its loop ends too.
                retired = monitor._tasks[(SERVICE, "b")]
                monitor.set_zones(zoneset({"a": http(r["a"]), "b": None}))
                await asyncio.wait([retired], timeout=5)
                assert retired.done()
            # ... and stop() returned: monitoring()'s exit awaited it.

    run(asyncio.wait_for(main(), 20))
