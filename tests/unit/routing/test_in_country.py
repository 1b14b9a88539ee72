"""The latency table inside large countries: an anchored row's figures are corrected by
the client's own distance to each region, so that a California client is ordered from
California, not from the row's anchor in Ohio."""

from __future__ import annotations

import ipaddress
import random
from dataclasses import replace
from pathlib import Path

import dns.name
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geodns.control.scopebuild import record_classes, record_features
from geodns.geo.geoip import GeoIPDatabase, GeoRecord
from geodns.geo.latency import LatencyTable
from geodns.geo.locate import Client, locate
from geodns.health.state import ALL_UP
from geodns.routing.classes import client_class
from geodns.routing.estimate import great_circle_km
from geodns.routing.pipeline import route
from geodns.zones.model import Region, Service
from tests.geo_fixtures import _city_record, write_mmdb
from tests.unit.routing.test_classes import PARTIAL, WIDE, records, snapshots
from tests.unit.routing.test_classes import _client as class_client

TABLE = LatencyTable.default()
US_EAST_1 = Region("us-east-1", ("192.0.2.10",), 38.9, -77.0)
US_EAST_2 = Region("us-east-2", ("192.0.2.11",), 40.0, -83.0)
US_WEST_2 = Region("us-west-2", ("192.0.2.12",), 45.8, -119.7)
EU_WEST_1 = Region("eu-west-1", ("192.0.2.20",), 53.3, -6.3)
US = Service(
    dns.name.from_text("inference.example.com"),
    30,
    (US_EAST_1, US_EAST_2, US_WEST_2, EU_WEST_1),
)
CALIFORNIA = GeoRecord("US", "NA", "CA", 37.3, -121.8)


def _client(record: GeoRecord | None, network: str = "24.5.6.0/24") -> Client:
    net = ipaddress.ip_network(network)
    return Client(net.network_address, 24, net, record, True)


def _order(record: GeoRecord, service: Service = US) -> list[str]:
    return [r.name for r in route(_client(record), service, ALL_UP, TABLE).regions]


def test_a_california_network_is_ordered_from_california() -> None:
    decision = route(_client(CALIFORNIA), US, ALL_UP, TABLE)
    assert [r.name for r in decision.regions] == [
        "us-west-2",
        "us-east-2",
        "us-east-1",
        "eu-west-1",
    ]
    (order,) = [s for s in decision.steps if s.step == "order"]
    # 66 ms at the anchor, 31 ms nearer; us-east-1 31 ms at the anchor, 50 ms farther.
    assert order.reason == (
        "by latency from US at (37.3, -121.8): us-west-2 35 ms, us-east-2 70.3 ms,"
        " us-east-1 81.3 ms, eu-west-1 131.8 ms"
    )


def test_at_the_anchor_the_row_is_the_measured_figures() -> None:
    ohio = GeoRecord("US", "NA", None, 40.0, -83.0)
    (order,) = [s for s in route(_client(ohio), US, ALL_UP, TABLE).steps if s.step == "order"]
    assert order.reason.endswith(
        "us-east-2 20 ms, us-east-1 31 ms, us-west-2 66 ms, eu-west-1 95 ms"
    )


def test_without_a_location_or_an_anchor_the_row_is_flat() -> None:
    assert _order(GeoRecord("US", "NA", None, None, None)) == [
        "us-east-2",
        "us-east-1",
        "us-west-2",
        "eu-west-1",
    ]
    # GB has no anchor: one point stands for all of it.
    far_west = GeoRecord("GB", "EU", None, 58.2, -6.4)
    reason = next(
        s.reason for s in route(_client(far_west), US, ALL_UP, TABLE).steps if s.step == "order"
    )
    assert reason.startswith("by latency from GB: eu-west-1 18 ms")


@pytest.mark.parametrize("country", ["US", "CA", "BR", "RU", "CN", "IN", "AU"])
def test_the_large_countries_are_anchored(country: str) -> None:
    assert country in TABLE.anchors and country in TABLE.countries


# The contiguous US, roughly.
us_places = st.tuples(st.floats(25.0, 49.0), st.floats(-124.0, -67.0))


@settings(max_examples=300, deadline=None)
@given(us_places)
def test_the_nearer_coast_wins_unless_nearly_equidistant(place: tuple[float, float]) -> None:
    lat, lon = place
    order = _order(GeoRecord("US", "NA", None, lat, lon))
    west = great_circle_km(lat, lon, US_WEST_2.lat, US_WEST_2.lon)
    east = great_circle_km(lat, lon, US_EAST_1.lat, US_EAST_1.lon)
    # The rows differ by 2.5 ms where the two are equidistant: 167 km at 0.015 ms/km.
    if west < east:
        assert order.index("us-west-2") < order.index("us-east-1")
    elif west - east > 170:
        assert order.index("us-east-1") < order.index("us-west-2")


@pytest.fixture(scope="module")
def us_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3,000 US /24s at random places in the contiguous US, as a City database."""
    rng = random.Random(14)
    # Seattle, where the reader's probe looks for a record (geodns.geo.geoip._PROBES).
    records = {"216.160.83.0/24": _city_record("US", "NA", "WA", 47.6, -122.3)}
    for i in range(3000):
        lat, lon = rng.uniform(25.0, 49.0), rng.uniform(-124.0, -67.0)
        net = f"{ipaddress.IPv4Address((24 << 24) + (i << 8))}/24"
        records[net] = _city_record("US", "NA", None, lat, lon)
    return write_mmdb(tmp_path_factory.mktemp("geoip") / "us.mmdb", records)


def test_located_us_networks_get_the_nearer_us_region_first(us_database: Path) -> None:
    """Of 3,000 located US networks, the first of us-east-1 and us-west-2 is the nearer one
    (the flat row put us-east-1 first for all of them)."""
    two = Service(US.name, 30, (US_EAST_1, US_WEST_2))
    wrong = nearer_west = 0
    with GeoIPDatabase(us_database) as db:
        for i in range(3000):
            client = locate(db, ipaddress.IPv4Address((24 << 24) + (i << 8) + 7), 24)
            record = client.record
            assert record is not None and record.lat is not None and record.lon is not None
            first = route(client, two, ALL_UP, TABLE).regions[0].name
            west = great_circle_km(record.lat, record.lon, US_WEST_2.lat, US_WEST_2.lon)
            east = great_circle_km(record.lat, record.lon, US_EAST_1.lat, US_EAST_1.lon)
            nearer_west += west < east
            if abs(west - east) > 170:
                wrong += first != ("us-west-2" if west < east else "us-east-1")
    assert nearer_west > 600  # a test of the test: many are nearer the west coast
    assert wrong == 0


# Anchored rows that leave regions out: the corrected row orders the subsets it holds, the
# continent row or distance the others, as the earlier steps leave regions.
ANCHORED_PARTIAL = LatencyTable(
    PARTIAL.regions,
    countries={k: dict(v) for k, v in PARTIAL.countries.items()},
    continents={k: dict(v) for k, v in PARTIAL.continents.items()},
    anchors={"GB": (51.5, -0.1), "US": (40.0, -83.0)},
)


@settings(max_examples=400, deadline=None)
@given(st.lists(records, min_size=2, max_size=8), snapshots, st.booleans())
def test_records_of_one_class_get_one_decision_under_anchored_rows(
    recs: list[GeoRecord | None], snap, residency: bool
) -> None:
    service = WIDE if residency else replace(WIDE, residency=())
    first: dict[object, object] = {}
    for i, record in enumerate(recs):
        decision = route(class_client(record, 1000 + 7919 * i), service, snap, ANCHORED_PARTIAL)
        answer = (decision.by_network, None)
        if not decision.by_network:
            answer = (False, (tuple(r.name for r in decision.regions), decision.outcome))
        seen = first.setdefault(client_class(record, service, ANCHORED_PARTIAL), answer)
        assert seen == answer, record


@settings(max_examples=300, deadline=None)
@given(st.lists(records, min_size=1, max_size=30), st.booleans())
def test_builder_classes_under_anchored_rows(recs: list[GeoRecord | None], residency: bool) -> None:
    service = WIDE if residency else replace(WIDE, residency=())
    feats = record_features(recs, np.arange(len(recs)))
    ids = record_classes(feats, service, ANCHORED_PARTIAL).tolist()
    classes = [client_class(r, service, ANCHORED_PARTIAL) for r in [*recs, None]]
    for i in range(len(classes)):
        for j in range(len(classes)):
            if ids[i] == ids[j]:
                assert classes[i] == classes[j], (i, j)
