"""Widened ECS scopes: the largest network around a client over which every address gets
the same decision, as gdnsd answers.

A GeoIP network is often much smaller than the stretch of addresses that routing treats
alike (a /24 of one city in a /14 of one country). Runs are the maximal stretches of
consecutive addresses whose records are of one routing class (geodns.routing.classes);
a client's scope is the shortest prefix whose network around it stays inside its run.
Special-purpose blocks (private, documentation, ...) are not looked up by the locator:
their addresses are of the unlocated class, whatever the database holds for them.

Runs are built out of process (geodns.control.scopebuild) and looked up here, once per client
network whose decision is not cached yet.
"""

from __future__ import annotations

import bisect
import functools
import ipaddress
import os
from dataclasses import dataclass

import numpy as np

from geodns.geo.locate import _SPECIAL_V4, _SPECIAL_V6, INTERNAL_BLOCKS
from geodns.geo.mmdbtree import Networks

NO_WIDENING = -1  # a class id for addresses whose scope stays the GeoIP network's

_SPECIAL = {32: _SPECIAL_V4, 128: _SPECIAL_V6}
_MAPPED = "::ffff:0:0/96"


def _key(value: int, bits: int) -> int | bytes:
    return value if bits == 32 else value.to_bytes(16, "big")


def key_value(key: object, bits: int) -> int:
    """The address a run or network start stands for (uint64, or an 'S16' element)."""
    if bits == 32:
        return int(key)  # type: ignore[call-overload]
    # numpy drops trailing NUL bytes from an 'S16' element.
    return int.from_bytes(bytes(key).ljust(16, b"\0"), "big")  # type: ignore[call-overload]


@dataclass(frozen=True)
class Runs:
    """One family's runs: where each starts, and whether its addresses may share a scope."""

    bits: int
    starts: np.ndarray  # uint64 (IPv4) or 'S16' (IPv6), sorted, the first one 0
    widen: np.ndarray  # bool: False where scopes never widen (IPv4-mapped, aliased trees)
    # int64: each run's routing class id (geodns.control.scopebuild.record_classes), NO_WIDENING
    # where the class is not known ahead; None in runs files from before class ids.
    classes: np.ndarray | None = None

    def index(self, value: int) -> int:
        """The run holding the address `value`: one binary search."""
        return bisect.bisect_right(self.keys, value) - 1

    @functools.cached_property
    def keys(self) -> list[int]:
        """Where each run starts, as plain integers: the query path's search table."""
        # Searched one address at a time on the query path: bisect on plain integers costs a
        # quarter of numpy's searchsorted on a scalar (0.5 against 2 us). A list rather than
        # an array("Q"): reading a list's element makes no new int (about 40 bytes a run).
        if self.bits == 32:
            return self.starts.tolist()  # type: ignore[no-any-return]
        return [key_value(k, 128) for k in self.starts]

    @functools.cached_property
    def class_list(self) -> list[int]:
        """Each run's class id as a plain list, for the query path; NO_WIDENING throughout
        in runs files from before class ids."""
        if self.classes is None:
            return [NO_WIDENING] * len(self.starts)
        return self.classes.tolist()  # type: ignore[no-any-return]

    def class_at(self, value: int) -> int:
        """The routing class of the address `value`; NO_WIDENING when not known ahead (or
        the runs have no class ids)."""
        if self.classes is None:
            return NO_WIDENING
        return int(self.classes[self.index(value)])

    def representatives(self) -> dict[int, int]:
        """One address of each class: the start of its first run. Locating it gives a
        record of that class (or none, for the unlocated class), which is all routing reads
        of a client; NO_WIDENING has none."""
        if self.classes is None:
            return {}
        ids, first = np.unique(self.classes, return_index=True)
        return {
            int(c): key_value(self.starts[i], self.bits)
            for c, i in zip(ids.tolist(), first.tolist(), strict=True)
            if c != NO_WIDENING
        }

    def scope(self, value: int, prefix: int) -> int:
        """The shortest prefix whose network around `value` lies in one run, never longer
        than `prefix` (the scope already known to hold)."""
        return self.scope_in(self.index(value), value, prefix)

    def scope_in(self, i: int, value: int, prefix: int) -> int:
        """`scope`, with the run `i` holding `value` already found. On the query path of
        every uncached ECS query (the class path), so plain integers only."""
        if not self.widen[i]:
            return prefix
        bits = self.bits
        keys = self.keys
        shortest = 0
        # A network of length q around `value` holds the address x iff the two agree on
        # their first q bits, i.e. iff (value ^ x).bit_length() <= bits - q.
        start = keys[i]
        if start > 0:
            shortest = bits + 1 - (value ^ (start - 1)).bit_length()
        if i + 1 < len(keys):
            after = bits + 1 - (value ^ keys[i + 1]).bit_length()
            if after > shortest:
                shortest = after
        return shortest if shortest < prefix else prefix


def build_runs(
    nets: Networks,
    leaf_class: np.ndarray,
    special_class: int = NO_WIDENING,
    has_data: np.ndarray | None = None,
) -> Runs:
    """Runs from a family's networks and each network's class id (NO_WIDENING, or >= 0).

    Special-purpose blocks are not looked up, so they take `special_class` (the unlocated
    class, when the caller knows it), except an internal block (geodns.geo.locate
    INTERNAL_BLOCKS) where the database has data (`has_data`, per network): an
    organisation's own database placing its networks. Those are located network by
    network and never widen, so the block is NO_WIDENING: no neighbour's run reaches in.
    IPv4-mapped IPv6 addresses are looked up as IPv4 and never widen.
    """
    bits = nets.bits
    starts = nets.starts
    classes = leaf_class.astype(np.int64)
    edges = []
    blocks = []  # (text, first, end, class), applied in order: the mapped block comes last
    full = 1 << bits
    texts = [(text, special_class) for text in _SPECIAL[bits]]
    if bits == 128:
        texts.append((_MAPPED, NO_WIDENING))
    for text, cls in texts:
        net = ipaddress.ip_network(text)
        first = int(net.network_address)
        end = first + net.num_addresses
        blocks.append((text, first, end, cls))
        edges.append(first)
        if end < full:
            edges.append(end)
    extra = np.unique(np.array([_key(e, bits) for e in edges], dtype=starts.dtype))
    at = np.searchsorted(starts, extra)
    new = extra[(at == len(starts)) | (starts[np.minimum(at, len(starts) - 1)] != extra)]
    at = np.searchsorted(starts, new)
    cut = np.insert(starts, at, new)
    classes = np.insert(classes, at, classes[at - 1])  # a cut inside a network: its class
    data = None if has_data is None else np.insert(has_data, at, has_data[at - 1])
    scalar = starts.dtype.type
    for text, first, end, cls in blocks:
        lo = np.searchsorted(cut, scalar(_key(first, bits)), side="left")
        hi = np.searchsorted(cut, scalar(_key(end, bits))) if end < full else len(cut)
        if data is not None and text in INTERNAL_BLOCKS and data[lo:hi].any():
            cls = NO_WIDENING
        classes[lo:hi] = cls
    # A run starts wherever the class changes; NO_WIDENING stretches are runs too, and a
    # lookup in one keeps the GeoIP scope.
    change = np.ones(len(cut), bool)
    change[1:] = classes[1:] != classes[:-1]
    kept = classes[change]
    return Runs(bits, cut[change], kept != NO_WIDENING, kept)


@dataclass(frozen=True)
class ScopeFiles:
    """What a worker needs to widen scopes: runs files by class fingerprint, built from
    the GeoIP file version `file_key`."""

    file_key: str
    files: dict[str, str]


@dataclass(frozen=True)
class ScopeRuns:
    """Both families' runs for one service class fingerprint and one database file."""

    v4: Runs
    v6: Runs | None  # None for an IPv4-only database: every IPv6 address is unlocated

    def scope(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address, prefix: int) -> int:
        if address.version == 4:
            return self.v4.scope(int(address), prefix)
        if self.v6 is None:
            return prefix
        return self.v6.scope(int(address), prefix)

    def save(self, path: str) -> None:
        """Write atomically (a reader never sees half a file)."""
        arrays = {"v4_starts": self.v4.starts, "v4_widen": self.v4.widen}
        if self.v4.classes is not None:
            arrays["v4_classes"] = self.v4.classes
        if self.v6 is not None:
            arrays |= {"v6_starts": self.v6.starts, "v6_widen": self.v6.widen}
            if self.v6.classes is not None:
                arrays["v6_classes"] = self.v6.classes
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str) -> ScopeRuns:
        with np.load(path) as data:
            v4 = Runs(32, data["v4_starts"], data["v4_widen"], data.get("v4_classes"))
            v6 = None
            if "v6_starts" in data:
                v6 = Runs(128, data["v6_starts"], data["v6_widen"], data.get("v6_classes"))
        return cls(v4, v6)
