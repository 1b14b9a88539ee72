"""Properties of route() over random clients, states and utilizations."""

from __future__ import annotations

import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st

from geodns.geo.latency import LatencyTable
from geodns.health.state import Health, RegionState, StateSnapshot
from geodns.routing.pipeline import route
from tests.unit.routing.routing_helpers import KEY, PLACES, SERVICE, busy, client, state

TABLE = LatencyTable.default()
REGIONS = [r.name for r in SERVICE.regions]

region_states = st.builds(
    RegionState,
    st.sampled_from(list(Health)),
    st.one_of(st.none(), st.floats(0, 1)),
)
snapshots = st.fixed_dictionaries({name: region_states for name in REGIONS}).map(
    lambda d: state(**{k.replace("-", "_"): v for k, v in d.items()})
)
networks = st.integers(1, 2**24 - 1).map(lambda n: f"{ipaddress.IPv4Address(n << 8)}/24")
countries = st.sampled_from([*PLACES, None])


@settings(max_examples=500, deadline=None)
@given(countries, networks, snapshots)
def test_invariants(country: str | None, network: str, snap: StateSnapshot) -> None:
    c = client(country, network)
    decision = route(c, SERVICE, snap, TABLE)
    assert decision == route(c, SERVICE, snap, TABLE)  # deterministic
    chosen = [r.name for r in decision.regions]
    if country is not None and PLACES[country][0] == "EU":
        # Residency is never violated: EU clients get eu-west-1 or nothing.
        assert set(chosen) <= {"eu-west-1"}
        if not snap.get(KEY, "eu-west-1").up:
            # The example zone fails closed with its "unavailable" endpoint.
            assert decision.outcome == "answer"
            assert decision.fallback == SERVICE.residency[0].when_none.addresses
        return
    up = [n for n in REGIONS if snap.get(KEY, n).up]
    if up:
        assert set(chosen) <= set(up), "an answer is healthy unless all are down"
        assert chosen, "some region is up, so some region is answered"
    else:
        # All down: fail open, and capacity may still drop the full ones.
        assert chosen and set(chosen) <= set(REGIONS)


def test_shedding_matches_the_watermarks() -> None:
    low, high = SERVICE.capacity.low, SERVICE.capacity.high
    for u in (0.78, 0.8, 0.85, 0.9):
        snap = state(us_east_1=busy(u))
        shed = 0
        total = 4000
        for n in range(total):
            net = f"{ipaddress.IPv4Address(((n * 7919 + 1) % 2**24) << 8)}/24"
            decision = route(client("US", net), SERVICE, snap, TABLE)
            shed += decision.regions[0].name != "us-east-1"
        expected = (u - low) / (high - low)
        assert abs(shed / total - expected) < 0.03, (u, shed / total, expected)
