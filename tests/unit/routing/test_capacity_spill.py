"""Where shed clients go: the next region with room, in the client's own order; a region's
own clients stay with it whatever its room; with no room anywhere, the next region."""

from __future__ import annotations

import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st

from geodns.health.state import Health, RegionState, StateSnapshot
from geodns.routing import capacity
from geodns.routing.context import bucket, stable_fraction
from geodns.routing.pipeline import route
from tests.unit.routing.routing_helpers import KEY, SERVICE, client, state

NETS = [f"{ipaddress.IPv4Address((100 << 24) + (n << 8))}/24" for n in range(400)]


def first(country: str, net: str, snap: StateSnapshot) -> str:
    return route(client(country, net), SERVICE, snap).regions[0].name


def test_shed_clients_skip_regions_without_room() -> None:
    # A Seattle client's order by distance: us-east-1, eu-west-1, ap-northeast-1.
    assert first("US", NETS[0], StateSnapshot()) == "us-east-1"
    snap = state(
        us_east_1=RegionState(utilization=0.95, shed=0.5, accept=0.0),
        eu_west_1=RegionState(utilization=0.85, shed=0.0, accept=0.0),  # busy, keeps its own
        ap_northeast_1=RegionState(utilization=0.3, shed=0.0, accept=1.0),
    )
    got = [first("US", n, snap) for n in NETS]
    assert set(got) == {"us-east-1", "ap-northeast-1"}
    assert 0.4 < got.count("ap-northeast-1") / len(NETS) < 0.6
    # eu-west-1's own clients (Johannesburg's nearest) stay with it, room or not.
    assert {first("ZA", n, snap) for n in NETS} == {"eu-west-1"}


def test_with_no_room_anywhere_shed_clients_go_to_the_next_region() -> None:
    snap = state(
        us_east_1=RegionState(utilization=0.95, shed=0.5, accept=0.0),
        eu_west_1=RegionState(utilization=0.85, shed=0.0, accept=0.0),
        ap_northeast_1=RegionState(utilization=0.9, shed=0.0, accept=0.0),
    )
    assert {first("US", n, snap) for n in NETS} == {"us-east-1", "eu-west-1"}


def test_the_controllers_share_outranks_the_reading() -> None:
    st_ = RegionState(utilization=0.99, shed=0.25, accept=0.0)
    assert capacity.share(st_, SERVICE.capacity) == (0.25, 0.0)
    assert capacity.share(RegionState(utilization=0.99), SERVICE.capacity) == (1.0, 0.0)
    assert capacity.share(RegionState(utilization=0.5), SERVICE.capacity) == (0.0, 1.0)
    decision = route(client("US", NETS[0]), SERVICE, state(us_east_1=st_))
    assert decision.by_network


regions = st.builds(
    RegionState,
    st.sampled_from([Health.UP, Health.UP, Health.DOWN]),
    st.one_of(st.none(), st.floats(0, 1)),
    shed=st.one_of(st.none(), st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0])),
    accept=st.sampled_from([0.0, 0.5, 1.0]),
)


@settings(max_examples=300, deadline=None)
@given(
    st.fixed_dictionaries({r.name.replace("-", "_"): regions for r in SERVICE.regions}),
    st.sampled_from(NETS),
    st.sampled_from(["US", "JP", "AU", "BR"]),
)
def test_a_shed_client_goes_where_there_is_room_when_there_is_some(
    snaps: dict[str, RegionState], net: str, country: str
) -> None:
    snap = state(**snaps)
    c = client(country, net)
    network = bucket(c)
    decision = route(c, SERVICE, snap)
    up = [r.name for r in route(c, SERVICE, StateSnapshot()).regions if snap.get(KEY, r.name).up]
    if not up or not decision.regions:
        return

    def shares(name: str) -> tuple[float, float]:
        return capacity.share(snap.get(KEY, name), SERVICE.capacity)

    def sheds(name: str) -> bool:
        return stable_fraction(network, KEY, name) < shares(name)[0]

    def takes(name: str) -> bool:
        return stable_fraction(network, KEY, name, "accept") < shares(name)[1]

    if not sheds(up[0]) or all(shares(n)[0] >= 1 for n in up):
        return  # not shed from its own first region, or every region is full
    chosen = decision.regions[0].name
    if any(takes(n) and not sheds(n) for n in up):
        assert takes(chosen) and not sheds(chosen), decision.explain_lines()
    else:
        assert not sheds(chosen) or all(sheds(n) for n in up), decision.explain_lines()
