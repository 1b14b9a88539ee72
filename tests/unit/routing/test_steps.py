"""Each routing step on literal inputs: the regions it keeps, in order, and its reason."""

from __future__ import annotations

from dataclasses import replace

from geodns.geo.latency import LatencyTable
from geodns.health.state import ALL_UP
from geodns.routing import capacity, health, order, residency
from geodns.routing.context import RouteContext
from geodns.routing.pipeline import route
from geodns.zones.model import FailClosed
from tests.unit.routing.routing_helpers import DOWN, DRAIN, SERVICE, busy, client, state

ALL = SERVICE.regions
EU_RULE = SERVICE.residency[0]


def names(out) -> list[str]:
    return [r.name for r in out.regions]


def test_residency_keeps_only_the_rules_regions() -> None:
    out = residency.narrow(ALL, RouteContext(client("DE"), SERVICE, ALL_UP))
    assert names(out) == ["eu-west-1"]
    assert out.rule is EU_RULE
    assert out.reason == ("client in DE matches residency rule 0 (continent EU): only eu-west-1")


def test_residency_leaves_other_clients_alone() -> None:
    out = residency.narrow(ALL, RouteContext(client("US"), SERVICE, ALL_UP))
    assert names(out) == ["us-east-1", "eu-west-1", "ap-northeast-1"]
    assert out.rule is None
    assert out.reason == "no residency rule for US: all regions allowed"


def test_health_drops_down_and_drained() -> None:
    ctx = RouteContext(client("US"), SERVICE, state(us_east_1=DOWN, ap_northeast_1=DRAIN))
    out = health.narrow(ALL, ctx)
    assert names(out) == ["eu-west-1"]
    assert out.reason == "healthy: eu-west-1 (left out: us-east-1 down, ap-northeast-1 drain)"


def test_health_fails_open_when_all_are_down() -> None:
    snap = state(us_east_1=DOWN, eu_west_1=DOWN, ap_northeast_1=DOWN)
    out = health.narrow(ALL, RouteContext(client("US"), SERVICE, snap))
    assert names(out) == ["us-east-1", "eu-west-1", "ap-northeast-1"]
    assert out.outcome is None
    assert "answering all (fail open)" in out.reason


def test_health_fails_closed_under_residency() -> None:
    ctx = RouteContext(client("GB"), SERVICE, state(eu_west_1=DOWN), rule=EU_RULE)
    out = health.narrow(ALL[1:2], ctx)
    assert out.regions == ()
    # The example zone's rule answers its in-jurisdiction "unavailable" endpoint.
    assert (out.outcome, out.fallback) == ("answer", ("192.0.2.29", "2001:db8:29::1"))
    refusing = replace(EU_RULE, when_none=FailClosed("refuse"))
    out = health.narrow(ALL[1:2], replace(ctx, rule=refusing))
    assert (out.outcome, out.fallback) == ("refuse", ())
    assert out.reason.endswith("failing closed (refuse)")


def test_capacity_drops_full_regions_unless_all_are_full() -> None:
    ctx = RouteContext(client("US"), SERVICE, state(us_east_1=busy(0.95)))
    out = capacity.narrow(ALL, ctx)
    assert names(out) == ["eu-west-1", "ap-northeast-1"]
    assert out.reason == "kept eu-west-1, ap-northeast-1: us-east-1 full (95% >= 92%)"
    snap = state(us_east_1=busy(0.95), eu_west_1=busy(0.99), ap_northeast_1=busy(0.93))
    out = capacity.narrow(ALL, RouteContext(client("US"), SERVICE, snap))
    assert names(out) == ["us-east-1", "eu-west-1", "ap-northeast-1"]
    assert out.reason.startswith("every region is full: answering all")


def test_capacity_below_low_keeps_everyone() -> None:
    out = capacity.narrow(ALL, RouteContext(client("US"), SERVICE, state(us_east_1=busy(0.5))))
    assert names(out) == ["us-east-1", "eu-west-1", "ap-northeast-1"]
    assert out.reason == "no region is busy"


def test_order_by_latency_table() -> None:
    ctx = RouteContext(client("JP"), SERVICE, ALL_UP, LatencyTable.default())
    out = order.narrow(ALL, ctx)
    assert names(out) == ["ap-northeast-1", "us-east-1", "eu-west-1"]
    assert out.reason.startswith("by latency from JP: ap-northeast-1 ")


def test_order_by_distance_without_a_table() -> None:
    out = order.narrow(ALL, RouteContext(client("ZA"), SERVICE, ALL_UP, None))
    assert names(out) == ["eu-west-1", "us-east-1", "ap-northeast-1"]
    assert out.reason.startswith("by distance from (-26.2, 28): eu-west-1 ")


def test_order_unlocated_uses_the_default_order() -> None:
    out = order.narrow(ALL[::-1], RouteContext(client(None), SERVICE, ALL_UP, None))
    assert names(out) == ["us-east-1", "eu-west-1", "ap-northeast-1"]


def test_shed_regions_go_last() -> None:
    ctx = RouteContext(client("US"), SERVICE, ALL_UP, None, demoted=frozenset({"us-east-1"}))
    out = order.narrow(ALL, ctx)
    assert names(out)[-1] == "us-east-1"


def test_route_records_every_step() -> None:
    decision = route(client("GB", "81.2.69.0/24"), SERVICE, ALL_UP, LatencyTable.default())
    assert [s.step for s in decision.steps] == [
        "residency",
        "health",
        "version",
        "capacity",
        "order",
        "measured",
    ]
    assert [r.name for r in decision.regions] == ["eu-west-1"]
    assert decision.select(4)[0][1] == ("192.0.2.20",)
