"""Step measured: regions reordered by latency measured from the client's network (else its
country, else its continent) once there are enough samples, only past the stabilize
threshold, never past residency, health or capacity's demotions."""

from __future__ import annotations

import ipaddress
from dataclasses import replace
from types import MappingProxyType

from hypothesis import given, settings
from hypothesis import strategies as st

from geodns.geo.latency import LatencyTable
from geodns.geo.rum import Aggregator, Estimate, MeasuredLatency, RumSettings
from geodns.geo.rumformat import Sample
from geodns.health.state import StateSnapshot
from geodns.routing import order as order_step
from geodns.routing.context import RouteContext
from geodns.routing.measured import latencies
from geodns.routing.pipeline import route
from geodns.zones.model import ClientMatch, CostPolicy, Preference
from tests.unit.routing.routing_helpers import DOWN, PLACES, SERVICE, busy, client, state
from tests.unit.routing.test_in_country import CALIFORNIA
from tests.unit.routing.test_in_country import _client as client_at
from tests.unit.routing.test_residency_property import REGIONS, rules, snapshots

_DEFAULT = LatencyTable.default()
# The flat rows (no in-country correction): these tests are about the measured step, and
# the US client here is Seattle, whose table order the in-country rule changes.
TABLE = LatencyTable(_DEFAULT.regions, _DEFAULT.countries, _DEFAULT.continents, anchors={})
NET = "24.5.6.0/24"
SETTINGS = RumSettings(min_samples=5, stabilize_ms=10, stabilize_percent=10)


def measured(networks=None, countries=None, continents=None, settings_=SETTINGS) -> MeasuredLatency:
    def rows(spec):
        return MappingProxyType(
            {
                area: MappingProxyType(
                    {r: Estimate(float(ms), n, 0, 1000.0) for r, (ms, n) in row.items()}
                )
                for area, row in (spec or {}).items()
            }
        )

    return MeasuredLatency(1000.0, settings_, rows(networks), rows(countries), rows(continents))


def order(snapshot: StateSnapshot, network: str = NET, country: str = "US") -> list[str]:
    return [r.name for r in route(client(country, network), SERVICE, snapshot, TABLE).regions]


def with_rows(snapshot: StateSnapshot | None = None, **kw) -> StateSnapshot:
    return (snapshot or StateSnapshot()).with_measured(measured(**kw))


def test_without_measurements_the_table_orders() -> None:
    assert order(StateSnapshot()) == ["us-east-1", "eu-west-1", "ap-northeast-1"]


def test_a_region_measured_faster_moves_ahead_after_enough_samples_not_before() -> None:
    few = {NET: {"us-east-1": (80, 4), "eu-west-1": (20, 4)}}
    assert order(with_rows(networks=few)) == ["us-east-1", "eu-west-1", "ap-northeast-1"]
    enough = {NET: {"us-east-1": (80, 5), "eu-west-1": (20, 5)}}
    decision = route(client("US", NET), SERVICE, with_rows(networks=enough), TABLE)
    assert [r.name for r in decision.regions] == ["eu-west-1", "us-east-1", "ap-northeast-1"]
    assert decision.measured and decision.by_network
    assert decision.steps[-1].reason == (
        "measured from network 24.5.6.0/24: eu-west-1 20.0 ms (5 samples),"
        " us-east-1 80.0 ms (5 samples); moved eu-west-1 ahead of us-east-1"
    )


def test_noise_below_the_threshold_moves_nothing() -> None:
    # Better by 9 ms (under 10 ms), then by 12 ms but 8% (under 10%): the table's order stays.
    for east, west in ((30, 21), (150, 138)):
        rows = {NET: {"us-east-1": (east, 30), "eu-west-1": (west, 30)}}
        assert order(with_rows(networks=rows))[:2] == ["us-east-1", "eu-west-1"]
    rows = {NET: {"us-east-1": (150, 30), "eu-west-1": (130, 30)}}  # 20 ms and 13%
    assert order(with_rows(networks=rows))[:2] == ["eu-west-1", "us-east-1"]


def test_a_network_without_enough_samples_takes_its_country_then_continent() -> None:
    own = {NET: {"us-east-1": (10, 2), "eu-west-1": (90, 2)}}
    country = {"US": {"us-east-1": (90, 50), "ap-northeast-1": (20, 50)}}
    continent = {"NA": {"us-east-1": (90, 50), "eu-west-1": (20, 50)}}
    assert order(with_rows(networks=own, countries=country, continents=continent)) == [
        "ap-northeast-1",
        "eu-west-1",
        "us-east-1",
    ]
    assert order(with_rows(networks=own, continents=continent))[0] == "eu-west-1"
    # Another country's figures are not this client's.
    assert order(with_rows(countries={"BR": country["US"]}))[0] == "us-east-1"


def test_a_region_without_an_estimate_keeps_its_place() -> None:
    rows = {NET: {"us-east-1": (300, 9), "ap-northeast-1": (5, 9)}}
    # eu-west-1, unmeasured, keeps its place between the two the measurements swap.
    assert order(with_rows(networks=rows)) == ["ap-northeast-1", "eu-west-1", "us-east-1"]


def test_measurements_never_undo_health_or_capacity() -> None:
    rows = {NET: {"us-east-1": (90, 9), "eu-west-1": (20, 9), "ap-northeast-1": (10, 9)}}
    assert order(with_rows(state(eu_west_1=DOWN), networks=rows)) == [
        "ap-northeast-1",
        "us-east-1",
    ]
    # Shedding this network (99% of networks shed): ap-northeast-1 is demoted behind the
    # others, however fast it is measured.
    assert order(with_rows(state(ap_northeast_1=busy(0.919)), networks=rows)) == [
        "eu-west-1",
        "us-east-1",
        "ap-northeast-1",
    ]


def test_one_measured_region_orders_nothing_and_claims_nothing() -> None:
    decision = route(
        client("US", NET),
        SERVICE,
        with_rows(networks={NET: {"us-east-1": (300, 9)}}),
        TABLE,
    )
    assert not decision.measured and not decision.by_network


estimates = st.tuples(st.floats(0.1, 5000), st.integers(0, 40))
area_rows = st.dictionaries(st.sampled_from(REGIONS), estimates, max_size=3)
networks_ = st.integers(1, 2**24 - 1).map(lambda n: f"{ipaddress.IPv4Address(n << 8)}/24")


@st.composite
def measurements(draw: st.DrawFn) -> MeasuredLatency:
    nets = draw(st.lists(networks_, max_size=3))
    return measured(
        {n: draw(area_rows) for n in nets},
        draw(st.dictionaries(st.sampled_from(list(PLACES)), area_rows, max_size=3)),
        draw(st.dictionaries(st.sampled_from(["EU", "NA", "SA", "AS"]), area_rows, max_size=2)),
        RumSettings(
            min_samples=draw(st.integers(1, 10)),
            window=40,
            stabilize_ms=draw(st.floats(0, 50)),
            stabilize_percent=draw(st.floats(0, 50)),
        ),
    )


@settings(max_examples=300, deadline=None)
@given(
    rules(),
    snapshots,
    measurements(),
    st.sampled_from([*PLACES, None]),
    networks_,
)
def test_residency_holds_whatever_the_measurements_say(
    held, snapshot, rum, country, network
) -> None:
    service = replace(SERVICE, residency=held)
    who = client(country, network)
    # The client's own network measured too, often.
    rows = dict(rum.networks)
    rows[network] = MappingProxyType(
        {r: Estimate(1.0 + i, 50, 0, 1000.0) for i, r in enumerate(reversed(REGIONS))}
    )
    rum = MeasuredLatency(
        rum.at, rum.settings, MappingProxyType(rows), rum.countries, rum.continents
    )
    plain = route(who, service, snapshot, TABLE)
    decision = route(who, service, snapshot.with_measured(rum), TABLE)
    # The same regions, in an order only measurements changed; the same rule and outcome.
    assert (decision.outcome, decision.rule, decision.fallback) == (
        plain.outcome,
        plain.rule,
        plain.fallback,
    )
    assert sorted(r.name for r in decision.regions) == sorted(r.name for r in plain.regions)
    if decision.rule is not None:
        assert {r.name for r in decision.regions} <= set(decision.rule.regions)


def test_stale_samples_age_out_and_the_table_orders_again() -> None:
    """Aggregated by the time it is given (no clock is read): within the age limit the
    measurements move the client; past it, the table orders it again."""
    agg = Aggregator(RumSettings(min_samples=5, max_age=600))
    t0 = 1_764_288_000.0
    for i in range(5):
        for region, ms in (("us-east-1", 90.0), ("eu-west-1", 20.0)):
            agg.add(NET, "US", "NA", Sample(region, None, ms, True, t0 + i), t0 + i)
    fresh = StateSnapshot().with_measured(agg.table(t0 + 599))
    assert order(fresh)[0] == "eu-west-1"
    stale = StateSnapshot().with_measured(agg.table(t0 + 605))
    assert not stale.measured.regions
    assert order(stale)[0] == "us-east-1"
    assert fresh.routing_differs(stale)


def test_a_pinned_preference_holds_whatever_the_measurements_say() -> None:
    corp = Preference(
        ClientMatch(networks=(ipaddress.ip_network(NET),), description="corp"), ("us-east-1",)
    )
    pinned = replace(SERVICE, prefer=(corp,))
    rows = {NET: {"us-east-1": (300, 9), "eu-west-1": (20, 9)}}
    snapshot = with_rows(networks=rows)
    assert order(snapshot)[0] == "eu-west-1"  # unpinned, the measurements move it
    decision = route(client("US", NET), pinned, snapshot, TABLE)
    assert [r.name for r in decision.regions][:2] == ["us-east-1", "eu-west-1"]
    assert "pinned by prefer 0 (corp)" in decision.steps[-1].reason


def test_the_cost_budget_reads_the_measured_estimates() -> None:
    costs = {"us-east-1": 3.0, "eu-west-1": 1.0, "ap-northeast-1": 5.0}
    priced = replace(
        SERVICE,
        regions=tuple(replace(r, cost=costs[r.name]) for r in SERVICE.regions),
        cost=CostPolicy(20),
    )

    def first(rows) -> tuple[str, str]:
        decision = route(client("US", NET), priced, with_rows(networks=rows), TABLE)
        return decision.regions[0].name, decision.steps[-1].reason

    # By the table eu-west-1 is far outside 20 ms of us-east-1 for Seattle: latency wins.
    assert route(client("US", NET), priced, StateSnapshot(), TABLE).regions[0].name == ("us-east-1")
    # Measured 10 ms apart: within the budget, the cheaper one first.
    name, reason = first({NET: {"us-east-1": (40, 9), "eu-west-1": (50, 9)}})
    assert name == "eu-west-1"
    assert "cost decided: eu-west-1 (cost 1), 10 ms slower than us-east-1" in reason
    # Measured 50 ms apart: outside it, the faster one.
    assert first({NET: {"us-east-1": (40, 9), "eu-west-1": (90, 9)}})[0] == "us-east-1"


def test_explain_shows_the_table_figures_the_order_step_ranked_by() -> None:
    # A Californian client: the US row is anchored in Ohio and corrected in-country, so
    # the figures that ordered it are not the row's own.
    record = CALIFORNIA
    ctx = RouteContext(client_at(record), SERVICE, StateSnapshot(), _DEFAULT)
    shown = {r.region: (r.source, r.ms) for r in latencies(SERVICE.regions, ctx)}
    ranked = order_step.estimates(SERVICE.regions, ctx)
    assert ranked is not None
    assert shown == {name: ("table", ms) for name, ms in ranked.items()}
    assert shown["us-east-1"][1] != _DEFAULT.rtt("US", "NA", "us-east-1")
