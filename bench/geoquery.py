"""Many-subnet query files for bench/geo.py: N distinct client subnets and dnsperf's binary input.

dnsperf's -E puts one ECS option in every query of a process, so after the first query
every answer of the single-subnet benchmark is a cache hit. Real resolvers send ECS from
hundreds of thousands of client /24s and /56s; here the queries are written out whole, in
dnsperf's -B format (RFC 1035 4.2.2 framing: a 2-byte big-endian length, then the DNS
message; dnsperf overwrites the first two bytes, the id, as it sends).

Subnets are drawn with a fixed seed so that every run and every server gets the same ones:

- IPv4: /24s at random from all of IPv4, keeping those that are global unicast (no
  private, reserved, multicast or documentation block) and that the database places in a
  country and continent (looked up at the /24's first address, which is what the servers
  look up for an ECS /24).
- IPv6: /56s from the networks the database itself lists (geodns/geo/mmdbtree.py): a
  network at random, then a /56 at random inside it (or the /56 holding it, for a longer
  prefix), kept when it is global unicast and its first address has a country and continent.

Which subnet each query carries: uniform over the N subnets, or skewed (zipf=True): a
fixed 20% of the subnets (the "hot" ones) get 80% of the queries, uniformly among them,
and the other 80% share the remaining 20%.

prepare_subnets does all of it for a run: the subnets, the saturated run's query file and
the fixed-rate run's, and the regions geodns orders for each country drawn (the other
servers' per-country maps).
"""

from __future__ import annotations

import argparse
import ipaddress
import struct
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.geoservice import ServiceSpec, country_orders
from bench.harness import repo_relative

HOT_SHARE = 0.2  # --zipf: this share of the subnets ...
HOT_QUERIES = 0.8  # ... gets this share of the queries
EDNS_PAYLOAD = 1232
ECS_OPTION = 8
KNOWN_CONTINENTS = frozenset({"AF", "AS", "EU", "NA", "OC", "SA"})


@dataclass(frozen=True)
class Subnet:
    network: ipaddress.IPv4Network | ipaddress.IPv6Network
    country: str
    continent: str

    def ecs(self) -> bytes:
        """The ECS option (code, length, family, source prefix, scope 0, the address octets
        the prefix covers: RFC 7871 6 says more is FORMERR)."""
        prefix = self.network.prefixlen
        family = 1 if self.network.version == 4 else 2
        address = self.network.network_address.packed[: (prefix + 7) // 8]
        body = struct.pack("!HBB", family, prefix, 0) + address
        return struct.pack("!HH", ECS_OPTION, len(body)) + body


def _located(reader: object, address: str) -> tuple[str, str] | None:
    data = reader.get(address)  # type: ignore[attr-defined]
    if not isinstance(data, dict):
        return None
    country = (data.get("country") or {}).get("iso_code")
    continent = (data.get("continent") or {}).get("code")
    if not country or continent not in KNOWN_CONTINENTS:
        return None
    return country, continent


def draw_subnets(mmdb: Path, count: int, family: int, seed: int) -> list[Subnet]:
    """`count` distinct subnets (/24 or /56) that the database at `mmdb` locates."""
    import maxminddb

    rng = np.random.default_rng(seed)
    reader = maxminddb.open_database(str(mmdb))
    try:
        if family == 4:
            return _draw_v4(reader, rng, count, mmdb)
        return _draw_v6(reader, rng, count, mmdb)
    finally:
        reader.close()


def _draw_v4(reader: object, rng: np.random.Generator, count: int, mmdb: Path) -> list[Subnet]:
    seen: set[int] = set()
    out: list[Subnet] = []
    for _ in range(200):
        batch = rng.integers(0, 1 << 24, size=max(4 * (count - len(out)), 1024))
        for block in batch.tolist():
            if block in seen:
                continue
            seen.add(block)
            net = ipaddress.IPv4Network((block << 8, 24))
            first = net.network_address
            if not first.is_global or first.is_multicast:
                continue
            where = _located(reader, str(first))
            if where is None:
                continue
            out.append(Subnet(net, *where))
            if len(out) == count:
                return out
    raise ValueError(f"{mmdb}: found only {len(out)} located IPv4 /24s of {count} wanted")


def _draw_v6(reader: object, rng: np.random.Generator, count: int, mmdb: Path) -> list[Subnet]:
    from geodns.geo.mmdbtree import networks, read_tree

    meta = reader.metadata()  # type: ignore[attr-defined]
    if meta.ip_version != 6:
        raise ValueError(f"{mmdb}: an IPv4-only database has no IPv6 networks")
    nets = networks(read_tree(str(mmdb), meta.node_count, meta.record_size, 6))[6]
    with_data = np.flatnonzero(nets.records >= 0)  # EMPTY and ALIAS (IPv4 seen again) out
    seen: set[int] = set()
    out: list[Subnet] = []
    total = len(nets.starts)
    for _ in range(200):
        picks = rng.choice(with_data, size=max(4 * (count - len(out)), 1024))
        offsets = rng.integers(0, 1 << 62, size=len(picks))
        for i, offset in zip(picks.tolist(), offsets.tolist(), strict=True):
            start = int.from_bytes(bytes(nets.starts[i]).ljust(16, b"\0"), "big")
            end = (
                int.from_bytes(bytes(nets.starts[i + 1]).ljust(16, b"\0"), "big")
                if i + 1 < total
                else 1 << 128
            )
            blocks = max(1, (end - start) >> 72)  # /56s in the network
            block = (start >> 72) + offset % blocks
            if block in seen:
                continue
            seen.add(block)
            net = ipaddress.IPv6Network((block << 72, 56))
            if not net.network_address.is_global or net.network_address.is_multicast:
                continue
            where = _located(reader, str(net.network_address))
            if where is None:
                continue
            out.append(Subnet(net, *where))
            if len(out) == count:
                return out
    raise ValueError(f"{mmdb}: found only {len(out)} located IPv6 /56s of {count} wanted")


def _qname(name: str) -> bytes:
    out = b""
    for label in name.rstrip(".").split("."):
        raw = label.encode("ascii")
        out += bytes([len(raw)]) + raw
    return out + b"\0"


def query_order(count: int, queries: int, zipf: bool, seed: int) -> np.ndarray:
    """Which subnet (an index) each of `queries` queries carries."""
    rng = np.random.default_rng(seed + 1)
    if not zipf:
        return rng.integers(0, count, size=queries)
    hot = max(1, int(count * HOT_SHARE))
    cold = count - hot
    pick_hot = rng.random(queries) < (HOT_QUERIES if cold else 1.0)
    order = rng.integers(hot, max(hot + 1, count), size=queries)
    order[pick_hot] = rng.integers(0, hot, size=int(pick_hot.sum()))
    return order


def write_query_file(
    path: Path, name: str, subnets: list[Subnet], order: np.ndarray
) -> dict[str, int]:
    """The queries, in dnsperf -B format: A `name`, RD clear, EDNS (payload 1232) with the
    ECS option of subnets[order[i]], message id i mod 65536. Returns counts for the report."""
    question = _qname(name) + struct.pack("!HH", 1, 1)  # A, IN
    tails = []
    for subnet in subnets:
        option = subnet.ecs()
        opt = b"\0" + struct.pack("!HHIH", 41, EDNS_PAYLOAD, 0, len(option)) + option
        tails.append(question + opt)
    header = struct.Struct("!HHHHHH")
    with path.open("wb") as f:
        chunk = []
        for i, index in enumerate(order.tolist()):
            message = header.pack(i & 0xFFFF, 0, 1, 0, 0, 1) + tails[index]
            chunk.append(struct.pack("!H", len(message)) + message)
            if len(chunk) == 65536:
                f.write(b"".join(chunk))
                chunk = []
        f.write(b"".join(chunk))
    return {
        "queries": len(order),
        "distinct_subnets_asked": len(np.unique(order)),
        "bytes": path.stat().st_size,
    }


def read_query_file(path: Path, limit: int | None = None) -> list[bytes]:
    """The messages of a -B file (for checks and tests)."""
    data = path.read_bytes()
    out, at = [], 0
    while at < len(data) and (limit is None or len(out) < limit):
        (length,) = struct.unpack_from("!H", data, at)
        out.append(data[at + 2 : at + 2 + length])
        at += 2 + length
    return out


def prepare_subnets(args: argparse.Namespace, name: str, spec: ServiceSpec) -> dict:
    """Draw the subnets, write the query file, work out each country's regions."""
    started = time.monotonic()
    subnets = draw_subnets(args.geoip_database, args.subnets, args.family, args.seed)
    order = query_order(len(subnets), args.queries, args.zipf, args.seed)
    args.query_file = args.logs / f"geo-queries-v{args.family}.bin"
    counts = write_query_file(args.query_file, name, subnets, order)
    # The fixed-rate run gets queries of its own, drawn from the same subnets in another
    # order: dnsperf starts at the top of a file every run, and a replay of the saturated
    # run's first queries would find them in geodns's cache (all of them under --quick,
    # whose 50,000 queries fit in the cache).
    rate_order = query_order(
        len(subnets), max(1000, int(args.rate * args.rate_duration * 1.2)), args.zipf, args.seed + 1
    )
    args.rate_query_file = args.logs / f"geo-queries-v{args.family}-rate.bin"
    rate_counts = write_query_file(args.rate_query_file, name, subnets, rate_order)
    located = {s.country: s.continent for s in subnets}
    # A country the database puts on two continents keeps its first; gdnsd's map would
    # need it under both (none seen in DB-IP City Lite's drawn subnets so far).
    countries, by_distance = country_orders(spec, located)
    per_continent: dict[str, int] = {}
    for s in subnets:
        per_continent[s.continent] = per_continent.get(s.continent, 0) + 1
    return {
        "subnets": subnets,
        "countries": countries,
        "country_continent": located,
        "by_distance": by_distance,
        "notes": [
            f"{c} ({located[c]}): no latency row for its country or continent: geodns orders "
            "by each network's distance, PowerDNS and gdnsd by the continent's order"
            for c in sorted(by_distance)
        ],
        "info": {
            **counts,
            "file": repo_relative(args.query_file),
            "rate_file": repo_relative(args.rate_query_file),
            "rate_queries": rate_counts["queries"],
            "subnets": len(subnets),
            "prefix": 24 if args.family == 4 else 56,
            "family": args.family,
            "distribution": (
                "20% of subnets get 80% of queries (--zipf)" if args.zipf else "uniform"
            ),
            "seed": args.seed,
            "subnets_per_continent": dict(sorted(per_continent.items())),
            "countries": len(located),
            "prepared_in_s": round(time.monotonic() - started, 1),
        },
    }
