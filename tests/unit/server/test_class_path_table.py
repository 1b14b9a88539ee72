"""The class path against the reference path for a service whose order reads more than a
country: the in-country correction (the client's own location), a cost budget, client
networks and an ASN in residency rules and preferences. For random addresses among US
networks spread over the country, random source prefixes and random region states, the
class path gives the reference path's decision, signature and scope, or declines; and no
scope claims an address whose answer differs (RFC 7871 7.2.1)."""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck as Hc
from hypothesis import given, settings
from hypothesis import strategies as st

from geodns.control.scopebuild import BuildRequest, ClassSpec, build
from geodns.geo.geoip import GeoIPDatabase
from geodns.geo.scopes import ScopeRuns
from geodns.health.state import Health, RegionState, StateSnapshot
from geodns.routing.classes import class_fingerprint
from geodns.server.answer import UDP, Answerer, Peer
from geodns.server.geoanswer import SERVICE as KIND
from geodns.server.geoanswer import GeoAnswers, latency_for
from geodns.zones.loader import load_zones
from geodns.zones.model import ZoneSet
from tests.geo_fixtures import _city_record, write_mmdb
from tests.unit.server.test_class_bytes import _query

ZONE = """\
zone: example.com
soa: {mname: ns1, rname: hostmaster}
ns: [ns1]
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
      - clients: {networks: [24.0.5.0/25, 24.0.40.0/21]}
        regions: [eu-west-1]
        when_none: refuse
      - clients: {asn: AS64497}
        regions: [us-west-2]
      - clients: {continent: EU}
        regions: [eu-west-1]
    prefer:
      - clients: {networks: 24.0.9.0/24}
        order: [eu-west-1, us-east-1]
"""
NAMES = ["us-east-1", "us-east-2", "us-west-2", "eu-west-1"]
NAMES_ASKED = [
    ("inference.example.com", "A"),
    ("_inference._tcp.example.com", "SRV"),
    ("inference.example.com", "AAAA"),
]
BASE = int(ipaddress.IPv4Address("24.0.0.0"))


def _records() -> dict[str, dict]:
    """64 US /24s at 16 places (4 neighbouring /24s a place, so that runs span networks),
    Seattle for the reader's probe, and London."""
    rng = random.Random(14)
    places = [(rng.uniform(25.0, 49.0), rng.uniform(-124.0, -67.0)) for _ in range(16)]
    out = {
        "216.160.83.0/24": _city_record("US", "NA", "WA", 47.6, -122.3),
        "81.2.69.0/24": _city_record("GB", "EU", None, 51.5, -0.13),
    }
    for i in range(64):
        lat, lon = places[(i // 4) % 16] if i % 9 else places[rng.randrange(16)]
        out[f"{ipaddress.IPv4Address(BASE + (i << 10))}/22"] = _city_record(
            "US", "NA", None, lat, lon
        )
    return out


@pytest.fixture(scope="module")
def setup(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[GeoIPDatabase, ZoneSet, dict]]:
    root = tmp_path_factory.mktemp("table")
    asn = {"autonomous_system_organization": "Test"}
    write_mmdb(
        root / "asn.mmdb",
        {
            "24.0.16.0/20": {**asn, "autonomous_system_number": 64497},
            "24.0.32.0/20": {**asn, "autonomous_system_number": 64496},
            "24.0.48.0/22": {**asn, "autonomous_system_number": 64497},
        },
        "GeoLite2-ASN",
    )
    (root / "example.com.yaml").write_text(ZONE)
    zones = load_zones([root / "example.com.yaml"])
    service = zones.services()[0]
    table = latency_for(service)
    fp = class_fingerprint(service, table)
    path = write_mmdb(root / "city.mmdb", _records())
    with GeoIPDatabase(path) as db:
        files = build(
            BuildRequest(db.path, db.file_key, (ClassSpec(fp, service, table),), str(root))
        )
        yield db, zones, {fp: ScopeRuns.load(files[fp])}


healths = st.sampled_from([Health.UP, Health.UP, Health.UP, Health.DOWN])
loads = st.sampled_from([None, 0.5, 0.8, 0.97])


@st.composite
def states(draw: st.DrawFn) -> StateSnapshot:
    state = StateSnapshot()
    for name in NAMES:
        state = state.with_region(
            "inference.example.com", name, RegionState(draw(healths), draw(loads))
        )
    return state


def _answers(setup, state: StateSnapshot) -> GeoAnswers:
    db, zones, runs = setup
    answers = GeoAnswers(zones, state, db)
    answers.set_scopes(db.file_key, runs)
    return answers


def _reference(answers: GeoAnswers, dyn, address, source: int):
    return answers.resolve(dyn, 1, answers.locate(address, source, dyn.service))


@settings(max_examples=150, deadline=None, suppress_health_check=[Hc.function_scoped_fixture])
@given(
    states(),
    st.lists(st.tuples(st.integers(0, (1 << 16) - 1), st.integers(8, 32)), min_size=1, max_size=8),
)
def test_the_class_path_is_the_reference_path(setup, state, clients) -> None:
    answers = _answers(setup, state)
    dyn = next(d for d in answers.names.values() if d.kind == KIND)
    for offset, source in clients:
        sent = ipaddress.ip_network((BASE + offset, source), strict=False).network_address
        fast = answers.by_class(dyn, 1, int(sent), 4, source)
        slow = _reference(answers, dyn, sent, source)
        if fast is not None:
            assert fast.signature == slow.signature, (str(sent), source)
            assert fast.scope_prefix == slow.scope_prefix, (str(sent), source)
            assert fast.decision.regions == slow.decision.regions
        # Never over-claimed: addresses inside the claimed scope get the same answer.
        claimed = ipaddress.ip_network((sent, slow.scope_prefix), strict=False)
        rng = random.Random(offset)
        for _ in range(6):
            inside = claimed.network_address + rng.randrange(claimed.num_addresses)
            other = _reference(answers, dyn, inside, 32)
            if not slow.decision.by_network:
                assert other.signature == slow.signature, (str(sent), source, str(inside))


def test_overrides_are_declined_and_bound_the_scopes(setup) -> None:
    answers = _answers(setup, StateSnapshot())
    dyn = next(d for d in answers.names.values() if d.kind == KIND)

    def fast(text: str, source: int = 24):
        return answers.by_class(dyn, 1, int(ipaddress.IPv4Address(text)), 4, source)

    # Inside a named network, or of a listed ASN: the network path's.
    for text in ("24.0.5.0", "24.0.9.0", "24.0.20.0", "24.0.41.0", "24.0.49.0"):
        assert fast(text) is None, text
    # 24.0.5.128/25 is outside the rule's /25, in the same GeoIP /22: the class path
    # answers it, and claims no more than the /25 beside the rule's.
    beside = fast("24.0.5.128", 25)
    assert beside is not None and beside.scope_prefix == 25
    refused = _reference(answers, dyn, ipaddress.IPv4Address("24.0.5.0"), 24)
    assert refused.decision.rule is not None and refused.decision.rule.index == 0
    assert refused.scope_prefix == 25  # longer than the /24 the resolver sent
    # AS64497 (24.0.16.0/20) is pinned to us-west-2 by residency; its ASN network bounds
    # the scope.
    pinned = _reference(answers, dyn, ipaddress.IPv4Address("24.0.20.0"), 24)
    assert [r.name for r in pinned.decision.regions] == ["us-west-2"]
    assert pinned.scope_prefix >= 20
    # The preferred /24 puts eu-west-1 first whatever the distances say.
    preferred = _reference(answers, dyn, ipaddress.IPv4Address("24.0.9.0"), 24)
    assert preferred.decision.regions[0].name == "eu-west-1"
    order = next(s.reason for s in preferred.decision.steps if s.step == "order")
    assert "pinned by prefer 0 (networks 24.0.9.0/24)" in order
    # And the class path still answers most of the rest.
    decided = sum(fast(str(ipaddress.IPv4Address(BASE + (i << 8)))) is not None for i in range(256))
    assert decided > 150


@settings(max_examples=80, deadline=None, suppress_health_check=[Hc.function_scoped_fixture])
@given(
    states(),
    st.lists(
        st.tuples(st.integers(0, (1 << 16) - 1), st.integers(8, 32), st.sampled_from(NAMES_ASKED)),
        min_size=1,
        max_size=6,
    ),
)
def test_the_plain_path_sends_the_reference_bytes(setup, state, asked) -> None:
    """The same service through the Answerer, from query bytes: the plain path (which
    declines override addresses) against an Answerer whose class path declines all."""
    db, zones, runs = setup
    fast, reference = (Answerer(zones, state=state, geoip=db) for _ in range(2))
    for answerer in (fast, reference):
        answerer.geo.set_scopes(db.file_key, runs)
    reference.geo.class_answer = lambda *args: None  # type: ignore[method-assign]
    for offset, source, (name, qtype) in asked:
        sent = ipaddress.IPv4Address(BASE + offset)
        wire = _query(name, qtype, sent, source, 7, (True, False, False), 1232, False)
        peer = Peer("127.0.0.1", 5353, UDP)
        assert fast.answer(wire, peer) == reference.answer(wire, peer), (str(sent), source)
