"""Client classes: records of one class get one decision, whatever the state.

This is what makes a merged ECS scope true: the scope builder widens a client's scope over
addresses whose records are of its class, so if two records of one class could ever be
routed apart (outside capacity shedding and canary shares, which decisions flag), a
resolver would serve a wrong cached answer.
"""

from __future__ import annotations

import ipaddress
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from geodns.geo.geoip import GeoRecord
from geodns.geo.latency import LatencyTable
from geodns.geo.locate import Client
from geodns.health.state import Health, RegionState, ServiceVersions, StateSnapshot
from geodns.routing.classes import class_fingerprint, client_class, distance_order
from geodns.routing.pipeline import route
from geodns.zones.model import Region, VersionPolicy
from tests.unit.routing.routing_helpers import SERVICE

NOWHERE = Region("nowhere-1", ("192.0.2.99",))  # no location: always ordered last
# A fourth region, and one without a location, so that distance orders vary more.
WIDE = replace(
    SERVICE,
    regions=(*SERVICE.regions, Region("sa-east-1", ("192.0.2.40",), -23.5, -46.6), NOWHERE),
)
REGIONS = [r.name for r in WIDE.regions]
# A table whose rows leave regions out: orders fall back from country to continent to
# distance depending on which regions the earlier steps leave.
PARTIAL = LatencyTable(
    REGIONS,
    countries={
        "GB": {"eu-west-1": 10, "us-east-1": 80},
        "US": {n: 20.0 + i for i, n in enumerate(REGIONS)},
    },
    continents={"EU": {"eu-west-1": 15, "us-east-1": 85, "ap-northeast-1": 220}},
)
TABLES = {"default": LatencyTable.default(), "partial": PARTIAL, "none": None}

PLACES = [
    ("GB", "EU"),
    ("FR", "EU"),
    ("US", "NA"),
    ("CA", "NA"),
    ("JP", "AS"),
    ("BR", "SA"),
    ("ZA", "AF"),
    ("XK", None),
    (None, "EU"),
    (None, None),
]
# A coarse grid, so that many records share a distance order; 0/180 points sit exactly
# between regions now and then.
coordinates = st.one_of(
    st.none(),
    st.tuples(st.sampled_from(range(-60, 75, 15)), st.sampled_from(range(-180, 181, 30))),
)
records = st.one_of(
    st.none(),
    st.builds(
        lambda place, xy: GeoRecord(place[0], place[1], None, *(xy or (None, None))),
        st.sampled_from(PLACES),
        coordinates,
    ).filter(lambda r: r.country or r.continent or r.lat is not None),
)
region_states = st.builds(
    RegionState,
    st.sampled_from(list(Health)),
    st.sampled_from([None, 0.1, 0.5, 0.8, 0.95, 1.0]),  # 0.8: in the shedding band
    version=st.sampled_from([None, "41", "42"]),
)
snapshots = st.fixed_dictionaries({n: region_states for n in REGIONS}).map(lambda d: _snapshot(d))
policies = st.sampled_from(
    [
        VersionPolicy(),
        VersionPolicy(mode="any"),
        VersionPolicy(mode="pin", pin="42", when_none="nodata"),
        VersionPolicy(canary_share=0.5),
    ]
)


def _snapshot(regions: dict[str, RegionState]) -> StateSnapshot:
    snap = StateSnapshot()
    for name, region_state in regions.items():
        snap = snap.with_region(WIDE.key, name, region_state)
    approved = ServiceVersions(frozenset({"41"}), "42", frozenset({"41", "42"}))
    return snap.with_versions({WIDE.key: approved})


def _client(record: GeoRecord | None, n: int) -> Client:
    net = ipaddress.ip_network(f"{ipaddress.IPv4Address(n << 8)}/24")
    return Client(net.network_address, 24, net, record, True)


@settings(max_examples=600, deadline=None)
@given(
    st.lists(records, min_size=2, max_size=8),
    snapshots,
    st.sampled_from(sorted(TABLES)),
    policies,
    st.booleans(),
)
def test_records_of_one_class_get_one_decision(
    recs: list[GeoRecord | None],
    snap: StateSnapshot,
    table_name: str,
    policy: VersionPolicy,
    residency: bool,
) -> None:
    service = replace(WIDE, version=policy, residency=WIDE.residency if residency else ())
    table = TABLES[table_name]
    first: dict[object, tuple[object, ...]] = {}
    for i, record in enumerate(recs):
        decision = route(_client(record, 1000 + 7919 * i), service, snap, table)
        # Whether the network hash decides must not hang on the network itself: a client
        # the hash happened to keep is flagged as well as one it shed.
        answer = (decision.by_network, None)
        if not decision.by_network:
            answer = (False, (tuple(r.name for r in decision.regions), decision.outcome))
        seen = first.setdefault(client_class(record, service, table), answer)
        assert seen == answer, (record, client_class(record, service, table))


def test_by_network_says_when_the_network_hash_decides() -> None:
    record = GeoRecord("US", "NA", None, 40.0, -75.0)
    calm = _snapshot({n: RegionState(utilization=0.5) for n in REGIONS})
    assert not route(_client(record, 1), WIDE, calm, None).by_network
    for busy in (0.8, 0.9):
        shedding = calm.with_region(WIDE.key, "us-east-1", RegionState(utilization=busy))
        assert route(_client(record, 1), WIDE, shedding, None).by_network
    full = calm.with_region(WIDE.key, "us-east-1", RegionState(utilization=0.95))
    assert not route(_client(record, 1), WIDE, full, None).by_network
    on_new = _snapshot(
        {n: RegionState(version="42" if n == "us-east-1" else "41") for n in REGIONS}
    )
    canary = replace(WIDE, version=VersionPolicy(canary_share=0.3))
    assert route(_client(record, 1), canary, on_new, None).by_network
    assert not route(_client(record, 1), WIDE, on_new, None).by_network


def test_classes_separate_what_routing_separates() -> None:
    gb = GeoRecord("GB", "EU", None, 51.5, -0.1)
    de = GeoRecord("DE", "EU", None, 52.5, 13.4)
    us_east = GeoRecord("US", "NA", None, 40.7, -74.0)
    us_west = GeoRecord("US", "NA", None, 47.6, -122.3)
    table = TABLES["default"]
    # The shipped table has a row with every region of the example, anchored in Ohio: the
    # row corrected by the client's own distances decides, so Seattle (ap-northeast-1
    # before eu-west-1) and New York part, while New York and a place near it do not;
    # where a region is missing from the row (nowhere-1), distance comes back.
    assert client_class(us_east, SERVICE, table) != client_class(us_west, SERVICE, table)
    near_new_york = GeoRecord("US", "NA", None, 41.0, -73.0)
    assert client_class(us_east, SERVICE, table) == client_class(near_new_york, SERVICE, table)
    assert client_class(us_east, WIDE, table) != client_class(us_west, WIDE, table)
    # The EU rule leaves one region: nothing to order, so every EU country is one class.
    assert client_class(gb, SERVICE, table) == client_class(de, SERVICE, table)
    # Without it, rows order: GB's and DE's give one order, Japan's another; the US row
    # gives the default order, so US clients share the class of unlocated ones.
    open_eu = replace(SERVICE, residency=())
    jp = GeoRecord("JP", "AS", None, 35.7, 139.7)
    assert client_class(gb, open_eu, table) == client_class(de, open_eu, table)
    assert client_class(gb, open_eu, table) != client_class(jp, open_eu, table)
    assert client_class(us_east, open_eu, table) == client_class(None, open_eu, table)
    # Without a table, coordinates decide, and only through the order they give.
    assert client_class(us_east, WIDE, None) == client_class(
        GeoRecord("US", "NA", None, 41.0, -73.0), WIDE, None
    )
    assert client_class(us_east, WIDE, None) != client_class(us_west, WIDE, None)
    assert client_class(None, WIDE, None) == client_class(
        GeoRecord("XK", None, None, None, None), WIDE, None
    )


def test_distance_order_puts_regions_without_location_last() -> None:
    order = distance_order(WIDE.regions, 51.5, -0.1)
    assert WIDE.regions[order[0]].name == "eu-west-1"
    assert WIDE.regions[order[-1]] is NOWHERE


def test_fingerprint_follows_what_classes_read() -> None:
    table = TABLES["default"]
    base = class_fingerprint(WIDE, table)
    assert class_fingerprint(replace(WIDE, ttl=5, answers=2), table) == base
    moved = replace(WIDE, regions=(replace(WIDE.regions[0], lat=10.0), *WIDE.regions[1:]))
    assert class_fingerprint(moved, table) != base
    assert class_fingerprint(replace(WIDE, residency=()), table) != base
    backwards = replace(WIDE, default_order=tuple(reversed(WIDE.default_order)))
    assert class_fingerprint(backwards, table) != base
    assert class_fingerprint(WIDE, None) != base
    assert class_fingerprint(WIDE, PARTIAL) != base
