"""geodns.client against the real `geodns serve` and real aiohttp regions, all on 127.0.0.1.

The client's source address is loopback, which geodns does not locate: it gets the
service's `default_order`, which is how these tests choose the order of the regions.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from geodns.client import AllRegionsFailed, BreakerConfig, FailoverClient, ResolutionError
from geodns.client.load import run_load
from geodns.demo.region import SimulatedRegion
from tests.conftest import ServerProcess, running_server
from tests.regions import simulated as regions
from tests.regions import until

SERVICE = "inference.example.com"
NAMES = ("us-east-1", "eu-west-1", "ap-northeast-1")
COOLDOWN = 0.3
FAST = BreakerConfig(failures=2, cooldown=COOLDOWN)


def zone_text(ports: dict[str, int], order: list[str], ttl: int = 30) -> str:
    """A zone whose service `inference` has these regions, all on 127.0.0.1, in this order."""
    regions = {
        name: {"addresses": ["127.0.0.1"], "port": port, "location": {"lat": 0, "lon": i}}
        for i, (name, port) in enumerate(ports.items())
    }
    doc = {
        "zone": "example.com",
        "soa": {"mname": "ns1", "rname": "hostmaster"},
        "ns": ["ns1"],
        "records": {"ns1": {"A": "127.0.0.1"}, "web": {"A": "127.0.0.1"}},
        "services": {
            "inference": {"ttl": ttl, "regions": regions, "default_order": order},
        },
    }
    return json.dumps(doc, indent=1)  # JSON is YAML


@contextlib.contextmanager
def geodns(
    tmp_path: Path, running: dict[str, SimulatedRegion], order: list[str] | None = None, **kw
) -> Iterator[ServerProcess]:
    zones = tmp_path / "zones"
    zones.mkdir(exist_ok=True)
    ports = {name: r.port for name, r in running.items()}
    (zones / "example.com.yaml").write_text(zone_text(ports, order or list(running), **kw))
    with running_server(zones, "--watch-interval", "0.2", listen=("127.0.0.1:0",)) as server:
        yield server


def client_for(server: ServerProcess, **kw) -> FailoverClient:
    options = {
        "nameservers": ["127.0.0.1"],
        "dns_port": server.port,
        "scheme": "http",
        "breaker": FAST,
        "request_timeout": 1.0,
        **kw,
    }
    return FailoverClient(SERVICE, **options)


def srv_queries(server: ServerProcess) -> int:
    """SRV queries the server has answered, from its /metrics."""
    assert server.admin_url is not None
    with urllib.request.urlopen(server.admin_url + "metrics", timeout=5) as reply:
        text = reply.read().decode()
    return int(
        sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("geodns_queries_total{") and 'qtype="SRV"' in line
        )
    )


def test_requests_go_to_the_first_region_in_srv_order(tmp_path: Path) -> None:
    async def main() -> None:
        async with regions(*NAMES) as running:
            with geodns(tmp_path, running, ["eu-west-1", "us-east-1", "ap-northeast-1"]) as srv:
                async with client_for(srv) as client:
                    endpoints = await client.endpoints()
                    assert [e.region for e in endpoints] == [
                        "eu-west-1",
                        "us-east-1",
                        "ap-northeast-1",
                    ]
                    # Each region's own SRV port, the target's address.
                    assert [e.port for e in endpoints] == [
                        running[e.region].port for e in endpoints
                    ]
                    assert endpoints[0].target == "eu-west-1.inference.example.com"
                    response = await client.request("GET", "/")
                    assert response.status == 200
                    assert response.json()["region"] == "eu-west-1"
                    assert response.region == "eu-west-1"
                    assert response.url == f"http://127.0.0.1:{running['eu-west-1'].port}/"
                    choice = client.last_choice
                    assert choice is not None and choice.region == "eu-west-1"
                    assert choice.reason == "eu-west-1: first in SRV order"
                    assert not choice.stale
                    assert {s.state for s in client.breakers().values()} == {"closed"}

    asyncio.run(main())


def test_killed_region_fails_over_at_once_and_its_breaker_opens(tmp_path: Path) -> None:
    async def main() -> None:
        async with regions(*NAMES) as running:
            with geodns(tmp_path, running) as srv:
                async with client_for(srv) as client:
                    assert (await client.request("GET", "/")).region == "us-east-1"
                    await running["us-east-1"].close()
                    # failures=2: the next two requests try us-east-1 first, each is
                    # retried on eu-west-1 at once; none fails for the caller.
                    for n in (1, 2):
                        response = await client.request("GET", "/")
                        assert response.status == 200
                        assert response.region == "eu-west-1"
                        assert response.choice.attempts[0][0] == "us-east-1"
                        assert "connection refused" in response.choice.attempts[0][1]
                        assert client.breakers()["us-east-1"].failures == n
                    state = client.breakers()["us-east-1"]
                    assert state.state == "open"
                    assert state.last_error == "connection refused"
                    # Open: us-east-1 is skipped without being tried.
                    response = await client.request("GET", "/")
                    assert response.region == "eu-west-1"
                    assert response.choice.reason == (
                        "us-east-1 skipped: circuit open (2 failures: connection refused); "
                        "eu-west-1: next in SRV order"
                    )

    asyncio.run(main())


def test_failing_region_half_open_probe_returns_when_healed(tmp_path: Path) -> None:
    async def main() -> None:
        async with regions(*NAMES) as running:
            first = running["us-east-1"]
            with geodns(tmp_path, running) as srv:
                async with client_for(srv) as client:
                    assert (await client.request("GET", "/")).region == "us-east-1"
                    first.mode = "failing"  # HTTP 500
                    for _ in range(2):
                        assert (await client.request("GET", "/")).region == "eu-west-1"
                    assert client.breakers()["us-east-1"].state == "open"
                    assert client.breakers()["us-east-1"].last_error == "HTTP 500"
                    # Still failing after the cool-down: the probe fails, it opens again.
                    await until(lambda: client.breakers()["us-east-1"].state == "half-open")
                    response = await client.request("GET", "/")
                    assert response.region == "eu-west-1"
                    assert response.choice.attempts == (("us-east-1", "failed: HTTP 500"),)
                    assert client.breakers()["us-east-1"].state == "open"
                    # Healed: the next probe after the cool-down closes it again.
                    first.mode = "healthy"
                    assert (await client.request("GET", "/")).region == "eu-west-1"
                    await until(lambda: client.breakers()["us-east-1"].state == "half-open")
                    response = await client.request("GET", "/")
                    assert response.region == "us-east-1"
                    assert response.choice.reason == (
                        f"us-east-1: half-open probe after a {COOLDOWN:g} s cool-down"
                    )
                    assert client.breakers()["us-east-1"].state == "closed"
                    assert client.breakers()["us-east-1"].failures == 0
                    assert (await client.request("GET", "/")).choice.reason == (
                        "us-east-1: first in SRV order"
                    )

    asyncio.run(main())


def test_hanging_region_times_out_once_then_is_skipped(tmp_path: Path) -> None:
    async def main() -> None:
        async with regions(*NAMES) as running:
            with geodns(tmp_path, running) as srv:
                async with client_for(srv, request_timeout=0.3) as client:
                    assert (await client.request("GET", "/")).region == "us-east-1"
                    running["us-east-1"].mode = "hanging"
                    began = time.monotonic()
                    response = await client.request("GET", "/")
                    took = time.monotonic() - began
                    assert response.region == "eu-west-1"
                    assert response.choice.attempts == (
                        ("us-east-1", "failed: timed out after 0.3 s"),
                    )
                    assert 0.3 <= took < 3.0
                    # One timeout opens the breaker (open_on_timeout), so no more waiting.
                    assert client.breakers()["us-east-1"].state == "open"
                    began = time.monotonic()
                    assert (await client.request("GET", "/")).region == "eu-west-1"
                    assert time.monotonic() - began < 0.3

    asyncio.run(main())


def test_every_region_down_raises_with_each_region_s_error(tmp_path: Path) -> None:
    async def main() -> None:
        async with regions(*NAMES) as running:
            with geodns(tmp_path, running) as srv:
                async with client_for(srv) as client:
                    await client.request("GET", "/")
                    running["us-east-1"].mode = "failing"
                    running["eu-west-1"].mode = "lying"  # GET / answers 503
                    await running["ap-northeast-1"].close()
                    with pytest.raises(AllRegionsFailed) as raised:
                        await client.request("GET", "/")
                    assert raised.value.attempts == (
                        ("us-east-1", "failed: HTTP 500"),
                        ("eu-west-1", "failed: HTTP 503"),
                        ("ap-northeast-1", "failed: connection refused"),
                    )
                    assert str(raised.value) == (
                        "every region of inference.example.com failed: "
                        "us-east-1: failed: HTTP 500; eu-west-1: failed: HTTP 503; "
                        "ap-northeast-1: failed: connection refused"
                    )
                    # Once every breaker is open, each region is still tried once (fail open),
                    # so a region that comes back answers at once.
                    with pytest.raises(AllRegionsFailed):
                        await client.request("GET", "/")
                    states = client.breakers()
                    assert {s.state for s in states.values()} == {"open"}
                    running["eu-west-1"].mode = "healthy"
                    response = await client.request("GET", "/")
                    assert response.region == "eu-west-1"
                    assert "tried despite its open circuit" in response.choice.reason
                    assert client.breakers()["eu-west-1"].state == "closed"

    asyncio.run(main())


def test_ttl_is_honoured_and_a_new_order_is_picked_up_after_it(tmp_path: Path) -> None:
    async def main() -> None:
        async with regions(*NAMES) as running:
            with geodns(tmp_path, running, ttl=1) as srv:
                async with client_for(srv) as client:
                    resolution = await client.resolve()
                    assert resolution.ttl == 1
                    assert resolution.source == "SRV"
                    before = srv_queries(srv)
                    began = time.monotonic()
                    sent = 0
                    while time.monotonic() - began < 0.7:  # within the TTL
                        await client.request("GET", "/")
                        sent += 1
                    assert sent > 10
                    assert client.resolve_count == 1
                    assert srv_queries(srv) == before
                    # Past the TTL, the next request resolves again, once.
                    await asyncio.sleep(1.0 - (time.monotonic() - began) + 0.05)
                    await client.request("GET", "/")
                    await client.request("GET", "/")
                    assert client.resolve_count == 2
                    assert srv_queries(srv) == before + 1
                    # The zone changes its order: the client follows once the TTL has passed.
                    zone = tmp_path / "zones" / "example.com.yaml"
                    ports = {name: r.port for name, r in running.items()}
                    new_order = ["ap-northeast-1", "us-east-1", "eu-west-1"]
                    zone.write_text(zone_text(ports, new_order, ttl=1))
                    os.utime(zone, (time.time() + 5, time.time() + 5))
                    deadline = time.monotonic() + 10
                    while (await client.request("GET", "/")).region != "ap-northeast-1":
                        assert time.monotonic() < deadline, "new order not picked up"
                        await asyncio.sleep(0.05)
                    assert client.last_choice is not None
                    assert client.last_choice.reason == "ap-northeast-1: first in SRV order"

    asyncio.run(main())


def test_dns_down_keeps_the_last_list_and_says_so(tmp_path: Path) -> None:
    async def main() -> None:
        async with regions(*NAMES) as running:
            with geodns(tmp_path, running, ttl=1) as srv:
                client = client_for(srv, dns_timeout=0.3, dns_retry=0.5)
                assert (await client.request("GET", "/")).region == "us-east-1"
            # The server has stopped.
            async with client:
                with pytest.raises(ResolutionError):
                    await client.resolve()
                await asyncio.sleep(1.05)
                response = await client.request("GET", "/")
                assert response.region == "us-east-1"
                assert response.choice.stale
                assert "stale list: re-resolving failed" in response.choice.reason
                assert client.resolution_error is not None
                # Failover still works on the last known list.
                await running["us-east-1"].close()
                assert (await client.request("GET", "/")).region == "eu-west-1"

    asyncio.run(main())


def test_no_srv_rrset_falls_back_to_plain_addresses(tmp_path: Path) -> None:
    async def main() -> None:
        async with regions("web") as running:
            with geodns(tmp_path, {**running}) as srv:
                web = running["web"]
                async with FailoverClient(
                    "web.example.com",
                    nameservers=["127.0.0.1"],
                    dns_port=srv.port,
                    scheme="http",
                    default_port=web.port,
                ) as client:
                    response = await client.request("GET", "/")
                    assert response.json()["region"] == "web"
                    assert response.region == "127.0.0.1"
                    assert response.choice.reason == "127.0.0.1: first in A/AAAA order"
                    assert (await client.resolve()).source == "A/AAAA"
                async with FailoverClient(
                    "nosuch.example.com", nameservers=["127.0.0.1"], dns_port=srv.port
                ) as client:
                    with pytest.raises(ResolutionError, match="NXDOMAIN"):
                        await client.request("GET", "/")

    asyncio.run(main())


@pytest.mark.parametrize("how", ["killed", "failing", "hanging"])
def test_failover_under_steady_load(tmp_path: Path, how: str) -> None:
    """The figures for docs/client.md: run with -s to see them."""
    rate, duration, fail_at, timeout = 50.0, 3.0, 1.0, 0.5

    async def main() -> None:
        async with regions(*NAMES) as running:
            with geodns(tmp_path, running) as srv:
                breaker = BreakerConfig(cooldown=5.0)
                async with client_for(srv, breaker=breaker, request_timeout=timeout) as client:
                    await client.resolve()

                    async def fail_later() -> None:
                        await asyncio.sleep(fail_at)
                        if how == "killed":
                            await running["us-east-1"].close()
                        else:
                            running["us-east-1"].mode = how

                    failer = asyncio.create_task(fail_later())
                    report = await run_load(client, duration, rate)
                    await failer
        print(f"\n{how} region, {rate:g} requests/s, request_timeout {timeout:g} s:")
        print(report.summary())
        assert report.failed == 0
        switches = report.switches()
        assert [(s.from_region, s.to_region) for s in switches] == [("us-east-1", "eu-west-1")]
        # The bar: failover under a second (measured: a few ms, or the timeout).
        assert switches[0].took < (3.0 if how == "hanging" else 1.0)
        assert report.by_region()["eu-west-1"] > 0
        if how == "hanging":
            # Every request sent while the first ones hang waits out its timeout, then is
            # retried; the first timeout opens the breaker, and later ones go straight on.
            assert switches[0].took >= timeout
            assert report.retried <= timeout * rate * 2
        else:
            assert switches[0].retried == 1  # the request that met the failure, retried at once
            assert report.retried == 2  # failures=2: two requests retried, then it is skipped

    asyncio.run(main())
