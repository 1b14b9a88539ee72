"""Measured latency across a fleet: a node's table as the store value it shares survives the
round trip (rounded), is capped at the networks with the most samples, refuses values it
cannot read, and the merge of every node's tables is order-free, sums samples and takes
the sample-weighted median."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from geodns.geo.rum import Aggregator, Estimate, MeasuredLatency, RumSettings, frozen_rows
from geodns.geo.rumformat import Sample
from geodns.geo.rumshare import combine, from_share, merge, to_share

NOW = 1_764_288_000.0
SETTINGS = RumSettings(min_samples=3)


def table(samples: dict[str, list[float]], network: str = "24.5.6.0/24") -> MeasuredLatency:
    agg = Aggregator(SETTINGS)
    for region, times in samples.items():
        for i, ms in enumerate(times):
            agg.add(network, "US", "NA", Sample(region, None, ms, True, NOW - i), NOW)
    return agg.table(NOW)


def round_trip(t: MeasuredLatency, limit: int = 2_000) -> MeasuredLatency:
    return from_share(json.loads(json.dumps(to_share(t, limit))), SETTINGS)


def test_a_shared_table_reads_back_as_it_was() -> None:
    t = table({"us-west-2": [20.004, 21.0, 22.0], "us-east-1": [70.0, 71.0, 69.5]})
    back = round_trip(t)
    assert back.routing_key() == t.routing_key()
    assert back.networks["24.5.6.0/24"]["us-west-2"] == Estimate(21.0, 3, 0, NOW)
    assert back.countries["US"] == t.countries["US"]
    assert back.continents["NA"] == t.continents["NA"]
    assert back.regions == {"us-west-2", "us-east-1"}


def test_only_the_networks_with_the_most_samples_are_shared() -> None:
    agg = Aggregator(SETTINGS)
    for n in range(5):
        for i in range(n + 1):  # network n has n + 1 samples
            agg.add(f"10.0.{n}.0/24", None, None, Sample("a", None, 10.0, True, NOW), NOW - i)
    shared = to_share(agg.table(NOW), limit=2)
    assert sorted(shared["network"]) == ["10.0.3.0/24", "10.0.4.0/24"]


@pytest.mark.parametrize(
    "value",
    [
        [],
        {"format": 2, "regions": []},
        {"format": 1, "regions": [1]},
        {"format": 1, "regions": ["a"], "network": {"10.0.0.0/24": [[1, 5, 3, 0, NOW]]}},
        {"format": 1, "regions": ["a"], "network": {"10.0.0.0/24": [[0, -5, 3, 0, NOW]]}},
        {"format": 1, "regions": ["a"], "country": {"US": [[0, float("nan"), 3, 0, NOW]]}},
        {"format": 1, "regions": ["a"], "country": {"US": [[0, 5, True, 0, NOW]]}},
        {"format": 1, "regions": ["a"], "country": {"US": [[0, 5, 3]]}},
        {"format": 1, "regions": ["a"], "continent": []},
    ],
)
def test_a_value_that_is_not_a_table_is_refused(value: object) -> None:
    with pytest.raises((ValueError, TypeError, KeyError)):
        from_share(value, SETTINGS)


def test_one_node_merged_is_itself_and_stale_estimates_age_out() -> None:
    t = table({"us-west-2": [20.0, 21.0, 22.0]})
    assert merge([t], SETTINGS, NOW).routing_key() == t.routing_key()
    later = NOW + SETTINGS.max_age + 1
    assert merge([t], SETTINGS, later).regions == frozenset()


def test_two_nodes_samples_add_up_past_the_minimum() -> None:
    # Two samples on each node: neither is enough alone, together they are.
    a = table({"us-west-2": [20.0, 22.0]})
    b = table({"us-west-2": [24.0, 26.0]})
    assert not a.regions and not b.regions
    merged = merge([a, b], SETTINGS, NOW)
    assert merged.regions == {"us-west-2"}
    est = merged.networks["24.5.6.0/24"]["us-west-2"]
    assert (est.samples, est.failed, est.newest) == (4, 0, NOW)
    assert est.ms in (21.0, 25.0)  # one node's median: the lower weighted median


def test_the_node_with_most_samples_outweighs_an_outlier_node() -> None:
    many = Estimate(20.0, 30, 0, NOW)
    few = Estimate(500.0, 3, 2, NOW - 5)
    assert combine([few, many]) == Estimate(20.0, 33, 2, NOW)


# Times as a shared value holds them (ms to 0.01, seconds to 0.1), so that sharing is exact.
estimates = st.builds(
    Estimate,
    st.integers(0, 500_000).map(lambda x: x / 100),
    st.integers(0, 32),
    st.integers(0, 32),
    st.integers(0, 5_000).map(lambda x: NOW - x / 10),
)


@given(st.lists(estimates, min_size=1, max_size=6), st.randoms())
def test_combine_is_order_free_and_within_the_inputs(found: list[Estimate], rnd) -> None:
    shuffled = list(found)
    rnd.shuffle(shuffled)
    c = combine(found)
    assert combine(shuffled) == c
    assert min(e.ms for e in found) <= c.ms <= max(e.ms for e in found)
    assert c.samples == sum(e.samples for e in found)
    assert c.failed == sum(e.failed for e in found)
    assert c.newest == max(e.newest for e in found)


@given(st.lists(st.dictionaries(st.sampled_from(["a", "b", "c"]), estimates), max_size=4))
def test_every_node_merging_the_same_tables_gets_the_same_table(rows) -> None:
    tables = [
        MeasuredLatency(NOW, SETTINGS, countries=frozen_rows({"US": r} if r else {})) for r in rows
    ]
    forward = merge(tables, SETTINGS, NOW)
    assert forward.routing_key() == merge(list(reversed(tables)), SETTINGS, NOW).routing_key()
    # And a merged table survives sharing: what a node shares of it reads back the same.
    assert round_trip(forward).routing_key() == forward.routing_key()
