"""The plain path for service names (PlainPath.untrusted: a query whose only EDNS
option is ECS, answered from its class straight from the query bytes) against the reference
path, byte for byte: an Answerer whose class path declines everything, so that every client
is located, routed and its scope widened as it was before classes existed. For random
client addresses of both families near the test database's networks, random source
prefixes, names (the service, its SRV name, two aliases of it, a static name), query types,
header bits, EDNS payloads and DO, and random region states (health, capacity inside the
shedding band, model versions), the replies are the same bytes."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

import dns.edns
import dns.message
import dns.rdatatype
import pytest
from hypothesis import HealthCheck as Hc
from hypothesis import given, settings
from hypothesis import strategies as st

from geodns.geo.geoip import GeoIPDatabase
from geodns.health.state import RegionState, StateSnapshot
from geodns.server.answer import TCP, UDP, Answerer, Peer
from geodns.zones.loader import load_zones
from geodns.zones.model import ZoneSet
from tests.conftest import ROOT
from tests.unit.server.test_class_path import states
from tests.unit.server.test_ecs_scope_property import BASES_V4, BASES_V6, SERVICE, database

__all__ = ["database"]

NAMES = [
    "inference.example.com",
    "_inference._tcp.example.com",
    "gpu.example.com",
    "gpu2.example.com",  # a second alias of the service: its own chain, its own answer
    "www.example.com",  # static: never the plain path's
]
QTYPES = ["A", "AAAA", "ANY", "TXT", "SRV", "MX", "CNAME"]


@pytest.fixture(scope="module")
def zones(tmp_path_factory: pytest.TempPathFactory) -> ZoneSet:
    text = (ROOT / "zones" / "example.com.yaml").read_text()
    text, added = re.subn(
        r"(?m)^  gpu: \{CNAME: inference\}.*$", r"\g<0>\n  gpu2: {CNAME: inference}", text
    )
    assert added == 1
    path: Path = tmp_path_factory.mktemp("zones") / "example.com.yaml"
    path.write_text(text)
    loaded = load_zones([path])
    assert loaded.services()[0].key == SERVICE.key
    return loaded


def _pair(
    zones: ZoneSet, database: tuple[GeoIPDatabase, dict], state: StateSnapshot
) -> tuple[Answerer, Answerer]:
    """(the answerer under test, the reference: its class path declines everything)."""
    db, runs = database
    out = []
    for _ in range(2):
        answerer = Answerer(zones, state=state, geoip=db)
        answerer.geo.set_scopes(db.file_key, runs)
        out.append(answerer)
    out[1].geo.class_answer = lambda *args: None  # type: ignore[method-assign]
    return out[0], out[1]


def _query(
    name: str,
    qtype: str,
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
    source: int,
    qid: int,
    flags: tuple[bool, bool, bool],
    payload: int,
    nsid: bool,
) -> bytes:
    rd, cd, do = flags
    network = ipaddress.ip_network((address, source), strict=False)
    options: list[dns.edns.Option] = [dns.edns.ECSOption(str(network.network_address), source, 0)]
    if nsid:
        options.append(dns.edns.GenericOption(dns.edns.NSID, b""))
    query = dns.message.make_query(
        name, qtype, use_edns=0, payload=payload, want_dnssec=do, options=options
    )
    query.id = qid
    query.flags = (dns.flags.RD if rd else 0) | (dns.flags.CD if cd else 0)
    return query.to_wire()


def _case(name: str, pattern: int) -> str:
    """`name` with its letters' case flipped by the bits of `pattern` (0x20 style)."""
    return "".join(
        c.upper() if c.isalpha() and pattern >> (i % 30) & 1 else c for i, c in enumerate(name)
    )


queries = st.tuples(
    st.sampled_from(NAMES),
    st.integers(0, (1 << 30) - 1),
    st.sampled_from(QTYPES),
    st.integers(0, 65535),
    st.tuples(st.booleans(), st.booleans(), st.booleans()),
    st.sampled_from([512, 600, 1232, 4096]),
    st.sampled_from([False, False, False, True]),
    st.sampled_from([UDP, UDP, TCP]),
)
v4_clients = st.tuples(
    st.sampled_from(BASES_V4), st.integers(-(1 << 22), 1 << 22), st.integers(1, 32)
)
v6_clients = st.tuples(
    st.sampled_from(BASES_V6), st.integers(0, (1 << 96) - 1), st.integers(1, 128)
)


def _check(zones, database, state, asked) -> int:
    """Ask both answerers everything in `asked`; the number the plain path answered."""
    fast, reference = _pair(zones, database, state)
    plain = 0
    for (base, offset, source), (name, case, qtype, qid, flags, payload, nsid, transport) in asked:
        bits = base.max_prefixlen
        address = ipaddress.ip_address((int(base) + offset) % (1 << bits))
        if bits == 128:
            address = ipaddress.IPv6Address(int(address))
        wire = _query(_case(name, case), qtype, address, source, qid, flags, payload, nsid)
        if fast._plain.untrusted(wire, transport) is not None:
            plain += 1
        peer = Peer("127.0.0.1", 5353, transport)
        got, want = fast.answer(wire, peer), reference.answer(wire, peer)
        assert got == want, (name, qtype, str(address), source)
        # And again: the second time may come from a cache, and must be the same.
        assert fast.answer(wire, peer) == want
    return plain


@settings(max_examples=150, deadline=None, suppress_health_check=[Hc.function_scoped_fixture])
@given(states(), st.lists(st.tuples(v4_clients, queries), min_size=1, max_size=8))
def test_ipv4_the_plain_path_sends_the_reference_bytes(zones, database, state, asked) -> None:
    _check(zones, database, state, asked)


@settings(max_examples=100, deadline=None, suppress_health_check=[Hc.function_scoped_fixture])
@given(states(), st.lists(st.tuples(v6_clients, queries), min_size=1, max_size=8))
def test_ipv6_the_plain_path_sends_the_reference_bytes(zones, database, state, asked) -> None:
    _check(zones, database, state, asked)


def test_the_plain_path_answers_most_service_queries(zones, database) -> None:
    """A test of the comparisons above: the plain path must actually answer, per class and
    per bucket while a region sheds, not leave everything to the full path."""
    shedding = StateSnapshot().with_region(SERVICE.key, "us-east-1", RegionState(utilization=0.8))
    asked = [
        (
            (ipaddress.ip_network(net).network_address, i << 8, 24),
            (name, i, qtype, i, (True, False, False), 1232, False, UDP),
        )
        for net in ("216.160.80.0/22", "14.0.0.0/8", "81.2.69.0/24")
        for i in range(0, 4 if not net.startswith("14.") else 200)
        for name in ("inference.example.com", "gpu2.example.com")
        for qtype in ("A", "AAAA")
    ]
    assert _check(zones, database, shedding, asked) > 0.9 * len(asked)


def test_two_aliases_of_one_service_get_their_own_chains(zones, database) -> None:
    """Decisions are shared between the names of a service, encoded answers are not: each
    alias's answer starts with its own CNAME, by class and by network alike."""
    db, runs = database
    for by_class in (True, False):
        answerer = Answerer(zones, geoip=db)
        answerer.geo.set_scopes(db.file_key, runs)
        if not by_class:
            answerer.geo.class_answer = lambda *args: None  # type: ignore[method-assign]
        for name in ("gpu.example.com", "gpu2.example.com", "gpu.example.com"):
            ecs = dns.edns.ECSOption("81.2.69.0", 24)
            query = dns.message.make_query(name, "A", use_edns=0, options=[ecs])
            wire = answerer.answer(query.to_wire(), Peer("127.0.0.1", 5353, UDP))
            reply = dns.message.from_wire(wire)
            assert reply.answer[0].name == dns.name.from_text(name)
            assert reply.answer[0].rdtype == dns.rdatatype.CNAME
