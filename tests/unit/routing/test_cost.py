"""Cost within a latency budget: among the regions whose estimate is within the service's
budget of the best one's, the cheapest first; outside the budget, latency wins; residency
and shedding hold whatever the prices; and classes still mean one decision."""

from __future__ import annotations

from dataclasses import replace

import dns.name
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from geodns.control.scopebuild import record_classes, record_features
from geodns.geo.geoip import GeoRecord
from geodns.geo.latency import LatencyTable
from geodns.health.state import ALL_UP, RegionState, StateSnapshot
from geodns.routing.classes import client_class
from geodns.routing.pipeline import route
from geodns.zones.model import (
    ClientMatch,
    CostPolicy,
    Region,
    ResidencyRule,
    Service,
)
from tests.unit.routing.test_classes import WIDE, _client, records, snapshots
from tests.unit.routing.test_in_country import CALIFORNIA
from tests.unit.routing.test_in_country import _client as client_at

TABLE = LatencyTable.default()
REGIONS = (
    Region("us-east-1", ("192.0.2.10",), 38.9, -77.0, cost=3.0),
    Region("us-east-2", ("192.0.2.11",), 40.0, -83.0, cost=1.0),
    Region("us-west-2", ("192.0.2.12",), 45.8, -119.7, cost=2.0),
    Region("eu-west-1", ("192.0.2.20",), 53.3, -6.3, cost=0.5),
)
US = Service(dns.name.from_text("inference.example.com"), 30, REGIONS, cost=CostPolicy(20))
OHIO = GeoRecord("US", "NA", "OH", 40.0, -83.0)
VIRGINIA = GeoRecord("US", "NA", "VA", 38.9, -77.0)


def _route(record: GeoRecord, service: Service = US, state: StateSnapshot = ALL_UP):
    return route(client_at(record), service, state, TABLE)


def _names(decision) -> list[str]:
    return [r.name for r in decision.regions]


def test_the_cheapest_within_the_budget_comes_first() -> None:
    # From Virginia: us-east-1 about 23 ms, us-east-2 about 27 ms, 4 ms apart; us-east-2
    # costs a third as much.
    decision = _route(VIRGINIA)
    assert _names(decision)[:2] == ["us-east-2", "us-east-1"]
    order = next(s.reason for s in decision.steps if s.step == "order")
    assert "cost decided: us-east-2 (cost 1)" in order and "than us-east-1 (cost 3)" in order
    # Without a budget, latency alone.
    assert _names(_route(VIRGINIA, replace(US, cost=None)))[:2] == ["us-east-1", "us-east-2"]


def test_outside_the_budget_latency_wins() -> None:
    # From California us-west-2 (35 ms) is 35 ms ahead of us-east-2: more than 20 ms, so
    # the cheaper us-east-2 does not come first.
    decision = _route(CALIFORNIA)
    assert _names(decision)[0] == "us-west-2"
    assert "cost: us-west-2 (cost 2) is the cheapest of 1 (none other within 20 ms)" in (
        next(s.reason for s in decision.steps if s.step == "order")
    )
    # A 40 ms budget reaches it.
    assert _names(_route(CALIFORNIA, replace(US, cost=CostPolicy(40))))[0] == "us-east-2"
    # The cheapest of all (eu-west-1, 0.5) is far outside any of these budgets.
    assert _names(_route(OHIO, replace(US, cost=CostPolicy(60))))[0] == "us-east-2"


def test_a_shed_region_stays_last_whatever_its_price() -> None:
    busy = StateSnapshot().with_region(US.key, "us-east-2", RegionState(utilization=0.99))
    assert _names(_route(VIRGINIA, state=busy))[0] == "us-east-1"


prices = st.lists(st.floats(0, 10, allow_nan=False), min_size=5, max_size=5)
budgets = st.sampled_from([0.0, 5.0, 20.0, 80.0, 500.0])


def _costed(base: Service, costs: list[float], budget: float) -> Service:
    regions = tuple(replace(r, cost=c) for r, c in zip(base.regions, costs, strict=False))
    return replace(base, regions=regions, cost=CostPolicy(budget))


EU_ONLY = ResidencyRule(ClientMatch(frozenset({"EU"}), description="continent EU"), ("eu-west-1",))


@settings(max_examples=300, deadline=None)
@given(records, snapshots, prices, budgets)
def test_residency_never_leaks_and_the_first_is_within_the_budget(
    record: GeoRecord | None, snap: StateSnapshot, costs: list[float], budget: float
) -> None:
    service = _costed(replace(WIDE, residency=(EU_ONLY,)), costs, budget)
    decision = route(_client(record, 3), service, snap, TABLE)
    if record is not None and record.continent == "EU":
        assert {r.name for r in decision.regions} <= {"eu-west-1"}
    baseline = route(_client(record, 3), replace(service, cost=None), snap, TABLE)
    # Cost only reorders what the other steps kept.
    assert sorted(_names(decision)) == sorted(_names(baseline))
    assert decision.outcome == baseline.outcome


@settings(max_examples=300, deadline=None)
@given(st.lists(records, min_size=2, max_size=8), snapshots, prices, budgets)
def test_records_of_one_class_get_one_decision_with_a_budget(
    recs: list[GeoRecord | None], snap: StateSnapshot, costs: list[float], budget: float
) -> None:
    service = _costed(WIDE, costs, budget)
    first: dict[object, object] = {}
    for i, record in enumerate(recs):
        decision = route(_client(record, 1000 + 7919 * i), service, snap, TABLE)
        answer = (decision.by_network, None)
        if not decision.by_network:
            answer = (False, (tuple(_names(decision)), decision.outcome))
        assert first.setdefault(client_class(record, service, TABLE), answer) == answer


@settings(max_examples=200, deadline=None)
@given(st.lists(records, min_size=1, max_size=30), prices, budgets)
def test_builder_classes_are_routing_classes_with_a_budget(
    recs: list[GeoRecord | None], costs: list[float], budget: float
) -> None:
    service = _costed(WIDE, costs, budget)
    ids = record_classes(record_features(recs, np.arange(len(recs))), service, TABLE).tolist()
    classes = [client_class(r, service, TABLE) for r in [*recs, None]]
    for i in range(len(classes)):
        for j in range(len(classes)):
            if ids[i] == ids[j]:
                assert classes[i] == classes[j]
