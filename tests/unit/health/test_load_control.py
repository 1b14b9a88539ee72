"""The capacity control law (geodns.health.load) on literal inputs, and its invariants."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geodns.health import load
from geodns.health.load import QUANTUM, STEP, Load, decide, level, observe, pushed_values, target
from geodns.zones.model import Capacity, Signal

LOW, HIGH = 0.75, 0.92
TTL = 30.0
CAP = Capacity(LOW, HIGH, (Signal("num_requests_waiting", 8, 32),))


def test_a_reading_is_smoothed_with_a_time_constant_of_half_a_ttl() -> None:
    first = observe(Load(), 0.5, 0.0, TTL)
    assert (first.level, first.at) == (0.5, 0.0)
    later = observe(first, 1.5, TTL / 2, TTL)  # one time constant: 63% of the way
    assert later.level == pytest.approx(0.5 + 0.632, abs=0.001)
    assert observe(later, None, TTL, TTL) == later  # unknown: nothing changes


def test_inside_the_band_the_share_holds() -> None:
    for share in (0.0, 0.25, 0.5):
        for u in (LOW, 0.8, HIGH):
            assert target(share, u, LOW, HIGH) == share


def test_outside_the_band_the_target_brings_the_load_to_the_middle() -> None:
    # 1.2 shedding nobody: shed 1 - 0.835 / 1.2 of the networks.
    assert target(0.0, 1.2, LOW, HIGH) == pytest.approx(1 - 0.835 / 1.2)
    # 0.5 while shedding half: the demand is 1.0, shed less.
    assert target(0.5, 0.5, LOW, HIGH) == pytest.approx(0.165)
    assert target(0.5, None, LOW, HIGH) == 0.0  # unknown load: release
    assert target(1.0, 0.2, LOW, HIGH) == 0.0
    assert target(1.0, 0.95, LOW, HIGH) == 1.0


def test_the_share_moves_a_bounded_step_at_most_once_per_ttl() -> None:
    loads = {"a": Load(level=1.5, at=0.0), "b": Load(level=0.1, at=0.0)}
    out = decide(loads, {}, 0.0, TTL, LOW, HIGH)
    assert out["a"].share == STEP and out["a"].moved == 0.0
    assert out["a"].accept == 0 and out["b"].accept == 1.0  # b's room exceeds the spill
    again = decide(out, {}, TTL - 1, TTL, LOW, HIGH)
    assert again["a"].share == STEP  # not yet a TTL since it moved
    assert decide(again, {}, TTL, TTL, LOW, HIGH)["a"].share == 2 * STEP


def test_shares_are_multiples_of_the_quantum() -> None:
    out = decide({"a": Load(level=0.95, at=0.0), "b": Load(level=0.1, at=0)}, {}, 0, TTL, LOW, HIGH)
    assert out["a"].share == pytest.approx(round(out["a"].share / QUANTUM) * QUANTUM)
    assert 0 < out["a"].share <= STEP


def test_no_room_anywhere_sheds_nothing() -> None:
    loads = {"a": Load(level=1.2, at=0.0), "b": Load(level=0.95, at=0.0)}
    out = decide(loads, {}, 0.0, TTL, LOW, HIGH)
    assert out["a"].share == 0 and out["b"].share == 0
    assert out["b"].accept == 0  # above the band: takes no one's


def test_room_is_weighed_by_size() -> None:
    # An 800-GPU region at 1.2 next to an 8-GPU one at 0.2: the small one can take 8 * 0.635
    # GPUs' worth, 0.5% of the big one's demand, which is less than a quantum.
    loads = {"big": Load(level=1.2, at=0.0), "small": Load(level=0.2, at=0.0)}
    out = decide(loads, {"big": 800, "small": 8}, 0.0, TTL, LOW, HIGH)
    assert out["big"].share == 0
    # The other way round, the big one has room to spare: the small one sheds a full step.
    loads = {"big": Load(level=0.2, at=0.0), "small": Load(level=1.2, at=0.0)}
    assert decide(loads, {"big": 800, "small": 8}, 0.0, TTL, LOW, HIGH)["small"].share == STEP


def test_a_small_region_takes_the_share_of_the_spill_that_fills_its_room() -> None:
    # "big" sheds a step of its 64 GPUs at 1.2 (demand 76.8: 9.6 GPUs' worth shed); "small"
    # (8 GPUs, idle) has 6.68 of room up to the band's middle: it takes 22/32 of the spill,
    # "other" (64 GPUs) everything that reaches it.
    loads = {
        "big": Load(level=1.2, at=0.0),
        "small": Load(level=0.0, at=0.0),
        "other": Load(level=0.0, at=0.0),
    }
    sizes = {"big": 64, "small": 8, "other": 64}
    out = decide(loads, sizes, 0.0, TTL, LOW, HIGH)
    assert out["big"].share == STEP
    assert out["small"].accept == 22 * QUANTUM and out["other"].accept == 1.0
    # The spill doubles a TTL later: small takes no more load than it took, a smaller share.
    loads = {n: replace(x, level=1.2 if n == "big" else 0.4) for n, x in out.items()}
    later = decide(loads, sizes, TTL, TTL, LOW, HIGH)
    assert later["big"].share == 2 * STEP
    spill = 2 * STEP * 1.2 / (1 - STEP) * 64
    assert later["small"].accept == math.floor(out["small"].took / spill / QUANTUM) * QUANTUM
    # Above the band a region takes no one's, at once.
    hot = {**later, "small": replace(later["small"], level=0.95)}
    assert decide(hot, sizes, TTL + 1, TTL, LOW, HIGH)["small"].accept == 0


def test_a_stale_level_is_unknown_and_the_share_is_released() -> None:
    loads = {"a": Load(level=1.2, at=0.0, share=0.5, moved=0.0)}
    out = decide(loads, {}, load.STALE * TTL + 1, TTL, LOW, HIGH)
    assert out["a"].level is None and out["a"].share == 0.5 - STEP


def test_signals_combine_as_the_worst_normalised_to_the_band() -> None:
    assert level({}, CAP) is None
    assert level({"utilization": 0.8}, CAP) == pytest.approx(0.8)
    # 32 waiting is the signal's high: the service's high, whatever the utilization.
    assert level({"utilization": 0.3, "num_requests_waiting": 32}, CAP) == pytest.approx(HIGH)
    assert level({"utilization": 0.9, "num_requests_waiting": 8}, CAP) == pytest.approx(0.9)
    assert level({"num_requests_waiting": 20}, CAP) == pytest.approx((LOW + HIGH) / 2)


def test_pushed_values_are_checked() -> None:
    values, expires = pushed_values({"utilization": 85, "num_requests_waiting": 3}, CAP)
    assert values == {"utilization": 0.85, "num_requests_waiting": 3.0}
    assert expires == load.PUSH_EXPIRES
    assert pushed_values({"utilization": 0.5, "expires": 10}, CAP)[1] == 10
    for body, message in (
        ({"gpu_cache_usage_perc": 0.5}, "unknown key 'gpu_cache_usage_perc'"),
        ({"utilization": "high"}, "is not a number"),
        ({"num_requests_waiting": float("nan")}, "is not a number"),
        ({"num_requests_waiting": True}, "is not a number"),
        ({}, "no signal values"),
        ({"utilization": 0.5, "expires": 0}, "expires: 0 is not above 0"),
        ({"utilization": 0.5, "expires": "soon"}, "expires: 'soon' is not a number"),
    ):
        with pytest.raises(ValueError, match=message):
            pushed_values(body, CAP)


levels = st.one_of(st.none(), st.floats(0, 2))
loads_st = st.builds(
    Load,
    levels,
    st.just(0.0),
    st.integers(0, 32).map(lambda n: n * QUANTUM),
    st.one_of(st.none(), st.floats(-100, 0)),
    st.integers(0, 32).map(lambda n: n * QUANTUM),
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from("abcd"), loads_st, min_size=1), st.floats(0, 60))
def test_shares_stay_quantized_and_move_at_most_a_step(loads: dict[str, Load], now: float) -> None:
    out = decide(loads, {"a": 8, "b": 800}, now, TTL, LOW, HIGH)
    for name, x in out.items():
        assert 0 <= x.share <= 1
        assert x.share == pytest.approx(round(x.share / QUANTUM) * QUANTUM)
        assert abs(x.share - loads[name].share) <= STEP + 1e-9
        if x.share > 0:
            assert x.accept == 0  # a region that sheds takes no one else's clients


def test_a_vanishing_spill_does_not_overflow() -> None:
    # Found by the property above: a shedding region whose level is all but zero.
    loads = {"a": Load(level=0.0, at=0.0), "c": Load(level=1.33e-307, at=0.0, share=0.15625)}
    out = decide(loads, {}, 0.0, TTL, LOW, HIGH)
    assert 0 <= out["a"].accept <= 1
