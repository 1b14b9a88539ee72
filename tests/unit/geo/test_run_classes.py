"""Runs carry their routing class: every address of a run of class c is routed as the run's
representative (the start of the first run of class c) is, which is what lets an answer be
decided once per class rather than once per client network."""

from __future__ import annotations

import ipaddress
import random
from pathlib import Path

import pytest

from geodns.geo.geoip import GeoIPDatabase
from geodns.geo.locate import locate
from geodns.geo.scopes import NO_WIDENING, ScopeRuns
from geodns.routing.pipeline import route
from tests.unit.control.test_scopebuild import NETWORKS, STATES, TABLES, _build, neighbours
from tests.unit.routing.routing_helpers import SERVICE

__all__ = ["neighbours"]  # the database fixture


def _decisions(db: GeoIPDatabase, address: ipaddress._BaseAddress, table) -> list[object]:
    client = locate(db, address)
    out = []
    for state in STATES:
        decision = route(client, SERVICE, state, table)
        out.append((tuple(r.name for r in decision.regions), decision.outcome, decision.rule))
    return out


@pytest.mark.parametrize("table_name", ["default", "none"])
def test_every_address_of_a_class_is_routed_as_its_representative(
    neighbours: Path, tmp_path: Path, table_name: str
) -> None:
    table = TABLES[table_name]
    rng = random.Random(11)
    with GeoIPDatabase(neighbours) as db:
        runs = _build(db, SERVICE, table, tmp_path)
        checked = 0
        for family, kind in ((runs.v4, ipaddress.IPv4Address), (runs.v6, ipaddress.IPv6Address)):
            assert family is not None and family.classes is not None
            reps = family.representatives()
            assert NO_WIDENING not in reps and len(reps) >= 2
            expected = {c: _decisions(db, kind(a), table) for c, a in reps.items()}
            probes = [rng.getrandbits(family.bits) for _ in range(300)]
            probes += [int(ipaddress.ip_network(n).network_address) for n in _networks(family.bits)]
            for value in probes:
                cls = family.class_at(value)
                if cls == NO_WIDENING:
                    continue
                assert _decisions(db, kind(value), table) == expected[cls], (kind(value), cls)
                checked += 1
        assert checked > 200


def _networks(bits: int) -> list[str]:
    return [n for n in NETWORKS if (":" in n) == (bits == 128)]


def test_runs_files_keep_their_classes(neighbours: Path, tmp_path: Path) -> None:
    with GeoIPDatabase(neighbours) as db:
        runs = _build(db, SERVICE, TABLES["default"], tmp_path)
    path = str(tmp_path / "again.npz")
    runs.save(path)
    back = ScopeRuns.load(path)
    assert back.v4.classes is not None and (back.v4.classes == runs.v4.classes).all()
    assert back.v6 is not None and back.v6.representatives() == runs.v6.representatives()
