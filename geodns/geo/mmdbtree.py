"""Every network of a MaxMind DB file, in address order, read from its search tree with numpy.

maxminddb 1.5.4 could not list a database's networks; 2.x and later can, but decode a
record per network into Python objects, and walking the tree node by node in Python takes
about 5 s for DB-IP City Lite's 11.6 million nodes. Here the tree is read into two arrays
and walked one level at a time, each level a handful of array operations: about 3 s for
the whole file.

Format: https://maxmind.github.io/MaxMind-DB/ (search tree section). A record below
`node_count` is a node, equal to it means "no data", above it points into the data section.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EMPTY = -1  # no data for the network
ALIAS = -2  # the network is the IPv4 tree seen again (::ffff:0:0/96, 2002::/16): no one record


@dataclass(frozen=True)
class Networks:
    """The networks of one address family, sorted: where each starts and which record it has.

    `starts` is uint64 for IPv4, and for IPv6 big-endian 16-byte strings ('S16'), which
    numpy compares as the addresses compare. `records` (int32) holds data-section
    offsets, or EMPTY or ALIAS. Networks cover the family's whole address space without gaps.
    """

    bits: int
    starts: np.ndarray
    records: np.ndarray


@dataclass(frozen=True)
class Tree:
    node_count: int
    ip_version: int
    left: np.ndarray
    right: np.ndarray


def read_tree(path: str, node_count: int, record_size: int, ip_version: int) -> Tree:
    """The tree's left and right records as uint32 arrays."""
    if record_size not in (24, 28, 32):
        raise ValueError(f"{path}: unsupported record size {record_size}")
    width = record_size // 4
    # Mapped, not read: the file's pages stay the page cache's to drop.
    try:
        raw = np.memmap(path, dtype=np.uint8, mode="r", shape=(node_count * width,))
    except ValueError as exc:  # the file is shorter than the tree
        raise ValueError(f"{path}: search tree truncated") from exc
    b = raw.reshape(node_count, width)
    half = width // 2
    left = np.zeros(node_count, np.uint32)
    right = np.zeros(node_count, np.uint32)
    # One byte column at a time through one buffer: widening the whole tree to uint32 at
    # once would take four times its size (over 300 MB for DB-IP City Lite).
    tmp = np.empty(node_count, np.uint32)

    parts: list[tuple[np.ndarray, int, int, int]] = []  # (into, byte column, shift, mask)
    if record_size == 28:
        for i in range(3):
            parts += [(left, i, 16 - 8 * i, 0xFF), (right, 4 + i, 16 - 8 * i, 0xFF)]
        parts += [(left, 3, 20, 0xF0), (right, 3, 24, 0x0F)]
    else:
        for i in range(half):
            shift = 8 * (half - 1 - i)
            parts += [(left, i, shift, 0xFF), (right, half + i, shift, 0xFF)]
    for into, i, shift, mask in parts:
        np.copyto(tmp, b[:, i])
        if mask != 0xFF:
            np.bitwise_and(tmp, np.uint32(mask), out=tmp)
        np.left_shift(tmp, np.uint32(shift), out=tmp)
        np.bitwise_or(into, tmp, out=into)
    del b, raw, tmp
    return Tree(node_count, ip_version, left, right)


def networks(tree: Tree) -> dict[int, Networks]:
    """{4: IPv4 networks, 6: IPv6 networks (only for an IPv6 database)}."""
    n = tree.node_count
    if tree.ip_version == 4:
        return {4: _walk(tree, 0, 32, alias=None)}
    # The IPv4 tree hangs at ::/96; a left record that isn't a node there means all of
    # IPv4 is one network.
    node = 0
    for _ in range(96):
        if node >= n:
            break
        node = int(tree.left[node])
    out = {}
    if node >= n:
        out[4] = Networks(32, np.zeros(1, np.uint64), _records(np.array([node]), n))
        v4_root = None
    else:
        out[4] = _walk(tree, node, 32, alias=None)
        v4_root = node
    out[6] = _walk(tree, 0, 128, alias=v4_root)
    return out


def _records(pointers: np.ndarray, n: int) -> np.ndarray:
    """Leaf records as Networks holds them: data-section offsets, or EMPTY."""
    wide = pointers.astype(np.int64)
    # Offsets fit in 32 bits: a data section is far smaller than 2 GiB.
    return np.where(wide == n, EMPTY, wide - n - 16).astype(np.int32)


def _walk(tree: Tree, root: int, bits: int, alias: int | None) -> Networks:
    n = tree.node_count
    wide = bits > 64
    frontier = np.array([root], np.uint32)
    hi = np.zeros(1, np.uint64)  # the first 64 bits of each frontier node's prefix
    lo = np.zeros(1, np.uint64)  # the rest, for IPv6
    starts_hi, starts_lo, records = [], [], []
    depth = 0
    while frontier.size:
        if depth >= bits:
            raise ValueError("search tree deeper than the address length")
        next_nodes, next_hi, next_lo = [], [], []
        for side, side_records in ((0, tree.left), (1, tree.right)):
            child = side_records[frontier]
            c_hi, c_lo = hi, lo
            if side:
                if depth < 64:
                    c_hi = hi | np.uint64(1 << (min(bits, 64) - 1 - depth))
                else:
                    c_lo = lo | np.uint64(1 << (127 - depth))
            leaf = child >= n
            if alias is not None:
                aliased = child == alias
                leaf |= aliased
            rec = _records(child[leaf], n)
            if alias is not None:
                rec[aliased[leaf]] = ALIAS
            records.append(rec)
            starts_hi.append(c_hi[leaf])
            if wide:
                starts_lo.append(c_lo[leaf])
            inner = ~leaf
            next_nodes.append(child[inner])
            next_hi.append(c_hi[inner])
            if wide:
                next_lo.append(c_lo[inner])
        frontier = np.concatenate(next_nodes)
        hi = np.concatenate(next_hi)
        if wide:
            lo = np.concatenate(next_lo)
        depth += 1
    s_hi = np.concatenate(starts_hi)
    del starts_hi
    recs = np.concatenate(records)
    del records
    if not wide:
        order = np.argsort(s_hi, kind="stable")
        return Networks(bits, s_hi[order], recs[order])
    s_lo = np.concatenate(starts_lo)
    del starts_lo
    order = np.lexsort((s_lo, s_hi))
    packed = np.empty((order.size, 2), ">u8")
    packed[:, 0] = s_hi[order]
    packed[:, 1] = s_lo[order]
    return Networks(bits, packed.view("S16").ravel(), recs[order])
