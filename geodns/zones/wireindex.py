"""Names in wire form, for telling a nonexistent name from the rest without dnspython.

A flood of random names (`a8f3k.example.com`, the "water torture" attack on
authoritative servers) must not go through the full lookup and a dnspython
encode per query, nor evict the answer cache. This index answers, from the
lowercased wire name alone: which zone, and is the name certainly NXDOMAIN.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import dns.rdatatype

from geodns.zones.model import Zone, ZoneSet


@dataclass(frozen=True, slots=True)
class ZoneIndex:
    """One zone's names in lowercased wire form, and its negative answer, pre-encoded."""

    origin: bytes
    names: frozenset[bytes]  # every existing name, empty non-terminals and services included
    cuts: frozenset[bytes]  # delegation points
    has_wildcard: bool
    # SOA RR minus its owner: TYPE, CLASS, negative TTL, RDLENGTH, RDATA (names uncompressed).
    negative_tail: bytes


def _wire(name: object) -> bytes:
    return name.canonicalize().to_wire()  # type: ignore[attr-defined]


def index_zone(zone: Zone) -> ZoneIndex:
    names = frozenset(_wire(n) for n in zone.existing)
    soa = zone.soa[0]
    rdata = soa.to_wire()  # no compression table: names written in full
    tail = struct.pack("!HHIH", dns.rdatatype.SOA, 1, zone.negative_ttl, len(rdata)) + rdata
    return ZoneIndex(
        origin=_wire(zone.origin),
        names=names,
        cuts=frozenset(_wire(n) for n in zone.delegations),
        has_wildcard=any(n.labels and n.labels[0] == b"*" for n in zone.nodes),
        negative_tail=tail,
    )


class WireIndex:
    """Every zone of a ZoneSet, found by the longest matching suffix of a wire name."""

    def __init__(self, zones: ZoneSet) -> None:
        self._zones = {idx.origin: idx for idx in map(index_zone, zones.zones.values())}
        self._listed = frozenset(name for idx in self._zones.values() for name in idx.names)

    def listed(self, qname: bytes) -> bool:
        """Whether `qname` (lowercased wire form) exists in one of the zones. A flood of
        random names asks for names that are not: their replies may only enter caches
        that hold such names alone, so that they never evict an answer for a real one."""
        return qname in self._listed

    def find(self, qname: bytes) -> tuple[ZoneIndex, int] | None:
        """The zone holding `qname` (lowercased wire form) and the offset of its origin in it."""
        zones = self._zones
        offset = 0
        while True:
            zone = zones.get(qname[offset:])
            if zone is not None:
                return zone, offset
            length = qname[offset]
            if length == 0:
                return None
            offset += length + 1

    def nxdomain_body(self, qname: bytes) -> bytes | None:
        """The AUTHORITY section of an NXDOMAIN for `qname` when it certainly is one, else None.

        Certain means: in a zone, not an existing name or empty non-terminal, not at or
        below a delegation, and no wildcard in the zone that could match. The SOA's owner is
        a compression pointer to the origin inside the question, at 12 + offset.
        """
        found = self.find(qname)
        if found is None:
            return None
        zone, origin_offset = found
        if qname in zone.names or zone.has_wildcard:
            return None
        if zone.cuts:
            offset = 0
            while offset < origin_offset:
                if qname[offset:] in zone.cuts:
                    return None
                offset += qname[offset] + 1
        # The longest existing ancestor must not be a cut either; below a cut, names are
        # never in `names` except glue, and the loop above saw every ancestor.
        return struct.pack("!H", 0xC000 | (12 + origin_offset)) + zone.negative_tail
