"""Residency never leaks: over random rules, fail-closed modes, clients and states, a client a
rule holds is answered only from that rule's regions or its fail-closed addresses, down to
the addresses in the encoded answer."""

from __future__ import annotations

import ipaddress
from dataclasses import replace

import dns.rdatatype
from hypothesis import given, settings
from hypothesis import strategies as st

from geodns.geo.latency import LatencyTable
from geodns.health.state import Health, RegionState, StateSnapshot
from geodns.routing.pipeline import route
from geodns.server.geoanswer import SERVICE as SERVICE_KIND
from geodns.server.geoanswer import SRV, DynamicName, GeoAnswers
from geodns.zones.model import ClientMatch, FailClosed, ResidencyRule, ZoneSet
from tests.unit.routing.routing_helpers import PLACES, SERVICE, ZONE, client

TABLE = LatencyTable.default()
REGIONS = [r.name for r in SERVICE.regions]
UNAVAILABLE = {"refuse": (), "servfail": (), "nodata": (), "answer": ("192.0.2.99", "2001:db8::99")}

fail_modes = st.sampled_from(sorted(UNAVAILABLE)).map(lambda m: FailClosed(m, UNAVAILABLE[m]))


@st.composite
def rules(draw: st.DrawFn) -> tuple[ResidencyRule, ...]:
    """Up to three rules over disjoint sets of countries, one may hold unlocated clients."""
    countries = list(PLACES)
    out = []
    unlocated_taken = False
    for index in range(draw(st.integers(0, 3))):
        if not countries:
            break
        held = draw(st.sets(st.sampled_from(countries), min_size=1, max_size=3))
        countries = [c for c in countries if c not in held]
        unlocated = not unlocated_taken and draw(st.booleans())
        unlocated_taken |= unlocated
        regions = draw(st.sets(st.sampled_from(REGIONS), min_size=1))
        match = ClientMatch(frozenset(), frozenset(held), ",".join(sorted(held)), unlocated)
        out.append(
            ResidencyRule(match, tuple(sorted(regions)), draw(fail_modes), min_old=1, index=index)
        )
    return tuple(out)


region_states = st.builds(
    RegionState, st.sampled_from(list(Health)), st.one_of(st.none(), st.floats(0, 1))
)
snapshots = st.fixed_dictionaries({name: region_states for name in REGIONS}).map(
    lambda d: _snapshot(d)
)
networks = st.integers(1, 2**24 - 1).map(lambda n: f"{ipaddress.IPv4Address(n << 8)}/24")


def _snapshot(states: dict[str, RegionState]) -> StateSnapshot:
    snap = StateSnapshot()
    for name, region_state in states.items():
        snap = snap.with_region(SERVICE.key, name, region_state)
    return snap


@settings(max_examples=600, deadline=None)
@given(
    rules(),
    st.one_of(st.none(), fail_modes),
    st.sampled_from([*PLACES, None]),
    networks,
    snapshots,
)
def test_a_client_a_rule_holds_never_leaves_its_regions(
    residency: tuple[ResidencyRule, ...],
    unlocated: FailClosed | None,
    country: str | None,
    network: str,
    snap: StateSnapshot,
) -> None:
    if any(r.clients.unlocated for r in residency):
        unlocated = None  # the loader refuses both (zones/services.py)
    service = replace(SERVICE, residency=residency, unlocated=unlocated)
    c = client(country, network)
    decision = route(c, service, snap, TABLE)
    rule = next(
        (r for r in residency if r.clients.matches(country, c.record and c.record.continent)), None
    )
    if rule is None and country is None and unlocated is not None:
        allowed_regions: set[str] = set()
        fallback = set(unlocated.addresses)
    elif rule is None:
        return  # no rule: any region may answer (the other property tests cover it)
    else:
        allowed_regions = set(rule.regions)
        fallback = set(rule.when_none.addresses)
        assert decision.rule == rule
    assert {r.name for r in decision.regions} <= allowed_regions
    assert set(decision.fallback) <= fallback
    if not decision.regions:
        assert decision.outcome is not None  # failing closed, never open

    # Down to the wire: the addresses the encoded answers carry.
    zone = replace(ZONE, services={service.name: service})
    geo = GeoAnswers(ZoneSet({zone.origin: zone}), snap)
    allowed_addresses = {
        a for r in service.regions if r.name in allowed_regions for a in r.addresses
    }
    for kind, qtype in ((SERVICE_KIND, "A"), (SERVICE_KIND, "AAAA"), (SRV, "SRV")):
        result = geo.resolve(DynamicName(zone, service, kind), dns.rdatatype.from_text(qtype), c)
        res = geo.resolution(result)
        for rrset in res.answer:
            for rdata in rrset:
                if qtype == "SRV":
                    target = rdata.target.labels[0].decode() if rdata.target.labels else ""
                    assert target in allowed_regions or str(rdata.target) == "."
                else:
                    assert rdata.address in allowed_addresses | fallback
