"""Measured latency end to end: real geodns.client instances measure real (simulated) regions
and report to a real `geodns serve`, whose answers for the client's area follow the
measurements once there are enough and the difference passes the stabilize threshold; bad
reports are refused and counted.

The clients report for 24.5.6.0/24 and 24.5.7.0/24 (in California by the embedded GeoIP
database) as a trusted gateway does, since their own address is loopback, and resolve with
that ECS subnet: the latency table orders a US client us-east-1 31 ms, us-west-2 66 ms.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dns.asyncresolver
import dns.edns
import dns.message
import dns.rdatatype

from geodns.client import FailoverClient, RumReporter
from tests.conftest import ServerProcess, running_server
from tests.regions import regions_in_thread

SERVICE = "inference.example.com"
TOKEN = "rum-token-for-tests"
PLACES = {"us-east-1": (38.9, -77.0), "us-west-2": (45.8, -119.7)}


def zone_text(ports: dict[str, int]) -> str:
    regions = {
        name: {
            "addresses": ["127.0.0.1"],
            "port": port,
            "location": {"lat": PLACES[name][0], "lon": PLACES[name][1]},
        }
        for name, port in ports.items()
    }
    doc = {
        "zone": "example.com",
        "soa": {"mname": "ns1", "rname": "hostmaster"},
        "ns": ["ns1"],
        "records": {"ns1": {"A": "127.0.0.1"}},
        "services": {"inference": {"ttl": 1, "regions": regions}},
    }
    return json.dumps(doc)


@contextmanager
def rum_server(tmp_path: Path, ports: dict[str, int], *args: str) -> Iterator[ServerProcess]:
    zones = tmp_path / "zones"
    zones.mkdir(exist_ok=True)
    (zones / "example.com.yaml").write_text(zone_text(ports))
    token_file = tmp_path / "rum-token"
    token_file.write_text(TOKEN + "\n")
    flags = ["--rum-token-file", str(token_file), "--rum-publish-interval", "0.1", *args]
    with running_server(zones, *flags, listen=("127.0.0.1:0",)) as server:
        yield server


def metric(server: ServerProcess, name: str, result: str) -> float:
    assert server.admin_url is not None
    with urllib.request.urlopen(server.admin_url + "metrics", timeout=5) as reply:
        text = reply.read().decode()
    m = re.search(rf'^{name}{{result="{result}"}} (\S+)$', text, re.M)
    return float(m.group(1)) if m else 0.0


def explain(server: ServerProcess, client: str) -> dict:
    assert server.admin_url is not None
    url = f"{server.admin_url}api/explain?name={SERVICE}&client={client}"
    with urllib.request.urlopen(url, timeout=5) as reply:
        return json.loads(reply.read())


def first_by_srv(server: ServerProcess, subnet: str) -> str:
    """The first region of the SRV order a resolver gets for clients of `subnet`."""
    address, prefix = subnet.split("/")
    query = dns.message.make_query(
        "_inference._tcp.example.com",
        "SRV",
        use_edns=0,
        options=[dns.edns.ECSOption(address, int(prefix))],
    )
    reply = server.udp(query)
    (rrset,) = reply.answer
    best = min(rrset, key=lambda rr: rr.priority)
    return best.target.labels[0].decode()


def post(server: ServerProcess, body: bytes, token: str | None = TOKEN) -> tuple[int, dict]:
    assert server.admin_url is not None
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(server.admin_url + "api/rum", body, headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def wait_until(predicate, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def own_samples(server: ServerProcess, client: str) -> dict[str, int]:
    """The client's /24's own sample counts per region, as the published state has them."""
    rows = explain(server, client)["measured"]
    return {r["region"]: r["samples"] for r in rows if r["level"] == "network"}


def client_for(server: ServerProcess, subnet: str) -> FailoverClient:
    address, prefix = subnet.split("/")
    resolver = dns.asyncresolver.Resolver(configure=False)
    resolver.nameservers = ["127.0.0.1"]
    resolver.port = server.port
    resolver.use_edns(0, 0, 1232, options=[dns.edns.ECSOption(address, int(prefix))])
    assert server.admin_url is not None
    reporter = RumReporter(server.admin_url + "api/rum", TOKEN, client=subnet, interval=0.05)
    return FailoverClient(SERVICE, scheme="http", resolver=resolver, rum=reporter)


async def probe(client: FailoverClient, rounds: int) -> None:
    for _ in range(rounds):
        results = await client.probe("/")
        assert set(results.values()) == {"ok"}, results


def test_a_client_area_moves_to_the_region_measured_faster_after_enough_samples(
    tmp_path: Path,
) -> None:
    with regions_in_thread("us-east-1", "us-west-2") as regions:
        ports = {name: r.port for name, r in regions.items()}
        # Stabilize at 25 ms: loopback requests take about 1 ms, but a loaded machine can
        # stretch one to a few more, and noise is what the threshold must ignore.
        flags = (
            *("--rum-gateway", "127.0.0.0/8", "--rum-min-samples", "5", "--rum-rate", "50"),
            *("--rum-stabilize-ms", "25"),
        )
        with rum_server(tmp_path, ports, *flags) as server:
            area, other = "24.5.6.0/24", "24.5.7.0/24"
            assert first_by_srv(server, area) == "us-west-2"  # the table: California

            async def noise() -> None:
                # Both regions as fast (loopback, about 1 ms): measured, but within the
                # stabilize threshold, so the table's order stands.
                async with client_for(server, area) as client:
                    # Ten: the country's median must stay fast when four slow samples of
                    # the other /24 join it, even if a loaded machine slows one or two.
                    await probe(client, 10)

            asyncio.run(noise())
            wait_until(
                lambda: own_samples(server, "24.5.6.1") == {"us-west-2": 10, "us-east-1": 10}
            )
            body = explain(server, "24.5.6.1")
            assert body["steps"][-1]["reason"].startswith("measured from network 24.5.6.0/24")
            assert "order kept" in body["steps"][-1]["reason"]
            assert [r["source"] for r in body["latency"]] == ["measured", "measured"]
            assert first_by_srv(server, area) == "us-west-2"

            # us-west-2 now answers 80 ms late. Another /24 of the area measures it.
            regions["us-west-2"].mode = "slow"
            regions["us-west-2"].delay = 0.08

            async def slow(rounds: int) -> str | None:
                async with client_for(server, other) as client:
                    await probe(client, rounds)
                    response = await client.request("GET", "/")
                    return response.region

            # Four samples each: fewer than five, so the /24 is ordered by its country's
            # samples (both fast): no move yet.
            assert asyncio.run(slow(4)) == "us-west-2"
            wait_until(lambda: own_samples(server, "24.5.7.1") == {"us-west-2": 5, "us-east-1": 4})
            assert first_by_srv(server, other) == "us-west-2"
            body = explain(server, "24.5.7.1")
            assert "measured from country US" in body["steps"][-1]["reason"]

            # One more round: five samples of its own, us-west-2 slower by 80 ms and 95%.
            asyncio.run(slow(1))
            wait_until(lambda: first_by_srv(server, other) == "us-east-1")
            body = explain(server, "24.5.7.1")
            assert "moved us-east-1 ahead of us-west-2" in body["steps"][-1]["reason"]
            assert body["regions"] == ["us-east-1", "us-west-2"]
            assert body["scope"]["prefix"] == 24  # never more than the measured /24
            west = body["latency"][0]
            assert (west["region"], west["source"], west["area"]) == (
                "us-east-1",
                "measured",
                "network 24.5.7.0/24",
            )
            assert west["samples"] >= 5 and west["age_s"] < 60

            async def follows() -> str:
                # The client itself now goes to us-east-1 first, by the SRV order.
                async with client_for(server, other) as client:
                    return (await client.request("GET", "/")).region

            assert asyncio.run(follows()) == "us-east-1"
            # The first area keeps its order: its own samples said both are fast.
            assert first_by_srv(server, area) == "us-west-2"
            assert metric(server, "geodns_rum_reports_total", "accepted") >= 3


def test_bad_reports_are_refused_and_counted(tmp_path: Path) -> None:
    with rum_server(tmp_path, {"us-east-1": 9, "us-west-2": 10}, "--rum-rate", "0.01") as server:
        good = {"version": 1, "samples": [{"region": "us-east-1", "ttfb_ms": 5, "ok": True}]}
        good["samples"][0]["t"] = time.time()
        cases = [
            (json.dumps(good).encode(), None, 401, "unauthorized"),
            (json.dumps(good).encode(), "admin-or-wrong", 401, "unauthorized"),
            (b"{not json", TOKEN, 400, "malformed"),
            (b"[" + b" " * 70_000 + b"]", TOKEN, 413, "too_large"),
            (
                json.dumps({**good, "client": "24.5.6.0/24"}).encode(),
                TOKEN,
                403,
                "untrusted_client",
            ),
        ]
        for raw, token, status, reason in cases:
            got, answer = post(server, raw, token)
            assert got == status, (reason, answer)
            assert answer["error"]
        assert metric(server, "geodns_rum_reports_total", "unauthorized") == 2
        for reason in ("malformed", "too_large", "untrusted_client"):
            assert metric(server, "geodns_rum_reports_total", reason) == 1
        assert metric(server, "geodns_rum_reports_total", "accepted") == 0
        # The rate per reporting address: a burst of 20 (three taken above), then 0.01 a second.
        statuses = [post(server, json.dumps(good).encode())[0] for _ in range(18)]
        assert statuses == [202] * 17 + [429]
        assert metric(server, "geodns_rum_reports_total", "rate_limited") == 1
        assert metric(server, "geodns_rum_samples_total", "accepted") == 17


def test_without_a_rum_token_reports_are_refused(tmp_path: Path) -> None:
    zones = tmp_path / "zones"
    zones.mkdir()
    (zones / "example.com.yaml").write_text(zone_text({"us-east-1": 9, "us-west-2": 10}))
    with running_server(zones, listen=("127.0.0.1:0",)) as server:
        status, answer = post(server, b"{}")
        assert status == 403 and "--rum-token-file" in answer["error"]
        assert metric(server, "geodns_rum_reports_total", "off") == 1


def test_reporting_never_fails_or_blocks_the_callers_requests(tmp_path: Path) -> None:
    with regions_in_thread("us-east-1", "us-west-2") as regions:
        ports = {name: r.port for name, r in regions.items()}
        with rum_server(tmp_path, ports) as server:

            async def run() -> None:
                client = client_for(server, "24.5.6.0/24")
                # Nothing listens at this ingest URL: reports fail, requests do not.
                reporter = RumReporter("http://127.0.0.1:9/api/rum", TOKEN, interval=0.01, queue=4)
                client.rum = reporter
                for _ in range(10):
                    assert (await client.request("GET", "/")).status == 200
                deadline = time.monotonic() + 10
                while reporter.failures == 0 and time.monotonic() < deadline:
                    await asyncio.sleep(0.01)
                assert reporter.failures >= 1 and reporter.sent == 0
                assert reporter.pending <= 4  # bounded: the oldest samples went first
                await client.close()

            asyncio.run(run())
