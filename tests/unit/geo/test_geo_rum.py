"""Measured latency: the report format refuses what is not version 1, and the aggregator turns
samples into estimates per network, country and continent, ageing them out by the time it is
given (no clock), within bounded memory that a flood of new networks cannot take over."""

from __future__ import annotations

import ipaddress
import json
import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geodns.geo.rum import Aggregator, RumSettings, network_of
from geodns.geo.rumformat import MAX_BODY, MAX_SAMPLES, BadReport, Sample, parse_report_untrusted

NOW = 1_764_288_000.0


def sample(region: str = "us-west-2", ms: float | None = 40.0, ok: bool = True, t: float = NOW):
    return Sample(region, None, ms, ok, t)


def body(**doc) -> bytes:
    base = {"version": 1, "samples": [{"region": "us-west-2", "ttfb_ms": 40, "ok": True, "t": NOW}]}
    return json.dumps({**base, **doc}).encode()


def test_a_report_of_version_1_is_read() -> None:
    report = parse_report_untrusted(body(client="24.5.6.0/24"), NOW)
    assert report.client == ipaddress.ip_network("24.5.6.0/24")
    assert report.samples == (Sample("us-west-2", None, 40.0, True, NOW),)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", "malformed"),
        (b"[]", "malformed"),
        (body(version=2), "malformed"),
        (body(extra=1), "malformed"),
        (body(samples={}), "malformed"),
        (
            body(samples=[{"region": "a", "ok": True, "t": NOW}] * (MAX_SAMPLES + 1)),
            "too_many_samples",
        ),
        (b" " * (MAX_BODY + 1), "too_large"),
        (body(samples=[{"region": "us west", "ttfb_ms": 1, "ok": True, "t": NOW}]), "bad_value"),
        (body(samples=[{"region": "a", "ttfb_ms": -1, "ok": True, "t": NOW}]), "bad_value"),
        (body(samples=[{"region": "a", "ttfb_ms": 1e9, "ok": True, "t": NOW}]), "bad_value"),
        (body(samples=[{"region": "a", "ttfb_ms": True, "ok": True, "t": NOW}]), "bad_value"),
        (body(samples=[{"region": "a", "ok": True, "t": NOW}]), "bad_value"),
        (body(samples=[{"region": "a", "ttfb_ms": 1, "ok": 1, "t": NOW}]), "bad_value"),
        (body(samples=[{"region": "a", "ttfb_ms": 1, "ok": True, "t": NOW + 3600}]), "bad_value"),
        (body(client="24.5.0.0/16"), "bad_client"),
        (body(client="24.5.6.1/24"), "bad_client"),
        (body(client=24), "bad_client"),
    ],
)
def test_a_bad_report_is_refused_with_its_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(BadReport) as caught:
        parse_report_untrusted(raw, NOW)
    assert caught.value.reason.startswith(reason)


def test_networks_are_slash_24_and_slash_48() -> None:
    assert network_of(ipaddress.ip_address("24.5.6.7")) == "24.5.6.0/24"
    assert network_of(ipaddress.ip_address("2001:db8:1:2::9")) == "2001:db8:1::/48"
    assert network_of(ipaddress.ip_address("::ffff:24.5.6.7")) == "24.5.6.0/24"


def test_the_estimate_is_the_median_of_successes_and_rolls_up() -> None:
    agg = Aggregator(RumSettings(min_samples=3))
    for ms in (40, 41, 500, 39):  # one outlier
        agg.add("24.5.6.0/24", "US", "NA", sample(ms=ms), NOW)
    agg.add("24.5.6.0/24", "US", "NA", sample(ms=None, ok=False), NOW)
    table = agg.table(NOW)
    est = table.networks["24.5.6.0/24"]["us-west-2"]
    assert (est.ms, est.samples, est.failed) == (40.5, 4, 1)
    assert table.countries["US"]["us-west-2"] == est
    assert table.continents["NA"]["us-west-2"] == est
    assert table.regions == {"us-west-2"}
    # It travels to DNS workers.
    assert pickle.loads(pickle.dumps(table)).routing_key() == table.routing_key()


def test_samples_age_out_by_the_time_given() -> None:
    agg = Aggregator(RumSettings(min_samples=1, max_age=600))
    agg.add("24.5.6.0/24", "US", "NA", sample(), NOW)
    assert agg.table(NOW + 599).networks["24.5.6.0/24"]["us-west-2"].samples == 1
    aged = agg.table(NOW + 601)
    assert not aged.networks and not aged.countries and not aged.regions
    assert agg.areas() == {"network": 0, "country": 0, "continent": 0}
    # A sample measured longer ago than max_age is refused on arrival.
    assert agg.add("24.5.6.0/24", "US", "NA", sample(t=NOW - 700), NOW) == "stale"


def test_fewer_than_min_samples_are_kept_but_not_used() -> None:
    agg = Aggregator(RumSettings(min_samples=5))
    for _ in range(4):
        agg.add("24.5.6.0/24", "US", "NA", sample(), NOW)
    table = agg.table(NOW)
    assert table.networks["24.5.6.0/24"]["us-west-2"].samples == 4
    assert not table.regions


flood = st.lists(st.integers(0, 2**24 - 1), min_size=1, max_size=300)


@settings(max_examples=60, deadline=None)
@given(flood, st.integers(1, 20))
def test_a_flood_of_new_networks_neither_grows_memory_nor_evicts_established_ones(
    randoms: list[int], cap: int
) -> None:
    s = RumSettings(min_samples=3, window=8, max_networks=cap)
    agg = Aggregator(s)
    established = [f"10.0.{i}.0/24" for i in range((cap + 1) // 2)]
    for net in established:
        for _ in range(s.min_samples):
            assert agg.add(net, "US", "NA", sample(), NOW) == "accepted"
    for n in randoms:
        net = f"{ipaddress.IPv4Address(n << 8)}/24"
        agg.add(net, "BR", "SA", sample("eu-west-1", ms=1.0), NOW)
        assert len(agg) <= cap
    table = agg.table(NOW)
    for net in established:
        assert table.networks[net]["us-west-2"].samples == s.min_samples
    assert len(table.networks) <= cap


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 60_000), st.booleans()), min_size=1, max_size=100))
def test_an_estimate_lies_within_its_window_of_successes(values) -> None:
    s = RumSettings(min_samples=1, window=16)
    agg = Aggregator(s)
    for ms, ok in values:
        agg.add("24.5.6.0/24", None, None, sample(ms=ms if ok else None, ok=ok), NOW)
    kept = values[-s.window :]
    good = [ms for ms, ok in kept if ok]
    row = agg.table(NOW).networks.get("24.5.6.0/24", {})
    if not good:
        assert "us-west-2" not in row
    else:
        est = row["us-west-2"]
        assert min(good) <= est.ms <= max(good)
        assert (est.samples, est.failed) == (len(good), len(kept) - len(good))


def test_which_networks_hold_a_measured_one() -> None:
    """A decision is per GeoIP network unless a /24 (/48) measured on its own lies in it."""
    from types import MappingProxyType

    from geodns.geo.rum import Estimate, MeasuredLatency

    row = MappingProxyType({"us-west-2": Estimate(1.0, 9, 0, NOW)})
    nets = MappingProxyType({"24.5.6.0/24": row, "2001:db8:1::/48": row})
    table = MeasuredLatency(NOW, RumSettings(), networks=nets)
    for network, holds in [
        ("24.5.0.0/16", True),
        ("24.5.6.64/26", True),
        ("24.5.4.0/22", True),
        ("24.5.4.0/23", False),
        ("24.5.7.0/24", False),
        ("2001:db8::/32", True),
        ("2001:db8:1:5::/64", True),
        ("2001:db8:2::/48", False),
    ]:
        assert table.overlaps(ipaddress.ip_network(network)) is holds, network
