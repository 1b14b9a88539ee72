"""ECS scopes never over-claim: whatever the source prefix, every /24 (or /48) inside the
network a reply claims gets that reply's answer (RFC 7871 7.2.1), through the whole
answer path: wire query in, wire reply out, with merged scopes."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

import dns.edns
import dns.message
import dns.rcode
import dns.rdatatype
import pytest
from hypothesis import HealthCheck as Hc
from hypothesis import given, settings
from hypothesis import strategies as st

from geodns.control.scopebuild import BuildRequest, ClassSpec, build
from geodns.geo.geoip import GeoIPDatabase
from geodns.geo.scopes import ScopeRuns
from geodns.routing.classes import class_fingerprint
from geodns.server.answer import UDP, Answerer, Peer
from geodns.server.geoanswer import latency_for
from geodns.zones.loader import load_zones
from tests.conftest import ROOT
from tests.geo_fixtures import _city_record, write_mmdb
from tests.unit.control.test_scopebuild import NETWORKS, STATES

ZONES = load_zones([ROOT / "zones"])
SERVICE = ZONES.services()[0]
# Where the test database's networks are, so that prefixes land among them and not only
# in empty space.
BASES_V4 = [ipaddress.ip_network(n).network_address for n in NETWORKS if ":" not in n]
BASES_V6 = [ipaddress.ip_network(n).network_address for n in NETWORKS if ":" in n]


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GeoIPDatabase, dict]]:
    records = {net: _city_record(*fields) for net, fields in NETWORKS.items()}
    path = write_mmdb(tmp_path_factory.mktemp("geoip") / "neighbours.mmdb", records)
    cache = tmp_path_factory.mktemp("scopes")
    table = latency_for(SERVICE)
    fp = class_fingerprint(SERVICE, table)
    with GeoIPDatabase(path) as db:
        files = build(
            BuildRequest(db.path, db.file_key, (ClassSpec(fp, SERVICE, table),), str(cache))
        )
        yield db, {fp: ScopeRuns.load(files[fp])}


def _answerers(database: tuple[GeoIPDatabase, dict]) -> list[Answerer]:
    db, runs = database
    out = []
    for state in STATES:
        answerer = Answerer(ZONES, state=state, geoip=db)
        answerer.geo.set_scopes(db.file_key, runs)
        out.append(answerer)
    return out


def ask(
    answerer: Answerer, network: ipaddress.IPv4Network | ipaddress.IPv6Network, qtype: str = "A"
) -> tuple[tuple[object, ...], int]:
    """(rcode and answer addresses, scope) for a query from `network` with ECS."""
    ecs = dns.edns.ECSOption(str(network.network_address), network.prefixlen)
    query = dns.message.make_query("inference.example.com", qtype, use_edns=0, options=[ecs])
    wire = answerer.answer(query.to_wire(), Peer("127.0.0.1", 5353, UDP))
    assert wire is not None
    reply = dns.message.from_wire(wire)
    answer = tuple(sorted(r.to_text() for rrset in reply.answer for r in rrset))
    (option,) = [o for o in reply.options if isinstance(o, dns.edns.ECSOption)]
    return (reply.rcode(), answer), option.scopelen


def _probe(
    database: tuple[GeoIPDatabase, dict],
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
    source: int,
    seeds: list[int],
) -> None:
    unit = 24 if address.version == 4 else 48
    sent = ipaddress.ip_network((address, source), strict=False)
    for answerer in _answerers(database):
        claimed_answer, scope = ask(answerer, sent)
        # The claim is about the address the query carried: the source-truncated one.
        claimed = ipaddress.ip_network((sent.network_address, scope), strict=False)
        size = max(claimed.prefixlen, unit)
        blocks = 1 << (size - claimed.prefixlen)
        picks = {0, blocks - 1, *(s % blocks for s in seeds)}
        for pick in picks:
            start = int(claimed.network_address) + (pick << (claimed.max_prefixlen - size))
            inside = ipaddress.ip_network((start, size))
            got, _ = ask(answerer, inside)
            assert got == claimed_answer, (str(sent), f"scope /{scope}", str(inside))


near = st.integers(-(1 << 20), 1 << 20)
seeds = st.lists(st.integers(0, 1 << 40), min_size=4, max_size=8)


@settings(max_examples=150, deadline=None, suppress_health_check=[Hc.function_scoped_fixture])
@given(st.sampled_from(BASES_V4), near, st.integers(1, 32), seeds)
def test_ipv4_scopes_never_claim_another_answer(
    database: tuple[GeoIPDatabase, dict], base, offset: int, source: int, picks: list[int]
) -> None:
    address = ipaddress.IPv4Address((int(base) + offset) % (1 << 32))
    _probe(database, address, source, picks)


@settings(max_examples=100, deadline=None, suppress_health_check=[Hc.function_scoped_fixture])
@given(st.sampled_from(BASES_V6), st.integers(0, (1 << 96) - 1), st.integers(1, 64), seeds)
def test_ipv6_scopes_never_claim_another_answer(
    database: tuple[GeoIPDatabase, dict], base, offset: int, source: int, picks: list[int]
) -> None:
    address = ipaddress.IPv6Address(int(base) + offset)
    _probe(database, address, source, picks)


@pytest.mark.parametrize(
    ("source", "inside"),
    [("81.2.0.0/16", "81.2.69.0/24"), ("81.0.0.0/8", "81.2.70.0/24")],
)
def test_a_short_source_gets_a_longer_scope(
    database: tuple[GeoIPDatabase, dict], source: str, inside: str
) -> None:
    """The case the issue reproduced: `scope = min(scope, source)` claimed the source."""
    answerer = _answerers(database)[0]
    wide, scope = ask(answerer, ipaddress.ip_network(source))
    assert scope > ipaddress.ip_network(source).prefixlen
    assert ask(answerer, ipaddress.ip_network(inside))[0] != wide


@pytest.mark.parametrize("qtype", ["TXT", "MX", "SRV", "CAA"])
def test_nodata_at_a_service_name_has_scope_zero(
    database: tuple[GeoIPDatabase, dict], qtype: str
) -> None:
    """RFC 7871 7.4: a NODATA that is the same for every client claims no network."""
    for answerer in _answerers(database):
        for subnet in ("81.2.69.0/24", "216.160.84.0/24", "202.214.0.0/24"):
            (rcode, answer), scope = ask(answerer, ipaddress.ip_network(subnet), qtype)
            assert (rcode, answer, scope) == (dns.rcode.NOERROR, (), 0)


def test_a_query_at_the_srv_name_for_addresses_has_scope_zero(
    database: tuple[GeoIPDatabase, dict],
) -> None:
    answerer = _answerers(database)[0]
    ecs = dns.edns.ECSOption("81.2.69.0", 24)
    query = dns.message.make_query("_inference._tcp.example.com", "A", use_edns=0, options=[ecs])
    reply = dns.message.from_wire(answerer.answer(query.to_wire(), Peer("::1", 53, UDP)))
    (option,) = reply.options
    assert reply.rcode() == dns.rcode.NOERROR and not reply.answer
    assert option.scopelen == 0


def test_the_srv_order_claims_a_true_scope(database: tuple[GeoIPDatabase, dict]) -> None:
    answerer = _answerers(database)[0]
    ecs = dns.edns.ECSOption("81.2.69.0", 24)
    query = dns.message.make_query("_inference._tcp.example.com", "SRV", use_edns=0, options=[ecs])
    reply = dns.message.from_wire(answerer.answer(query.to_wire(), Peer("::1", 53, UDP)))
    (option,) = reply.options
    assert reply.answer and 0 < option.scopelen <= 24


def test_a_zero_source_query_shares_no_scope_with_its_resolvers_network(
    database: tuple[GeoIPDatabase, dict],
) -> None:
    """ECS /0 from a resolver is answered for the resolver with scope 0; a client query
    from the same network afterwards must still claim that network's scope, not 0."""
    for first in ("zero", "subnet"):
        answerer = _answerers(database)[0]
        order = ["zero", "subnet"] if first == "zero" else ["subnet", "zero"]
        scopes = {}
        for kind in order:
            prefix = 0 if kind == "zero" else 24
            ecs = dns.edns.ECSOption("81.2.69.0" if prefix else "0.0.0.0", prefix)
            query = dns.message.make_query("inference.example.com", "A", use_edns=0, options=[ecs])
            wire = answerer.answer(query.to_wire(), Peer("81.2.69.10", 5353, UDP))
            (option,) = dns.message.from_wire(wire).options
            scopes[kind] = option.scopelen
        assert scopes["zero"] == 0
        assert scopes["subnet"] > 0
