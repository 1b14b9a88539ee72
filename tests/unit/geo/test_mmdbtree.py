"""geodns.geo.mmdbtree: every network of a MaxMind DB file, checked against maxminddb's lookups.

Each network must be a power-of-two block aligned at its start, and the reader must give
its first and its last address exactly that prefix length, with data exactly where the
record is not EMPTY and the data stored at the record's offset. Databases are written by
mmdb-writer (with each record size, and with aliases to the IPv4 subtree linked in by
hand), and the embedded DB-IP file is sampled.
"""

from __future__ import annotations

import ipaddress
import mmap
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import maxminddb
import numpy as np
import pytest
from maxminddb.decoder import Decoder
from mmdb_writer import MMDBWriter, SearchTreeNode, TreeWriter
from netaddr import IPSet

from geodns.geo.embedded import embedded_path
from geodns.geo.mmdbtree import ALIAS, EMPTY, Networks, networks, read_tree
from tests.geo_fixtures import TEST_NETWORKS, build_test_mmdb

V4_IN_V6 = 96  # the IPv4 subtree of an IPv6 database hangs at ::/96


def _int(nets: Networks, i: int) -> int:
    """The start of network i as an int (an 'S16' element loses its trailing NUL bytes)."""
    if nets.bits == 32:
        return int(nets.starts[i])
    return int.from_bytes(bytes(nets.starts[i]).ljust(16, b"\0"), "big")


def _bounds(nets: Networks, i: int) -> tuple[int, int]:
    """[start, end) of network i."""
    end = _int(nets, i + 1) if i + 1 < len(nets.starts) else 1 << nets.bits
    return _int(nets, i), end


def _prefix(nets: Networks, i: int) -> int:
    """Network i's prefix length, after checking that it is an aligned power-of-two block."""
    start, end = _bounds(nets, i)
    size = end - start
    assert size > 0, f"network {i} is empty or out of order"
    assert size & (size - 1) == 0, f"network {i} holds {size} addresses"
    assert start % size == 0, f"network {i} ({start:#x}, {size} addresses) is not aligned"
    return nets.bits - (size.bit_length() - 1)


def _address(nets: Networks, value: int) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.IPv4Address(value) if nets.bits == 32 else ipaddress.IPv6Address(value)


def _network_text(nets: Networks, i: int) -> str:
    return f"{_address(nets, _int(nets, i))}/{_prefix(nets, i)}"


class Database:
    """A MaxMind DB file opened with maxminddb, its networks, and a decoder for its records."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self.reader = maxminddb.open_database(self.path)
        meta = self.reader.metadata()
        self.meta = meta
        tree = read_tree(self.path, meta.node_count, meta.record_size, meta.ip_version)
        self.nets = networks(tree)
        self._file = open(self.path, "rb")  # noqa: SIM115 - closed in close()
        self._map = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ)
        self._data_start = meta.node_count * meta.record_size // 4 + 16
        self._decoder = Decoder(self._map, self._data_start)

    def at_offset(self, offset: int) -> Any:
        """The data stored at a data-section offset."""
        return self._decoder.decode(self._data_start + offset)[0]

    def close(self) -> None:
        self.reader.close()
        self._map.close()
        self._file.close()

    def check(self, family: int, i: int) -> Any:
        """Check network i of `family` against the reader; its data (or None)."""
        nets = self.nets[family]
        prefix = _prefix(nets, i)
        start, end = _bounds(nets, i)
        record = int(nets.records[i])
        where = _network_text(nets, i)
        found = []
        for value in (start, end - 1):
            data, got = self.reader.get_with_prefix_len(_address(nets, value))
            if record == ALIAS:
                # The IPv4 tree seen again: the 32 bits after the alias's prefix are the
                # IPv4 address looked up, and the prefix continues into the IPv4 tree.
                assert family == 6
                v4 = (value >> (128 - prefix - 32)) & 0xFFFFFFFF
                v4_data, v4_prefix = self.reader.get_with_prefix_len(ipaddress.IPv4Address(v4))
                assert (data, got) == (v4_data, prefix + v4_prefix), where
            else:
                assert got == prefix, f"{where}: the reader says /{got} at {value:#x}"
                assert (data is None) == (record == EMPTY), f"{where}: {data!r}, {record}"
                if record != EMPTY:
                    assert self.at_offset(record) == data, where
            found.append(data)
        if record != ALIAS:
            assert found[0] == found[1], where
        return found[0]

    def check_all(self) -> None:
        for family, nets in self.nets.items():
            check_order(nets)
            by_offset: dict[int, Any] = {}
            for i in range(len(nets.starts)):
                data = self.check(family, i)
                record = int(nets.records[i])
                if record >= 0:
                    assert by_offset.setdefault(record, data) == data, _network_text(nets, i)


@pytest.fixture
def open_db() -> Iterator[Any]:
    opened: list[Database] = []

    def _open(path: str | Path) -> Database:
        db = Database(path)
        opened.append(db)
        return db

    yield _open
    for db in opened:
        db.close()


def check_order(nets: Networks) -> None:
    """Sorted, distinct, starting at 0, one record per network."""
    assert nets.starts.dtype == (np.uint64 if nets.bits == 32 else np.dtype("S16"))
    assert len(nets.starts) == len(nets.records) > 0
    assert _int(nets, 0) == 0
    assert bool(np.all(nets.starts[1:] > nets.starts[:-1]))
    assert bool(np.all((nets.records >= 0) | (nets.records == EMPTY) | (nets.records == ALIAS)))


def aliases(nets: Networks) -> set[str]:
    return {_network_text(nets, int(i)) for i in np.flatnonzero(nets.records == ALIAS)}


# Networks that split one another (a supernet inserted before its subnets is copied onto
# every side branch, so many networks share one record), that touch both ends of each
# family, and share records across families.
SHARED = {"shared": True}
RICH_V4: dict[str, Any] = {
    "0.0.0.0/32": {"n": "first"},
    "1.0.0.0/8": {"n": "1/8"},
    "1.2.3.0/24": {"n": "1.2.3/24"},
    "1.2.3.128/25": SHARED,
    "8.8.8.8/32": {"n": "8.8.8.8", "list": [1, 2.5, "x"]},
    "81.2.69.0/24": {},  # an empty map is data all the same
    "128.0.0.0/2": {"n": "128/2"},
    "172.16.0.0/12": SHARED,
    "255.255.255.255/32": {"n": "last"},
}
RICH_V6: dict[str, Any] = {
    "2001:480::/32": {"n": "2001:480::/32"},
    "2001:480:10::/48": SHARED,
    "2400::/12": {"n": "2400::/12"},
    "2a02:2770::/32": {"n": 7},
    "fe80::/10": SHARED,
    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128": {"n": "last"},
}


def write_db(
    path: Path,
    records: dict[str, Any],
    ip_version: int = 6,
    record_size: int | None = None,
    alias: tuple[str, ...] = (),
) -> Path:
    """Write `records` with mmdb-writer; record_size forces a record size at least as large as
    the one mmdb-writer picks; `alias` networks point at the IPv4 subtree (::/96)."""
    writer = MMDBWriter(
        ip_version=ip_version, ipv4_compatible=ip_version == 6, database_type="geodns-test"
    )
    for network, record in records.items():
        writer.insert_network(IPSet([network]), record)
    if alias:
        v4_root = writer.tree
        for _ in range(V4_IN_V6):
            v4_root = v4_root.left
        assert isinstance(v4_root, SearchTreeNode)
        for text in alias:
            net = ipaddress.IPv6Network(text)
            value = int(net.network_address)
            path_bits = [(value >> (127 - d)) & 1 for d in range(net.prefixlen)]
            node = writer.tree
            for bit in path_bits[:-1]:
                node = node.get_or_create(bit)
                assert isinstance(node, SearchTreeNode), f"{text} is inside a network"
            node[path_bits[-1]] = v4_root  # the one node object: one node in the file
    tree_writer = TreeWriter(writer.tree, writer._build_meta(), writer.int_type, writer.float_type)
    if record_size is not None:
        natural = tree_writer._adjust_record_size

        def forced() -> None:
            natural()
            assert tree_writer.record_size <= record_size
            tree_writer.record_size = record_size

        tree_writer._adjust_record_size = forced  # type: ignore[method-assign]
    tree_writer.write(str(path))
    return path


# --- the test City databases -------------------------------------------------------------


def test_city_database_ipv6(city_mmdb: Path, open_db: Any) -> None:
    db = open_db(city_mmdb)
    assert (db.meta.ip_version, db.meta.record_size) == (6, 24)
    assert set(db.nets) == {4, 6}
    assert db.nets[4].bits == 32 and db.nets[6].bits == 128
    db.check_all()
    # mmdb-writer links nothing back into the IPv4 tree: ::ffff:0:0/96 and 2002::/16 are
    # plain (empty) IPv6 space in its files. The only alias is the way into the IPv4 tree
    # itself, ::/96, whose networks are the IPv4 family's.
    assert aliases(db.nets[6]) == {"::/96"}
    for address in ("::ffff:1.2.3.4", "2002:102:304::"):
        assert db.reader.get_with_prefix_len(address)[0] is None


def test_city_database_every_test_network_is_one_network(city_mmdb: Path, open_db: Any) -> None:
    db = open_db(city_mmdb)
    listed = {4: set(), 6: set()}
    for family, nets in db.nets.items():
        for i in np.flatnonzero(nets.records >= 0):
            listed[family].add(_network_text(nets, int(i)))
    for network in TEST_NETWORKS:
        family = ipaddress.ip_network(network).version
        assert network in listed[family]
    assert len(listed[4]) + len(listed[6]) == len(TEST_NETWORKS)


def test_city_database_ipv4_only(tmp_path: Path, open_db: Any) -> None:
    db = open_db(build_test_mmdb(tmp_path / "city4.mmdb", ip_version=4))
    assert db.meta.ip_version == 4
    assert set(db.nets) == {4}
    db.check_all()
    assert not (db.nets[4].records == ALIAS).any()


@pytest.mark.parametrize("ip_version", [4, 6])
def test_rich_database(tmp_path: Path, open_db: Any, ip_version: int) -> None:
    records = RICH_V4 | (RICH_V6 if ip_version == 6 else {})
    db = open_db(write_db(tmp_path / "rich.mmdb", records, ip_version))
    db.check_all()
    v4 = db.nets[4]
    assert v4.records[0] >= 0 and v4.records[-1] >= 0  # 0.0.0.0 and 255.255.255.255
    # Every network of 1.0.0.0/8 but 1.2.3.0/24 (and its half) has the /8's one record.
    within = [i for i in range(len(v4.starts)) if _int(v4, i) >> 24 == 1]
    assert len({int(v4.records[i]) for i in within}) == 3
    if ip_version == 6:
        assert db.nets[6].records[-1] >= 0  # ffff:...:ffff


def test_aliases_to_the_ipv4_tree(tmp_path: Path, open_db: Any) -> None:
    """As libmaxminddb's writer does: ::ffff:0:0/96 and 2002::/16 are the IPv4 tree again."""
    db = open_db(
        write_db(tmp_path / "alias.mmdb", RICH_V4 | RICH_V6, alias=("::ffff:0:0/96", "2002::/16"))
    )
    db.check_all()  # which checks lookups through each alias against the IPv4 lookup
    assert aliases(db.nets[6]) == {"::/96", "::ffff:0:0/96", "2002::/16"}
    assert db.reader.get_with_prefix_len("2002:808:808::") == (
        {"n": "8.8.8.8", "list": [1, 2.5, "x"]},
        48,
    )
    assert db.reader.get_with_prefix_len("::ffff:1.2.3.200") == (SHARED, 96 + 25)


def test_ipv6_database_without_an_ipv4_tree(tmp_path: Path, open_db: Any) -> None:
    """No node at ::/96: all of IPv4 is one network, the record on the way there."""
    db = open_db(write_db(tmp_path / "none.mmdb", {"2001:480::/32": {"n": 1}}))
    db.check_all()
    assert db.nets[4].starts.tolist() == [0] and db.nets[4].records.tolist() == [EMPTY]
    assert db.reader.get_with_prefix_len("1.2.3.4") == (None, 0)

    db = open_db(write_db(tmp_path / "wide.mmdb", {"::/64": {"n": 1}, "2001:480::/32": {"n": 2}}))
    db.check_all()
    assert db.nets[4].starts.tolist() == [0] and db.nets[4].records[0] >= 0
    assert db.reader.get_with_prefix_len("1.2.3.4") == ({"n": 1}, 0)
    assert not (db.nets[6].records == ALIAS).any()


# --- record sizes ------------------------------------------------------------------------
# mmdb-writer picks the smallest record size that holds its largest record value (node
# count + data section size); it has no option for it. Its TreeWriter is asked for a larger
# one here, and a 16 MiB record makes it pick 28 bits by itself, so that record values
# above 2**24 use the 28-bit format's shared middle nibble and the 32-bit format's top byte.


@pytest.mark.parametrize("record_size", [24, 28, 32])
@pytest.mark.parametrize("ip_version", [4, 6])
def test_each_record_size(tmp_path: Path, open_db: Any, record_size: int, ip_version: int) -> None:
    records = RICH_V4 | (RICH_V6 if ip_version == 6 else {})
    path = write_db(tmp_path / "sized.mmdb", records, ip_version, record_size=record_size)
    db = open_db(path)
    assert db.meta.record_size == record_size
    db.check_all()


@pytest.mark.parametrize("record_size", [None, 32])
def test_record_values_above_2_to_the_24(
    tmp_path: Path, open_db: Any, record_size: int | None
) -> None:
    # Written first (the lowest addresses), so every other record lies beyond 2**24. Sixteen
    # distinct 1.5 MiB records, not one 16 MiB one: readers refuse to decode more than
    # 2 MiB for one lookup (the limit the MaxMind DB specification recommends).
    padding = {f"0.{16 * i}.0.0/12": bytes([i]) * (3 << 19) for i in range(16)}
    records = padding | RICH_V4 | RICH_V6
    records.pop("0.0.0.0/32")
    db = open_db(write_db(tmp_path / "big.mmdb", records, record_size=record_size))
    assert db.meta.record_size == (record_size or 28)
    big = [int(n.records.max()) for n in db.nets.values()]
    assert min(big) + db.meta.node_count + 16 >= 1 << 24
    db.check_all()


def test_unsupported_record_size_and_truncated_tree(tmp_path: Path) -> None:
    path = write_db(tmp_path / "small.mmdb", RICH_V4, 4)
    with maxminddb.open_database(str(path)) as reader:
        meta = reader.metadata()
    with pytest.raises(ValueError, match="record size 20"):
        read_tree(str(path), meta.node_count, 20, 4)
    with pytest.raises(ValueError, match="truncated"):
        read_tree(str(path), path.stat().st_size, meta.record_size, 4)


# --- the embedded database ---------------------------------------------------------------

SAMPLE = 3000


@pytest.fixture(scope="module")
def embedded() -> Iterator[Database]:
    db = Database(embedded_path())
    yield db
    db.close()


def test_embedded_database_shape(embedded: Database) -> None:
    assert (embedded.meta.ip_version, embedded.meta.record_size) == (6, 28)
    assert set(embedded.nets) == {4, 6}
    for nets in embedded.nets.values():
        check_order(nets)
        assert len(nets.starts) > 1_000_000
    # DB-IP's file links the IPv4-mapped and 6to4 prefixes (and Teredo) back to the IPv4
    # tree, as libmaxminddb's writer does.
    assert {"::/96", "::ffff:0:0/96", "2002::/16"} <= aliases(embedded.nets[6])
    assert not (embedded.nets[4].records == ALIAS).any()


@pytest.mark.parametrize("family", [4, 6])
def test_embedded_database_sample(embedded: Database, family: int) -> None:
    nets = embedded.nets[family]
    rng = random.Random(20240 + family)
    count = len(nets.starts)
    sample = set(rng.sample(range(count), SAMPLE))
    sample |= {0, count - 1, *np.flatnonzero(nets.records == ALIAS).tolist()}
    sample |= set(np.flatnonzero(nets.records == EMPTY)[:50].tolist())
    by_offset: dict[int, Any] = {}
    for i in sorted(sample):
        data = embedded.check(family, i)
        record = int(nets.records[i])
        if record >= 0:
            assert by_offset.setdefault(record, data) == data
    # Networks sharing a record share data: for some sampled records, another network of
    # the same record (anywhere in either family) is read through the reader.
    chosen = np.array(rng.sample(sorted(by_offset), 200), np.int64)
    seen: set[int] = set()
    for fam, other in embedded.nets.items():
        same = np.flatnonzero(np.isin(other.records, chosen))
        rng.shuffle(picked := same.tolist())
        checked: set[int] = set()
        for j in picked:
            record = int(other.records[j])
            if record not in checked:
                checked.add(record)
                assert embedded.check(fam, j) == by_offset[record]
        seen |= checked
    assert seen == set(chosen.tolist())
