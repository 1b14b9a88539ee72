"""The scope builder: its classes are routing's classes, and no scope it widens is false."""

from __future__ import annotations

import ipaddress
import itertools
import random
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geodns.control.scopebuild import (
    BuildRequest,
    ClassSpec,
    build,
    cached,
    record_classes,
    record_features,
)
from geodns.geo.geoip import GeoIPDatabase, GeoRecord
from geodns.geo.locate import locate
from geodns.geo.scopes import ScopeRuns
from geodns.health.state import Health, RegionState, StateSnapshot
from geodns.routing.classes import class_fingerprint, client_class
from geodns.routing.order import great_circle_km
from geodns.routing.pipeline import route
from tests.geo_fixtures import _city_record, write_mmdb
from tests.unit.routing.routing_helpers import SERVICE
from tests.unit.routing.test_classes import PLACES, TABLES, WIDE, coordinates

records = st.one_of(
    st.none(),
    st.builds(
        lambda place, xy: GeoRecord(place[0], place[1], None, *(xy or (None, None))),
        st.sampled_from(PLACES),
        st.one_of(coordinates, st.tuples(st.floats(-80, 80), st.floats(-180, 180))),
    ).filter(lambda r: r.country or r.continent or r.lat is not None),
)
SERVICES = {"example": SERVICE, "wide": WIDE, "open": replace(WIDE, residency=())}


def _near_tie(record: GeoRecord | None, service) -> bool:
    if record is None or record.lat is None:
        return False
    km = sorted(
        great_circle_km(record.lat, record.lon, r.lat, r.lon)
        for r in service.regions
        if r.lat is not None
    )
    return any(b - a < 1e-3 for a, b in itertools.pairwise(km))


@settings(max_examples=300, deadline=None)
@given(
    st.lists(records, min_size=1, max_size=40),
    st.sampled_from(sorted(SERVICES)),
    st.sampled_from(sorted(TABLES)),
)
def test_builder_classes_are_routing_classes(
    recs: list[GeoRecord | None], service_name: str, table_name: str
) -> None:
    service, table = SERVICES[service_name], TABLES[table_name]
    feats = record_features(recs, np.arange(len(recs)))
    ids = record_classes(feats, service, table).tolist()
    assert len(ids) == len(recs) + 1  # and one for networks without a record
    everyone = [*recs, None]
    classes = [client_class(r, service, table) for r in everyone]
    for i in range(len(everyone)):
        for j in range(len(everyone)):
            if ids[i] == ids[j]:
                assert classes[i] == classes[j], (everyone[i], everyone[j])
            elif classes[i] == classes[j]:
                # Only a near tie between two regions may stand alone.
                assert _near_tie(everyone[i], service) or _near_tie(everyone[j], service)


# Neighbouring networks, so that some runs span several of them: London and Manchester
# are one class for the example service (the EU rule leaves eu-west-1 only); Seattle and
# Portland are ordered by the table's US row, Tokyo and Seoul by their rows.
NETWORKS = {
    "81.2.68.0/24": ("GB", "EU", None, 51.5, -0.13),
    "81.2.69.0/24": ("GB", "EU", None, 53.5, -2.2),
    "81.2.70.0/23": ("DE", "EU", None, 52.5, 13.4),
    "81.2.72.0/21": ("US", "NA", None, 40.7, -74.0),
    "216.160.80.0/22": ("US", "NA", None, 45.5, -122.7),
    "216.160.84.0/22": ("US", "NA", None, 47.6, -122.3),
    "202.214.0.0/16": ("JP", "AS", None, 35.7, 139.7),
    "202.215.0.0/16": ("KR", "AS", None, 37.6, 127.0),
    "14.0.0.0/8": ("BR", "SA", None, -23.5, -46.6),
    "15.0.0.0/8": ("BR", "SA", None, -22.9, -43.2),
    "2001:480::/32": ("US", "NA", None, 47.6, -122.3),
    "2001:481::/32": ("US", "NA", None, 45.5, -122.7),
    "2a02:2770::/32": ("GB", "EU", None, None, None),
}


@pytest.fixture(scope="module")
def neighbours(tmp_path_factory: pytest.TempPathFactory) -> Path:
    records = {net: _city_record(*fields) for net, fields in NETWORKS.items()}
    return write_mmdb(tmp_path_factory.mktemp("geoip") / "neighbours.mmdb", records)


def _build(db: GeoIPDatabase, service, table, cache: Path) -> ScopeRuns:
    fp = class_fingerprint(service, table)
    request = BuildRequest(db.path, db.file_key, (ClassSpec(fp, service, table),), str(cache))
    files = build(request)
    assert cached(request) == files  # and found without building next time
    return ScopeRuns.load(files[fp])


STATES = [
    StateSnapshot(),
    StateSnapshot().with_region(SERVICE.key, "eu-west-1", RegionState(Health.DOWN)),
    StateSnapshot()
    .with_region(SERVICE.key, "us-east-1", RegionState(Health.DOWN))
    .with_region(SERVICE.key, "ap-northeast-1", RegionState(utilization=0.99)),
]


def _answer(db, address, service, table, state):
    decision = route(locate(db, address), service, state, table)
    return tuple(r.name for r in decision.regions), decision.outcome


@pytest.mark.parametrize("table_name", ["default", "none"])
def test_no_widened_scope_claims_a_false_answer(
    neighbours: Path, tmp_path: Path, table_name: str
) -> None:
    table = TABLES[table_name]
    rng = random.Random(7)
    with GeoIPDatabase(neighbours) as db:
        runs = _build(db, SERVICE, table, tmp_path)
        probes = [ipaddress.ip_network(n).network_address for n in NETWORKS]
        # Beside special-purpose blocks, which are unlocated whatever the database says.
        probes += [ipaddress.ip_address(a) for a in ("9.255.0.1", "11.0.0.1", "172.32.0.1")]
        probes += [ipaddress.ip_address(a) for a in ("192.169.0.1", "::1:0:0:1", "2001:200::1")]
        probes += [ipaddress.IPv4Address(rng.getrandbits(32)) for _ in range(150)]
        probes += [ipaddress.IPv6Address((0x2001 << 112) | rng.getrandbits(100)) for _ in range(50)]
        widened = 0
        for address in probes:
            client = locate(db, address)
            if not client.from_database:
                continue
            scope = runs.scope(address, client.network.prefixlen)
            widened += scope < client.network.prefixlen
            claimed = ipaddress.ip_network((address, scope), strict=False)
            inside = [claimed.network_address, claimed.broadcast_address]
            inside += [
                claimed.network_address + rng.randrange(claimed.num_addresses) for _ in range(25)
            ]
            for state in STATES:
                expected = _answer(db, address, SERVICE, table, state)
                for other in inside:
                    assert _answer(db, other, SERVICE, table, state) == expected, (
                        address,
                        claimed,
                        other,
                    )
        assert widened >= 7  # London, Manchester, Berlin, Portland, Seattle, Brazil twice


def test_runs_of_one_class_span_networks(neighbours: Path, tmp_path: Path) -> None:
    with GeoIPDatabase(neighbours) as db:
        runs = _build(db, SERVICE, TABLES["default"], tmp_path)

        def scope(text: str) -> int:
            client = locate(db, text)
            if not client.from_database:  # as the server does (GeoAnswers._widened)
                return client.network.prefixlen
            return runs.scope(client.address, client.network.prefixlen)

        # GB, GB, DE: one EU class (one region to answer) from 81.2.68.0 to 81.2.71.255.
        assert scope("81.2.69.1") == 22
        # Portland and Seattle: the US row, corrected from its Ohio anchor to the Pacific
        # Northwest, ranks ap-northeast-1 before eu-west-1 for both: one run of the two
        # /22s, and not the unlocated space around them (the default order).
        assert scope("216.160.85.1") == 21 and scope("216.160.81.1") == 21
        # Tokyo's row and Seoul's rank the three regions alike.
        assert scope("202.214.1.1") == 15
        # Brazil's row ranks as the default order: 14/8 and 15/8 join the unlocated space
        # around them, private 10/8 included (unlocated too), up to 81.2.68.0/22 (EU).
        assert scope("14.1.1.1") == 2
        # The same for US over IPv6: Seattle's and Portland's /32s are one run.
        assert scope("2001:481::1") == 31
        # Special-purpose blocks keep the block's prefix.
        assert scope("10.1.2.3") == 8


def test_a_changed_file_is_not_built(neighbours: Path, tmp_path: Path) -> None:
    with GeoIPDatabase(neighbours) as db:
        fp = class_fingerprint(SERVICE, None)
        request = BuildRequest(db.path, "0-0-0-0", (ClassSpec(fp, SERVICE, None),), str(tmp_path))
        with pytest.raises(RuntimeError, match="changed since the server opened it"):
            build(request)


def test_a_service_every_client_ranks_alike_answers_scope_0(
    neighbours: Path, tmp_path: Path
) -> None:
    # No locations, no table, no rule: every client, located or not, gets the default order.
    regions = tuple(replace(r, lat=None, lon=None) for r in SERVICE.regions)
    same = replace(SERVICE, regions=regions, residency=())
    with GeoIPDatabase(neighbours) as db:
        runs = _build(db, same, None, tmp_path)
        for address in ("81.2.69.1", "8.8.8.8", "202.214.1.1", "14.1.1.1"):
            client = locate(db, address)
            assert runs.scope(client.address, client.network.prefixlen) == 0
        # Over IPv6 only the IPv4-mapped block (looked up as IPv4) is in the way.
        client = locate(db, "2001:480::1")
        assert runs.scope(client.address, client.network.prefixlen) == 3


def test_a_damaged_cache_file_is_built_again(neighbours: Path, tmp_path: Path) -> None:
    with GeoIPDatabase(neighbours) as db:
        fp = class_fingerprint(SERVICE, None)
        request = BuildRequest(db.path, db.file_key, (ClassSpec(fp, SERVICE, None),), str(tmp_path))
        runs = Path(build(request)[fp])
        (features,) = tmp_path.glob("features-*.npz")
        runs.write_bytes(b"not a zip file")
        features.write_bytes(b"PK\x03\x04 truncated")
        assert cached(request) is None and not runs.exists()
        assert Path(build(request)[fp]) == runs
        assert ScopeRuns.load(str(runs)).v4.starts[0] == 0
