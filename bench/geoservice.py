"""What bench/geo.py asks and what every server must answer: the service as the zone file
defines it, the regions each client continent (or, with many subnets, each country) gets,
and the clients whose queries are compared and sent."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

import yaml

SERVICE = "inference"
SERVERS = ("geodns", "pdns", "gdnsd")
TITLES = {"geodns": "geodns", "pdns": "PowerDNS", "gdnsd": "gdnsd"}


# Which regions each client continent gets, in order: what geodns decides for the test
# countries with the shipped zone and latency table (`geodns explain inference.example.com
# ADDR --geoip-database FILE`); the comparison before the load checks that it still does.
# EU is the residency rule's only region. The other servers answer the first one.
CONTINENT_ORDER = {
    "EU": ("eu-west-1",),
    "NA": ("us-east-1", "eu-west-1", "ap-northeast-1"),
    "SA": ("us-east-1", "eu-west-1", "ap-northeast-1"),
    "AS": ("ap-northeast-1", "us-east-1", "eu-west-1"),
    "OC": ("ap-northeast-1", "us-east-1", "eu-west-1"),
    "AF": ("eu-west-1", "us-east-1", "ap-northeast-1"),
}


@dataclass(frozen=True)
class Client:
    label: str
    subnet: ipaddress.IPv4Network | ipaddress.IPv6Network | None  # None: no ECS at all
    continent: str | None  # in the test database

    @property
    def ecs_option(self) -> str:
        """dnsperf's -E value: option 8, FAMILY, SOURCE PREFIX, SCOPE 0, and only as many
        address octets as the prefix covers (RFC 7871 6: longer is FORMERR)."""
        assert self.subnet is not None
        prefix = self.subnet.prefixlen
        family = 1 if self.subnet.version == 4 else 2
        address = self.subnet.network_address.packed[: (prefix + 7) // 8]
        return f"8:{family:04x}{prefix:02x}00{address.hex()}"


def test_clients() -> tuple[list[Client], list[Client]]:
    """(load clients: one /24 per test country, IPv4; extra clients checked only)."""
    from tests.geo_fixtures import TEST_NETWORKS  # needs the test extras (mmdb-writer)

    load, extra = [], []
    for network, (country, continent, *_rest) in TEST_NETWORKS.items():
        net = ipaddress.ip_network(network)
        if country is None:
            continue
        if net.version == 4:
            subnet = net if net.prefixlen >= 24 else next(net.subnets(new_prefix=24))
            load.append(Client(country, subnet, continent))
        else:
            subnet = net if net.prefixlen >= 48 else next(net.subnets(new_prefix=48))
            extra.append(Client(f"{country} v6", subnet, continent))
    # 8.0.0.0/5 holds no record in the test database: every server's default.
    extra.append(Client("unlocated", ipaddress.ip_network("8.8.8.0/24"), None))
    extra.append(Client("no ECS", None, None))
    return load, extra


@dataclass(frozen=True)
class ServiceSpec:
    """The service as the zone file defines it: what the other servers must answer."""

    ttl: int
    addresses: dict[str, str]  # region -> IPv4 address
    default_order: tuple[str, ...]

    def region_of(self, address: str) -> str:
        for region, addr in self.addresses.items():
            if addr == address:
                return region
        return "?"


def read_service(zone: Path) -> tuple[str, ServiceSpec]:
    doc = yaml.safe_load(zone.read_text())
    service = doc["services"][SERVICE]
    addresses = {}
    for name, region in service["regions"].items():
        v4 = [a for a in region.get("addresses", []) if ipaddress.ip_address(a).version == 4]
        addresses[name] = v4[0]
    order = tuple(service.get("default_order") or addresses)
    return doc["zone"].rstrip("."), ServiceSpec(int(service.get("ttl", 30)), addresses, order)


def country_orders(
    spec: ServiceSpec, located: dict[str, str]
) -> tuple[dict[str, tuple[str, ...]], set[str]]:
    """What geodns orders for each country of `located` (country -> continent) with the
    shipped zone: EU -> eu-west-1 (the residency rule), else the regions by the latency
    table's country row, else its continent row (geodns.geo.latency.LatencyTable.covers),
    ties in the zone's region order. Countries neither row covers (geodns then orders by
    each network's distance, which a per-country map cannot copy) get their continent's
    order and are returned apart, as are anchored countries (the in-country rule corrects
    their row by each network's location: docs/latency-and-cost.md), which get their
    row's order."""
    from geodns.geo.latency import LatencyTable

    table = LatencyTable.default()
    regions = tuple(spec.addresses)
    out: dict[str, tuple[str, ...]] = {}
    by_distance = set()
    for country, continent in sorted(located.items()):
        if continent == "EU":
            out[country] = CONTINENT_ORDER["EU"]
            continue
        row = table.covers(country, continent, regions)
        if row is None:
            out[country] = CONTINENT_ORDER[continent]
            by_distance.add(country)
            continue
        key = country if row == "country" else None
        if key is not None and key in table.anchors:
            by_distance.add(country)
        out[country] = tuple(
            sorted(regions, key=lambda r: table.rtt(key, continent, r) or float("inf"))
        )
    return out, by_distance


def subnet_clients(subnets: list, sample: int, seed: int) -> list[Client]:
    """`sample` of the drawn subnets (bench/geoquery.py Subnet), picked with the seed."""
    import random

    picked = random.Random(seed).sample(range(len(subnets)), min(sample, len(subnets)))
    return [
        Client(f"{subnets[i].country} {i}", subnets[i].network, subnets[i].continent)
        for i in sorted(picked)
    ]
