"""Client overrides, the in-country rule and a cost budget through the real server: a
network and an ASN (a small ASN .mmdb written by the test) pin clients whatever GeoIP
says, with scopes longer than the source where the override ends inside it; dig sees it."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from tests.conftest import ServerProcess, require_tool, running_server, wait_for_scopes
from tests.e2e.test_geo import addresses, ask, scope
from tests.geo_fixtures import _city_record, write_mmdb

ZONE = """\
zone: example.com
soa: {mname: ns1, rname: hostmaster}
ns: [ns1]
records:
  ns1: {A: 192.0.2.53}
services:
  inference:
    asn_database: asn.mmdb
    cost: {within_ms: 20}
    regions:
      us-east-1: {addresses: [192.0.2.10], location: {lat: 38.9, lon: -77.0}, cost: 3}
      us-east-2: {addresses: [192.0.2.11], location: {lat: 40.0, lon: -83.0}, cost: 1}
      us-west-2: {addresses: [192.0.2.12], location: {lat: 45.8, lon: -119.7}, cost: 2}
      eu-west-1: {addresses: [192.0.2.20], location: {lat: 53.3, lon: -6.3}, cost: 1}
    residency:
      - clients: {networks: 81.2.69.0/25}   # a London office that must stay in the US
        regions: [us-east-1]
      - clients: {asn: AS64496}
        regions: [eu-west-1]
      - clients: {continent: EU}
        regions: [eu-west-1]
    prefer:
      - clients: {networks: 24.5.7.0/24}
        order: [us-east-1]
"""
US_EAST_1, US_EAST_2, US_WEST_2, EU_WEST_1 = (f"192.0.2.{n}" for n in (10, 11, 12, 20))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("overrides")
    zones = root / "zones"
    zones.mkdir()
    (zones / "example.com.yaml").write_text(ZONE)
    write_mmdb(
        zones / "asn.mmdb",
        {"216.160.83.0/25": {"autonomous_system_number": 64496}},
        "GeoLite2-ASN",
    )
    city = {
        "216.160.83.0/24": _city_record("US", "NA", "WA", 47.6, -122.3),  # Seattle
        "81.2.69.0/24": _city_record("GB", "EU", None, 51.5, -0.13),  # London
        "24.5.0.0/16": _city_record("US", "NA", "CA", 37.3, -121.8),  # San Jose
        "71.163.0.0/16": _city_record("US", "NA", "VA", 38.9, -77.0),  # Virginia
    }
    mmdb = write_mmdb(root / "city.mmdb", city)
    with running_server(
        zones, "--geoip-database", str(mmdb), scope_cache=str(root / "cache")
    ) as srv:
        wait_for_scopes(srv)
        yield srv


def test_the_in_country_rule_and_the_budget(server: ServerProcess) -> None:
    # San Jose: us-west-2 (35 ms) is more than 20 ms ahead of the cheaper us-east-2.
    reply = ask(server, "24.5.128.0/24")
    assert addresses(reply) == [US_WEST_2]
    # San Jose's /16 is one class; the preferred 24.5.7.0/24 inside it bounds the scope
    # to the /17 that does not reach it.
    assert scope(reply) == 17
    # Virginia: us-east-2 is 5 ms behind us-east-1 and costs a third: cost decides.
    assert addresses(ask(server, "71.163.0.0/24")) == [US_EAST_2]


def test_a_network_override_outranks_the_country_and_bounds_the_scope(
    server: ServerProcess,
) -> None:
    inside = ask(server, "81.2.69.0/24")  # the address 81.2.69.0 is in the /25
    assert addresses(inside) == [US_EAST_1]
    assert scope(inside) == 25  # longer than the source: the other half is answered apart
    outside = ask(server, "81.2.69.128/25")
    assert addresses(outside) == [EU_WEST_1]
    assert scope(outside) == 25
    # A preference: the /24 inside San Jose's /16 gets us-east-1 first; its neighbours'
    # scopes stop at its edge.
    assert addresses(ask(server, "24.5.7.0/24")) == [US_EAST_1]
    assert scope(ask(server, "24.5.6.0/24")) == 24


def test_an_asn_override(server: ServerProcess) -> None:
    seattle_as = ask(server, "216.160.83.0/24")  # AS64496 holds 216.160.83.0/25
    assert addresses(seattle_as) == [EU_WEST_1]
    assert scope(seattle_as) == 25
    rest = ask(server, "216.160.83.128/25")
    assert addresses(rest) == [US_WEST_2]
    assert scope(rest) == 25


def test_dig_sees_the_longer_scope(server: ServerProcess) -> None:
    dig = require_tool("dig")
    host, port = server.addr
    out = subprocess.run(
        [dig, f"@{host}", "-p", str(port), "+subnet=81.2.69.0/24", "inference.example.com"],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    ).stdout
    assert "CLIENT-SUBNET: 81.2.69.0/24/25" in out
    assert "192.0.2.10" in out
