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
from dns.name import Name

from geodns.zones.model import Zone, ZoneSet


@dataclass(frozen=True, slots=True)
class ZoneIndex:
    """One zone's names in lowercased wire form, and its negative answer, pre-encoded."""

    origin: bytes
    names: frozenset[bytes]  # every existing name, empty non-terminals and services included
    zone: Zone
    owners: dict[bytes, Name]  # the names that own a node, by wire name
    cuts: frozenset[bytes]  # delegation points
    has_wildcard: bool
    # SOA RR minus its owner: TYPE, CLASS, negative TTL, RDLENGTH, RDATA (names uncompressed).
    negative_tail: bytes


_UNMARKED = object()
# A compression pointer to offset 12 + i of a reply, the question's name starting at 12.
_POINTERS = [struct.pack("!H", 0xC000 | (12 + i)) for i in range(256)]


def _wire(name: Name) -> bytes:
    """An absolute name's lowercased wire form, as name.canonicalize().to_wire() gives it,
    at a third of the cost (a reload indexes every name of every zone)."""
    return b"".join(bytes((len(label),)) + label.lower() for label in name.labels)


def index_zone(zone: Zone) -> ZoneIndex:
    # Keyed by wire names only: a dnspython Name hashes in a Python loop over its labels.
    owners = {_wire(n): n for n in zone.nodes}
    names = frozenset(owners).union(map(_wire, zone.existing))
    soa = zone.soa[0]
    rdata = soa.to_wire()  # no compression table: names written in full
    tail = struct.pack("!HHIH", dns.rdatatype.SOA, 1, zone.negative_ttl, len(rdata)) + rdata
    return ZoneIndex(
        origin=_wire(zone.origin),
        names=names,
        zone=zone,
        owners=owners,
        cuts=frozenset(_wire(n) for n in zone.delegations),
        has_wildcard=any(n.labels and n.labels[0] == b"*" for n in zone.nodes),
        negative_tail=tail,
    )


class WireIndex:
    """Every zone of a ZoneSet, found by the longest matching suffix of a wire name."""

    def __init__(self, zones: ZoneSet) -> None:
        self._zones = {idx.origin: idx for idx in map(index_zone, zones.zones.values())}
        # Suffix -> its zone (an origin), or None (a delegation point): see nxdomain_body.
        self._marks: dict[bytes, ZoneIndex | None] = {
            cut: None for idx in self._zones.values() for cut in idx.cuts
        }
        self._marks.update(self._zones)
        self._listed = frozenset(name for idx in self._zones.values() for name in idx.names)
        # Origin (wire) -> its text as replies are counted under it: "example.com", or ".".
        self.origin_texts = {
            origin: idx.zone.origin.to_text(omit_final_dot=True) or "."
            for origin, idx in self._zones.items()
        }

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

        The first suffix that is a zone origin or a delegation point decides
        (_closest_mark). A cut that some parent zone holds below a child zone of ours (data
        the child occludes) also answers None: the full lookup then decides, as it would.
        """
        zone, offset = self._closest_mark(qname)
        if zone is _UNMARKED:
            return None  # in no zone of ours
        if zone is None or zone.has_wildcard or qname in zone.names:  # type: ignore[union-attr]
            return None  # at or below a delegation, maybe a wildcard's, or a name that exists
        return _POINTERS[offset] + zone.negative_tail

    def owner(self, qname: bytes) -> tuple[Zone, Name] | None:
        """The zone and the name of the node that `qname` (lowercased wire form) owns, when
        that zone is the longest match and no delegation lies at or above the name: what
        lookup.resolve_owner answers from without parsing the name. None otherwise."""
        zone, _ = self._closest_mark(qname)
        if not isinstance(zone, ZoneIndex):
            return None  # in no zone of ours, or at or below a delegation (DS, glue)
        name = zone.owners.get(qname)
        return None if name is None else (zone.zone, name)

    def _closest_mark(self, qname: bytes) -> tuple[ZoneIndex | object | None, int]:
        """The lowest suffix of `qname` that is a zone origin (its ZoneIndex) or a
        delegation point (None), and its offset; _UNMARKED when in no zone of ours.
        One walk up the name, one dict lookup per label; an origin wins over the parent
        zone's cut of the same name."""
        marks = self._marks
        offset = 0
        while True:
            zone = marks.get(qname[offset:], _UNMARKED)
            if zone is not _UNMARKED:
                return zone, offset
            length = qname[offset]
            if length == 0:
                return _UNMARKED, offset
            offset += length + 1

    def referral_cut(self, qname: bytes) -> tuple[bytes, int] | None:
        """For `qname` strictly below a delegation of the zone holding it and no name of
        that zone (glue): the highest such cut (RFC 1034 4.3.2, as lookup._delegation) and
        its offset in `qname`. None otherwise, or when the zone is not plain to tell."""
        if qname in self._listed:
            return None
        marks = self._marks
        offset = 0
        cut: tuple[bytes, int] | None = None
        while True:
            suffix = qname[offset:]
            zone = marks.get(suffix, _UNMARKED)
            if zone is None:
                cut = (suffix, offset)  # keep walking up: the highest cut decides
            elif zone is not _UNMARKED:
                break
            length = qname[offset]
            if length == 0:
                return None  # in no zone of ours
            offset += length + 1
        if cut is None or cut[1] == 0 or cut[0] not in zone.cuts:  # type: ignore[union-attr]
            return None
        return cut

    def zone_of(self, qname: bytes) -> str:
        """The origin text of the zone holding `qname` (lowercased wire form), or "" (also
        for no name at all: a query without a question)."""
        found = self.find(qname) if qname else None
        return "" if found is None else self.origin_texts[found[0].origin]

    def outside(self, qname: bytes) -> bool:
        """Whether `qname` lies in no zone of ours."""
        return self.find(qname) is None
