"""geodns.geo.scopes: run lookups against a brute force, runs built around special-purpose
blocks, and the runs file round trip."""

from __future__ import annotations

import ipaddress
import random
from bisect import bisect_right
from functools import cache
from pathlib import Path

import numpy as np
import pytest

from geodns.geo.locate import _SPECIAL_V4, _SPECIAL_V6
from geodns.geo.mmdbtree import Networks
from geodns.geo.scopes import NO_WIDENING, Runs, ScopeRuns, build_runs

SPECIAL = {32: _SPECIAL_V4, 128: _SPECIAL_V6}


def keys(values: list[int], bits: int) -> np.ndarray:
    """Run or network starts as mmdbtree stores them: uint64, or big-endian 'S16'."""
    if bits == 32:
        return np.array(values, np.uint64)
    return np.array([v.to_bytes(16, "big") for v in values], "S16")


def ints(starts: np.ndarray, bits: int) -> list[int]:
    if bits == 32:
        return [int(s) for s in starts]
    # numpy drops the trailing NUL bytes of an 'S16' element.
    return [int.from_bytes(bytes(s).ljust(16, b"\0"), "big") for s in starts]


def make_runs(starts: list[int], widen: list[bool], bits: int) -> Runs:
    return Runs(bits, keys(starts, bits), np.array(widen, bool))


def brute_scope(starts: list[int], widen: list[bool], bits: int, value: int, prefix: int) -> int:
    """The shortest q whose network around `value` fits in value's run, walking q up from 0."""
    i = bisect_right(starts, value) - 1
    if not widen[i]:
        return prefix
    first = starts[i]
    end = starts[i + 1] if i + 1 < len(starts) else 1 << bits
    for q in range(bits + 1):
        size = 1 << (bits - q)
        network = value - value % size
        if first <= network and network + size <= end:
            return min(q, prefix)
    raise AssertionError("a /bits network always fits")


def random_starts(rng: random.Random, bits: int, count: int) -> list[int]:
    """0 and count - 1 other starts: some on prefix boundaries, some anywhere, some adjacent."""
    full = 1 << bits
    out = {0}
    while len(out) < count:
        kind = rng.randrange(4)
        if kind == 0:  # a prefix boundary
            q = rng.randrange(1, bits + 1)
            out.add(rng.randrange(1 << q) << (bits - q))
        elif kind == 1:
            out.add(rng.randrange(full))
        elif kind == 2:  # next to one already there
            near = rng.choice(sorted(out)) + rng.choice((1, 2, -1))
            if 0 <= near < full:
                out.add(near)
        else:  # near the top, so that the last run is small
            out.add(full - rng.randrange(1, 1 << min(bits, 20)))
    return sorted(out)


def probe_values(rng: random.Random, starts: list[int], bits: int) -> list[int]:
    """Values at and next to every run edge, both ends of the space, and random ones."""
    full = 1 << bits
    values = {0, full - 1}
    for s in starts:
        values |= {s, s - 1, s + 1}
    values |= {rng.randrange(full) for _ in range(10)}
    for s in rng.sample(starts, min(3, len(starts))):  # inside a run, near its start
        values.add(s + rng.randrange(1 << rng.randrange(bits)))
    return sorted(v for v in values if 0 <= v < full)


@pytest.mark.parametrize("bits", [32, 128])
def test_scope_matches_brute_force(bits: int) -> None:
    rng = random.Random(bits)
    checked = widened = 0
    for _ in range(400):
        starts = random_starts(rng, bits, rng.randrange(1, 9))
        widen = [rng.random() < 0.8 for _ in starts]
        runs = make_runs(starts, widen, bits)
        for value in probe_values(rng, starts, bits):
            for prefix in {bits, rng.randrange(bits + 1)}:
                expected = brute_scope(starts, widen, bits, value, prefix)
                got = runs.scope(value, prefix)
                assert got == expected, (starts, widen, value, prefix)
                checked += 1
                widened += got < prefix
    assert checked > 10_000 and widened > checked // 4


@pytest.mark.parametrize("bits", [32, 128])
def test_scope_of_one_run(bits: int) -> None:
    full = 1 << bits
    whole = make_runs([0], [True], bits)
    for value in (0, 1, full // 2, full - 1):
        assert whole.scope(value, bits) == 0
        assert whole.scope(value, 7) == 0
    kept = make_runs([0], [False], bits)
    assert kept.scope(full // 2, 13) == 13 and kept.scope(0, bits) == bits


@pytest.mark.parametrize("bits", [32, 128])
def test_scope_at_run_edges(bits: int) -> None:
    full = 1 << bits
    half = full // 2
    # [0, half) and [half, full): the halves, /1 each, whatever the address.
    runs = make_runs([0, half], [True, True], bits)
    for value in (0, half - 1, half, full - 1):
        assert runs.scope(value, bits) == 1
    # A one-address run, and its neighbours' edges.
    runs = make_runs([0, half, half + 1], [True, True, True], bits)
    assert runs.scope(half, bits) == bits
    assert runs.scope(half - 1, bits) == 1  # [0, half) is a /1
    assert runs.scope(half + 1, bits) == bits  # half + 1 is odd: only its own /bits fits
    assert runs.scope(full - 1, bits) == 2  # the top quarter lies in [half + 1, full)
    # A run that isn't aligned: [3, 13) holds 4/30-style blocks (size 4 at 4 and at 8).
    runs = make_runs([0, 3, 13], [True, True, True], bits)
    assert [runs.scope(v, bits) for v in range(3, 13)] == [
        bits,
        *[bits - 2] * 4,
        *[bits - 2] * 4,
        bits,
    ]
    # A non-widening run keeps the prefix, even where a neighbour would widen.
    runs = make_runs([0, half, half + 4], [True, False, True], bits)
    assert runs.scope(half + 2, bits - 1) == bits - 1
    assert runs.scope(half - 1, bits) == 1


# --- build_runs ----------------------------------------------------------------------------


@cache
def special_blocks(bits: int) -> tuple[tuple[int, int], ...]:
    out = []
    for text in SPECIAL[bits]:
        net = ipaddress.ip_network(text)
        out.append((int(net.network_address), int(net.network_address) + net.num_addresses))
    return tuple(out)


def effective_class(value: int, starts: list[int], classes: list[int], bits: int) -> int:
    if any(first <= value < end for first, end in special_blocks(bits)):
        return NO_WIDENING
    return classes[bisect_right(starts, value) - 1]


def expected_runs(starts: list[int], classes: list[int], bits: int) -> tuple[list[int], list[bool]]:
    """Runs from first principles: wherever the class an address has (NO_WIDENING inside a
    special-purpose block) differs from the one of the address before it."""
    edges = set(starts)
    for first, end in special_blocks(bits):
        edges |= {first, end}
    edges.discard(1 << bits)
    runs = [
        e
        for e in sorted(edges)
        if e == 0
        or effective_class(e, starts, classes, bits)
        != effective_class(e - 1, starts, classes, bits)
    ]
    return runs, [effective_class(r, starts, classes, bits) != NO_WIDENING for r in runs]


def nets_of(starts: list[int], bits: int) -> Networks:
    return Networks(bits, keys(starts, bits), np.arange(len(starts), dtype=np.int64))


def check_runs(runs: Runs, starts: list[int], classes: list[int], bits: int) -> None:
    want_starts, want_widen = expected_runs(starts, classes, bits)
    assert runs.bits == bits
    assert runs.starts.dtype == keys([0], bits).dtype
    assert ints(runs.starts, bits) == want_starts
    assert runs.widen.tolist() == want_widen
    # No widening run touches a special-purpose block.
    got = ints(runs.starts, bits)
    for i, first in enumerate(got):
        end = got[i + 1] if i + 1 < len(got) else 1 << bits
        if runs.widen[i]:
            for s_first, s_end in special_blocks(bits):
                assert end <= s_first or s_end <= first


def random_networks(rng: random.Random, bits: int) -> tuple[list[int], list[int]]:
    """Network starts, some of them on or next to special blocks' edges, and classes that
    often repeat (so that runs merge), some of them NO_WIDENING."""
    full = 1 << bits
    edges = [e for block in special_blocks(bits) for e in block if e < full]
    starts = {0}
    for _ in range(rng.randrange(1, 40)):
        kind = rng.randrange(3)
        if kind == 0:
            starts.add(min(full - 1, max(0, rng.choice(edges) + rng.choice((-1, 0, 0, 1)))))
        elif kind == 1 and bits == 128:  # global unicast, 2000::/3
            starts.add((1 << 125) + rng.randrange(1 << 125))
        else:
            starts.add(rng.randrange(full))
    ordered = sorted(starts)
    classes = []
    for _ in ordered:
        if classes and rng.random() < 0.5:
            classes.append(classes[-1])
        else:
            classes.append(rng.choice((NO_WIDENING, 0, 1, 2)))
    return ordered, classes


@pytest.mark.parametrize("bits", [32, 128])
def test_build_runs_matches_first_principles(bits: int) -> None:
    rng = random.Random(1000 + bits)
    for _ in range(150):
        starts, classes = random_networks(rng, bits)
        runs = build_runs(nets_of(starts, bits), np.array(classes, np.int64))
        check_runs(runs, starts, classes, bits)
        for value in probe_values(rng, ints(runs.starts, bits), bits):
            prefix = rng.choice((bits, rng.randrange(bits + 1)))
            expected = brute_scope(
                ints(runs.starts, bits), runs.widen.tolist(), bits, value, prefix
            )
            assert runs.scope(value, prefix) == expected


def v4(text: str) -> int:
    return int(ipaddress.IPv4Address(text))


def v6(text: str) -> int:
    return int(ipaddress.IPv6Address(text))


def test_special_blocks_never_widen_with_one_class_everywhere() -> None:
    for bits, make in ((32, ipaddress.IPv4Network), (128, ipaddress.IPv6Network)):
        runs = build_runs(nets_of([0], bits), np.zeros(1, np.int64))
        check_runs(runs, [0], [0], bits)
        for text in SPECIAL[bits]:
            net = make(text)
            for value in (int(net.network_address), int(net.broadcast_address)):
                assert runs.scope(value, bits) == bits, text
                assert runs.scope(value, net.prefixlen) == net.prefixlen, text
    runs = build_runs(nets_of([0], 32), np.zeros(1, np.int64))
    # Next to 10.0.0.0/8: 11.0.0.0/8, since 8.0.0.0/5 would hold 10.0.0.0/8.
    assert runs.scope(v4("11.0.0.1"), 32) == 8
    assert runs.scope(v4("9.255.255.255"), 32) == 7  # 8.0.0.0/7
    assert runs.scope(v4("1.2.3.4"), 32) == 8  # 0.0.0.0/8 is special
    assert runs.scope(v4("192.169.0.1"), 32) == 16  # not 192.168.0.0/15
    assert runs.scope(v4("8.8.8.8"), 24) == 7  # wider than the GeoIP network
    assert runs.scope(v4("10.1.2.3"), 24) == 24
    assert runs.scope(v4("192.168.1.1"), 17) == 17
    assert runs.scope(v4("203.0.113.5"), 24) == 24
    runs6 = build_runs(nets_of([0], 128), np.zeros(1, np.int64))
    assert runs6.scope(v6("fd00::1"), 48) == 48  # fc00::/7
    assert runs6.scope(v6("fe80::1"), 64) == 64
    assert runs6.scope(v6("2001:db8::1"), 48) == 48
    # 2400::/6, since 2000::/5 would hold 2001::/23.
    assert runs6.scope(v6("2400::1"), 48) == 6
    assert runs6.scope(v6("2a02:2770::1"), 32) == 5  # 2800::/5


def test_networks_merge_into_runs_of_one_class() -> None:
    starts = [v4(a) for a in ("0.0.0.0", "1.0.0.0", "2.0.0.0", "4.0.0.0", "8.0.0.0", "9.0.0.0")]
    classes = [3, 3, 3, 5, 5, 3]
    runs = build_runs(nets_of(starts, 32), np.array(classes, np.int64))
    check_runs(runs, starts, classes, 32)
    assert ints(runs.starts, 32)[:6] == [
        0,  # 0.0.0.0/8, special
        v4("1.0.0.0"),  # 1.0.0.0/8 and 2.0.0.0/7 merged
        v4("4.0.0.0"),  # 4.0.0.0/6 and 8.0.0.0/8 merged
        v4("9.0.0.0"),
        v4("10.0.0.0"),  # special
        v4("11.0.0.0"),  # class 3 again, up to the next special block
    ]
    assert runs.widen.tolist()[:6] == [False, True, True, True, False, True]
    assert runs.scope(v4("2.0.0.1"), 32) == 7  # 2.0.0.0/7 in [1.0.0.0, 4.0.0.0)
    assert runs.scope(v4("5.1.2.3"), 32) == 6  # 4.0.0.0/6 in [4.0.0.0, 9.0.0.0)
    assert runs.scope(v4("8.1.2.3"), 32) == 8  # 8.0.0.0/8: 8.0.0.0/7 would hold 9.x
    assert runs.scope(v4("9.1.2.3"), 32) == 8  # 9.0.0.0/8, between 8.x and 10.x


def test_a_network_across_a_special_block_is_cut() -> None:
    # 96.0.0.0/3 holds 100.64.0.0/10 and 127.0.0.0/8: cut into 96.0.0.0-100.63.255.255,
    # 100.128.0.0-126.255.255.255 of its class, and the blocks themselves.
    starts = [0, v4("96.0.0.0"), v4("128.0.0.0")]
    classes = [1, 2, 1]
    runs = build_runs(nets_of(starts, 32), np.array(classes, np.int64))
    check_runs(runs, starts, classes, 32)
    assert runs.scope(v4("100.128.0.1"), 32) == 9  # 100.128.0.0/9
    assert runs.scope(v4("100.63.255.255"), 32) == 10  # 100.0.0.0/10
    assert runs.scope(v4("100.64.0.1"), 24) == 24
    assert runs.scope(v4("96.0.0.1"), 32) == 6  # 96.0.0.0/6 ends at 100.0.0.0


def test_no_widening_networks_keep_their_prefix() -> None:
    starts = [0, v4("20.0.0.0"), v4("21.0.0.0"), v4("22.0.0.0")]
    classes = [0, NO_WIDENING, NO_WIDENING, 0]
    runs = build_runs(nets_of(starts, 32), np.array(classes, np.int64))
    check_runs(runs, starts, classes, 32)
    assert runs.scope(v4("21.5.5.5"), 20) == 20
    assert runs.scope(v4("19.0.0.1"), 32) == 6  # 16.0.0.0/6 ends at 20.0.0.0
    assert runs.scope(v4("22.0.0.1"), 32) == 7  # 22.0.0.0/7


def test_ipv6_starts_with_trailing_zero_bytes() -> None:
    # 'S16' elements lose their trailing NUL bytes when taken out of the array.
    starts = [0, v6("2000::"), v6("2a00::"), v6("2a00::1:0"), v6("2c00::")]
    classes = [0, 1, 2, 1, 3]
    runs = build_runs(nets_of(starts, 128), np.array(classes, np.int64))
    check_runs(runs, starts, classes, 128)
    assert runs.scope(v6("2a00::"), 128) == 112  # [2a00::, 2a00::1:0)
    assert runs.scope(v6("2a00::ffff"), 56) == 56
    assert runs.scope(v6("2a00::1:0"), 128) == 112  # 2a00::1:0/112 fits before 2a00::2:0


# --- ScopeRuns ----------------------------------------------------------------------------


def sample_scope_runs(with_v6: bool) -> ScopeRuns:
    rng = random.Random(7)
    starts4, classes4 = random_networks(rng, 32)
    r4 = build_runs(nets_of(starts4, 32), np.array(classes4, np.int64))
    r6 = None
    if with_v6:
        starts6, classes6 = random_networks(rng, 128)
        r6 = build_runs(nets_of(starts6, 128), np.array(classes6, np.int64))
    return ScopeRuns(r4, r6)


@pytest.mark.parametrize("with_v6", [True, False])
def test_scope_runs_save_and_load(tmp_path: Path, with_v6: bool) -> None:
    runs = sample_scope_runs(with_v6)
    path = tmp_path / "runs.npz"
    runs.save(str(path))
    assert [p.name for p in tmp_path.iterdir()] == ["runs.npz"]  # no temporary file left
    loaded = ScopeRuns.load(str(path))
    pairs = [(runs.v4, loaded.v4)]
    if with_v6:
        assert loaded.v6 is not None and runs.v6 is not None
        pairs.append((runs.v6, loaded.v6))
    else:
        assert loaded.v6 is None
    for before, after in pairs:
        assert after.bits == before.bits
        assert after.starts.dtype == before.starts.dtype
        assert after.widen.dtype == np.bool_
        assert np.array_equal(after.starts, before.starts)
        assert np.array_equal(after.widen, before.widen)
    rng = random.Random(8)
    for _ in range(300):
        a4 = ipaddress.IPv4Address(rng.randrange(1 << 32))
        a6 = ipaddress.IPv6Address(rng.randrange(1 << 128))
        for address, prefix in ((a4, rng.randrange(33)), (a6, rng.randrange(129))):
            assert loaded.scope(address, prefix) == runs.scope(address, prefix)
    # Saving again replaces the file.
    other = sample_scope_runs(not with_v6)
    other.save(str(path))
    assert (ScopeRuns.load(str(path)).v6 is None) == with_v6


def test_scope_runs_dispatch_by_family() -> None:
    v4_runs = build_runs(nets_of([0], 32), np.zeros(1, np.int64))
    v6_runs = build_runs(nets_of([0], 128), np.zeros(1, np.int64))
    both = ScopeRuns(v4_runs, v6_runs)
    assert both.scope(ipaddress.IPv4Address("11.0.0.1"), 32) == 8
    assert both.scope(ipaddress.IPv6Address("2400::1"), 48) == 6
    v4_only = ScopeRuns(v4_runs, None)
    assert v4_only.scope(ipaddress.IPv6Address("2400::1"), 48) == 48
    assert v4_only.scope(ipaddress.IPv4Address("11.0.0.1"), 24) == 8
