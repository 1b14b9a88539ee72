"""Measured latency varies per /24 (/48), below the routing class: the class path declines the
service's queries while measurements could order its regions, and the network path's answer
(and its ECS scope) stays true. Byte for byte against the reference path, and scopes that
never claim an address whose answer differs, under random measurements near the test
database's networks."""

from __future__ import annotations

import ipaddress
from types import MappingProxyType

from hypothesis import HealthCheck as Hc
from hypothesis import given, settings
from hypothesis import strategies as st

from geodns.geo.rum import Estimate, MeasuredLatency, RumSettings
from geodns.health.state import StateSnapshot
from geodns.server.answer import Answerer
from tests.unit.server.test_class_bytes import _check, queries, zones
from tests.unit.server.test_class_path import states
from tests.unit.server.test_ecs_scope_property import BASES_V4, BASES_V6, SERVICE, ask, database
from tests.unit.server.test_ecs_scope_property import ZONES as ZONES_FOR_SCOPES

__all__ = ["database", "zones"]

REGIONS = [r.name for r in SERVICE.regions]
rows = st.dictionaries(
    st.sampled_from(REGIONS),
    st.tuples(st.floats(1, 400), st.integers(2, 12)).map(lambda t: Estimate(t[0], t[1], 0, 1.0)),
    min_size=2,
)


def _net(base, offset: int) -> str:
    prefix = 24 if base.version == 4 else 48
    value = (int(base) + offset) % (1 << base.max_prefixlen)
    return str(ipaddress.ip_network((value, prefix), strict=False))


# Networks and clients among the test database's networks (a few /24s or /48s either side
# of their starts), so that measured /24s fall inside the classes' runs.
nets = st.one_of(
    st.tuples(st.sampled_from(BASES_V4), st.integers(-8, 8)).map(lambda t: _net(t[0], t[1] << 8)),
    st.tuples(st.sampled_from(BASES_V6), st.integers(0, 3)).map(lambda t: _net(t[0], t[1] << 80)),
)
near_v4 = st.tuples(st.sampled_from(BASES_V4), st.integers(-(1 << 11), 1 << 11), st.integers(8, 32))
near_v6 = st.tuples(st.sampled_from(BASES_V6), st.integers(0, (1 << 82) - 1), st.integers(16, 128))


@st.composite
def measured_states(draw: st.DrawFn) -> StateSnapshot:
    def frozen(d):
        return MappingProxyType({k: MappingProxyType(v) for k, v in d.items()})

    table = MeasuredLatency(
        1.0,
        RumSettings(min_samples=draw(st.integers(1, 6)), window=16, stabilize_ms=5),
        frozen(draw(st.dictionaries(nets, rows, max_size=6))),
        # Classes span countries and continents here: US and BR share one, JP and KR another.
        frozen(
            draw(st.dictionaries(st.sampled_from(["US", "BR", "JP", "KR", "GB"]), rows, min_size=1))
        ),
        frozen(draw(st.dictionaries(st.sampled_from(["NA", "SA", "AS", "EU"]), rows))),
    )
    return draw(states()).with_measured(table)


@settings(max_examples=120, deadline=None, suppress_health_check=[Hc.function_scoped_fixture])
@given(measured_states(), st.lists(st.tuples(near_v4, queries), min_size=1, max_size=8))
def test_ipv4_measured_answers_are_the_reference_bytes(zones, database, state, asked) -> None:
    _check(zones, database, state, asked)


@settings(max_examples=60, deadline=None, suppress_health_check=[Hc.function_scoped_fixture])
@given(measured_states(), st.lists(st.tuples(near_v6, queries), min_size=1, max_size=8))
def test_ipv6_measured_answers_are_the_reference_bytes(zones, database, state, asked) -> None:
    _check(zones, database, state, asked)


@settings(max_examples=120, deadline=None, suppress_health_check=[Hc.function_scoped_fixture])
@given(
    measured_states(),
    st.one_of(near_v4, near_v6),
    st.lists(st.integers(0, 1 << 40), min_size=4, max_size=8),
)
def test_measured_scopes_never_claim_another_answer(database, state, client, seeds) -> None:
    db, runs = database
    answerer = Answerer(ZONES_FOR_SCOPES, state=state, geoip=db)
    answerer.geo.set_scopes(db.file_key, runs)
    base, offset, source = client
    address = ipaddress.ip_address((int(base) + offset) % (1 << base.max_prefixlen))
    source = min(source, 64) if address.version == 6 else source
    unit = 24 if address.version == 4 else 48
    sent = ipaddress.ip_network((address, source), strict=False)
    claimed_answer, scope = ask(answerer, sent)
    claimed = ipaddress.ip_network((sent.network_address, scope), strict=False)
    size = max(claimed.prefixlen, unit)
    blocks = 1 << (size - claimed.prefixlen)
    for pick in {0, blocks - 1, *(s % blocks for s in seeds)}:
        start = int(claimed.network_address) + (pick << (claimed.max_prefixlen - size))
        inside = ipaddress.ip_network((start, size))
        got, _ = ask(answerer, inside)
        assert got == claimed_answer, (str(sent), f"scope /{scope}", str(inside))


def test_the_class_path_declines_only_while_measurements_can_order(zones, database) -> None:
    """A test of the comparisons above: with measurements for two regions the class path
    declines (the network path answers); with one region measured it answers as before."""
    db, runs = database
    dyn = next(d for d in Answerer(zones).geo.names.values() if d.kind == "service")
    us = int(ipaddress.ip_address("216.160.81.0"))
    for measured_regions, declined in ((["us-east-1"], False), (REGIONS[:2], True)):
        row = MappingProxyType({r: Estimate(10.0, 9, 0, 1.0) for r in measured_regions})
        table = MeasuredLatency(1.0, RumSettings(), continents=MappingProxyType({"EU": row}))
        answerer = Answerer(zones, state=StateSnapshot().with_measured(table), geoip=db)
        answerer.geo.set_scopes(db.file_key, runs)
        assert (answerer.geo.class_answer(dyn, 1, us, 4) is None) is declined
