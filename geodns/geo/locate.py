"""The client locator: an ECS subnet or source address -> Client (GeoIP record and network)."""

from __future__ import annotations

import bisect
import ipaddress
from dataclasses import dataclass

from geodns.geo.geoip import GeoIPDatabase, GeoRecord, IPAddress

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# IANA special-purpose registries (RFC 6890 and updates), multicast, and IPv6 space outside
# 2000::/3 that is reserved by the IETF. None of these is a client's real location, and
# geolocating them would only read garbage. Where blocks nest, the smallest one wins.
_SPECIAL_V4 = (
    "0.0.0.0/8",  # "this network"
    "10.0.0.0/8",  # private (RFC 1918)
    "100.64.0.0/10",  # shared address space, carrier-grade NAT (RFC 6598)
    "127.0.0.0/8",  # loopback
    "169.254.0.0/16",  # link local
    "172.16.0.0/12",  # private
    "192.0.0.0/24",  # IETF protocol assignments
    "192.0.2.0/24",  # documentation, TEST-NET-1
    "192.168.0.0/16",  # private
    "198.18.0.0/15",  # benchmarking
    "198.51.100.0/24",  # documentation, TEST-NET-2
    "203.0.113.0/24",  # documentation, TEST-NET-3
    "224.0.0.0/4",  # multicast
    "240.0.0.0/4",  # reserved, and the broadcast address
)
_SPECIAL_V6 = (
    "::/128",  # unspecified
    "::1/128",  # loopback
    "::/8",  # reserved (holds the IPv4-mapped and NAT64 prefixes)
    "100::/64",  # discard only
    "100::/8",  # reserved
    "200::/7",  # reserved
    "400::/6",  # reserved
    "800::/5",  # reserved
    "1000::/4",  # reserved
    "2001::/23",  # IETF protocol assignments (Teredo, benchmarking, ORCHID)
    "2001:db8::/32",  # documentation
    "3fff::/20",  # documentation (RFC 9637)
    "4000::/3",  # reserved, as is everything below outside 2000::/3
    "6000::/3",
    "8000::/3",
    "a000::/3",
    "c000::/3",
    "e000::/4",
    "f000::/5",
    "f800::/6",
    "fc00::/7",  # unique local
    "fe00::/9",
    "fe80::/10",  # link local
    "fec0::/10",  # site local (deprecated)
    "ff00::/8",  # multicast
)

# Of those, the blocks an organisation numbers its own networks from: its own GeoIP
# database may place them (an internal resolver at 10.1.0.53 is in Frankfurt), so they
# are looked up and used when the database has a record there. The others are never
# looked up: public databases hold garbage for some (DB-IP puts 4000::/3 in CH).
INTERNAL_BLOCKS = frozenset(
    {
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "::1/128",
        "fc00::/7",
    }
)
_INTERNAL = {ipaddress.ip_network(b) for b in INTERNAL_BLOCKS}

_Table = tuple[tuple[int, int, frozenset[int]], ...]


def _table(blocks: tuple[str, ...]) -> _Table:
    """(prefix length, mask, network values) per length, longest first, for the smallest match."""
    by_length: dict[int, set[int]] = {}
    bits = 0
    for block in blocks:
        net = ipaddress.ip_network(block)
        bits = net.max_prefixlen
        by_length.setdefault(net.prefixlen, set()).add(int(net.network_address))
    full = (1 << bits) - 1
    return tuple(
        (length, full ^ ((1 << (bits - length)) - 1), frozenset(values))
        for length, values in sorted(by_length.items(), reverse=True)
    )


_TABLES = {4: _table(_SPECIAL_V4), 6: _table(_SPECIAL_V6)}
# For addresses ipaddress calls non-global that no block above covers (a newer Python may
# know more ranges): a site's worth of addresses.
_FALLBACK_PREFIX = {4: 24, 6: 48}
_FULL = {32: (1 << 32) - 1, 128: (1 << 128) - 1}
_NETWORK: dict[int, type[IPNetwork]] = {32: ipaddress.IPv4Network, 128: ipaddress.IPv6Network}


def special_prefix(address: IPAddress) -> int | None:
    """The prefix length of the smallest special-purpose block holding `address`, or None."""
    value = int(address)
    for length, mask, values in _TABLES[address.version]:
        if value & mask in values:
            return length
    return None


def _merged(blocks: tuple[str, ...]) -> tuple[list[int], list[int]]:
    """The blocks as sorted, disjoint [start, end) integer ranges: starts, then ends."""
    ranges = sorted(
        (int(n.network_address), int(n.network_address) + n.num_addresses)
        for n in map(ipaddress.ip_network, blocks)
    )
    starts: list[int] = []
    ends: list[int] = []
    for start, end in ranges:
        if ends and start <= ends[-1]:
            ends[-1] = max(ends[-1], end)
        else:
            starts.append(start)
            ends.append(end)
    return starts, ends


_SPECIAL_RANGES = {4: _merged(_SPECIAL_V4), 6: _merged(_SPECIAL_V6)}


def is_special(value: int, version: int) -> bool:
    """Whether the address `value` of IP `version` is in a special-purpose block:
    `special_prefix(address) is not None`, in one binary search over plain integers, for
    the query path that has no address object."""
    starts, ends = _SPECIAL_RANGES[version]
    i = bisect.bisect_right(starts, value) - 1
    return i >= 0 and value < ends[i]


def not_global(address: IPAddress) -> bool:
    return (
        not address.is_global
        or address.is_multicast
        or address.is_reserved
        or address.is_link_local
        or address.is_loopback
        or address.is_unspecified
    )


def _not_global_v6() -> tuple[list[int], list[int]] | None:
    """The IPv6 space not_global() holds for, as ranges, from ipaddress's own tables; None
    where this Python keeps them otherwise (then not_global() itself is asked)."""
    constants = getattr(ipaddress, "_IPv6Constants", None)
    try:
        nets = (
            *constants._private_networks,  # type: ignore[union-attr]
            *constants._reserved_networks,  # type: ignore[union-attr]
            constants._multicast_network,  # type: ignore[union-attr]
            constants._linklocal_network,  # type: ignore[union-attr]
        )
        ranges = _merged(tuple(str(n) for n in nets))
    except (AttributeError, TypeError, ValueError):
        return None
    for start, end in zip(*ranges, strict=True):
        if not (
            not_global(ipaddress.IPv6Address(start)) and not_global(ipaddress.IPv6Address(end - 1))
        ):
            return None
    return ranges


_NOT_GLOBAL_V6 = _not_global_v6()


def not_global_v6(value: int) -> bool:
    """`not_global(IPv6Address(value))` for an address outside the special-purpose blocks
    (inside them newer Pythons carve exceptions these ranges do not hold), in one binary
    search rather than about 20 us of ipaddress properties."""
    if _NOT_GLOBAL_V6 is None:
        return not_global(ipaddress.IPv6Address(value))
    starts, ends = _NOT_GLOBAL_V6
    i = bisect.bisect_right(starts, value) - 1
    return i >= 0 and value < ends[i]


@dataclass(frozen=True, slots=True)
class Client:
    """Who asked, as far as routing cares: a GeoIP record and the network it holds for."""

    address: IPAddress  # the address looked up: the ECS address, or the packet's source
    source_prefix: int | None  # the ECS SOURCE PREFIX-LENGTH; None without ECS
    network: IPNetwork  # the record's network: the decision unit, and the cache key
    record: GeoRecord | None  # None: private, reserved, or unknown to the database
    # The database's network decided `network` (not a special-purpose block, an
    # IPv4-mapped address or a fallback): only then may a merged scope widen it.
    from_database: bool = False
    # Its autonomous system, where a service's rules name ASNs (geodns.geo.overrides).
    asn: int | None = None


def locate(
    db: GeoIPDatabase,
    address: str | IPAddress,
    source_prefix: int | None = None,
) -> Client:
    """Look `address` up and find the network its record holds for.

    The network is the database's network covering the address, or for special-purpose
    addresses (private, documentation, loopback, ...) their block. Of those, internal
    blocks (INTERNAL_BLOCKS) are looked up too, since an organisation's own database may
    place its networks, but they are never widened (`from_database` False). The network
    does not depend on `source_prefix`: the ECS scope a reply claims is decided from it
    in one place (geodns.server.geoanswer), and may be longer than the source (RFC 7871
    7.2.1).

    Runs on the query path for every network not yet in the decision cache, so it stays a
    handful of integer operations around one database lookup.
    """
    if isinstance(address, str):
        address = ipaddress.ip_address(address)
    max_prefix = address.max_prefixlen
    if source_prefix is not None and not 0 <= source_prefix <= max_prefix:
        raise ValueError(f"source prefix {source_prefix} out of range for {address}")

    # An IPv4-mapped address is an IPv4 client: look it up as one, but keep the network in
    # the query's family so that the scope is counted as the resolver counts it.
    target: IPAddress = address
    offset = 0
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        target = address.ipv4_mapped
        offset = 96

    record: GeoRecord | None = None
    from_database = False
    special = special_prefix(target)
    if special is None:
        record, prefix = db.lookup(target)
        from_database = offset == 0
        if record is None and not_global(target):
            prefix = _FALLBACK_PREFIX[target.version]
            from_database = False
    else:
        prefix = special
        if ipaddress.ip_network((target, special), strict=False) in _INTERNAL:
            # An internal network the database may place: used within its block, and
            # never widened past it.
            # Where it places none of the block's addresses, the empty network around
            # this one is still the database's: claiming the whole block would cover
            # the networks it does place.
            record, found_prefix = db.lookup(target)
            prefix = max(found_prefix, special)
    prefix += offset
    # From the masked integer: ip_network((address, prefix), strict=False) goes through text
    # and costs 6 us for IPv4 and 21 us for IPv6, more than the database lookup itself.
    value = int(address) & (_FULL[max_prefix] ^ ((1 << (max_prefix - prefix)) - 1))
    network = _NETWORK[max_prefix]((value, prefix))
    return Client(address, source_prefix, network, record, from_database)
