"""Shedding and canary shares by bucket (the client's /24 or /56): through the whole answer
path, caches included, every bucket gets what route() decides for it, and the reply's scope
never claims more than the bucket while a hash decided."""

from __future__ import annotations

import ipaddress
import random

import pytest

from geodns.geo.geoip import GeoIPDatabase
from geodns.geo.locate import Client, locate
from geodns.health.state import RegionState, StateSnapshot
from geodns.routing.context import bucket, bucket_prefix
from geodns.routing.pipeline import route
from geodns.server.answer import Answerer
from geodns.server.geoanswer import latency_for
from tests.unit.server.test_ecs_scope_property import SERVICE, ZONES, ask, database

__all__ = ["database"]  # the module-scoped fixture, shared with the scope property test

SHEDDING = (
    StateSnapshot()
    .with_region(SERVICE.key, "ap-northeast-1", RegionState(utilization=0.84))
    .with_region(SERVICE.key, "us-east-1", RegionState(utilization=0.8))
)
# GeoIP networks much larger than a bucket: /16s and /8s of one record each, and /32s.
WIDE = ["202.214.0.0/16", "202.215.0.0/16", "14.0.0.0/8", "2001:480::/32", "2001:481::/32"]


def _expected(db: GeoIPDatabase, network: ipaddress._BaseNetwork) -> tuple[object, ...]:
    client = locate(db, network.network_address, network.prefixlen)
    decision = route(client, SERVICE, SHEDDING, latency_for(SERVICE))
    family = network.version
    addresses = sorted(
        f"{a}" for _, addrs in decision.select(family if family == 6 else 4) for a in addrs
    )
    return tuple(addresses), decision.by_network, client


@pytest.mark.parametrize("wide", WIDE)
def test_every_bucket_gets_its_own_decision(
    database: tuple[GeoIPDatabase, dict], wide: str
) -> None:
    db, runs = database
    answerer = Answerer(ZONES, state=SHEDDING, geoip=db)
    answerer.geo.set_scopes(db.file_key, runs)
    network = ipaddress.ip_network(wide)
    unit = 24 if network.version == 4 else 56
    rng = random.Random(wide)
    seen: set[tuple[str, ...]] = set()
    for _ in range(120):
        start = int(network.network_address) + (
            rng.randrange(1 << (unit - network.prefixlen)) << (network.max_prefixlen - unit)
        )
        sent = ipaddress.ip_network((start, unit))
        (_, got), scope = ask(answerer, sent, "AAAA" if network.version == 6 else "A")
        want, hashed, client = _expected(db, sent)
        assert tuple(sorted(r for r in got)) == want, (str(sent), bucket(client))
        if hashed:
            assert scope >= bucket_prefix(client), (str(sent), scope)
        seen.add(want)
    # The shedding band really splits these networks: a test that could not fail otherwise.
    assert len(seen) > 1, wide


def test_an_ipv4_mapped_client_is_bucketed_as_its_ipv4_address() -> None:
    mapped = ipaddress.IPv6Address("::ffff:202.214.7.9")
    v4 = ipaddress.IPv4Address("202.214.7.9")
    net6 = ipaddress.ip_network("::ffff:202.214.7.0/120")
    net4 = ipaddress.ip_network("202.214.7.0/24")
    assert bucket(Client(mapped, None, net6, None)) == bucket(Client(v4, None, net4, None))
    assert bucket(Client(v4, None, net4, None)) == "202.214.7.0/24"
    assert bucket_prefix(Client(mapped, None, net6, None)) == 120
    six = ipaddress.IPv6Address("2001:480:1:2345::1")
    assert bucket(Client(six, 56, ipaddress.ip_network("2001:480::/32"), None)) == (
        "2001:480:1:2300::/56"
    )
