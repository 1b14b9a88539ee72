"""Referrals for names below a zone cut, encoded once per cut: a random-name flood under a
delegation costs a copy and a few pointer moves per query, not a lookup and an encoding."""

from __future__ import annotations

import struct
from dataclasses import dataclass

import dns.name
import dns.rcode
import dns.rdatatype

from geodns.server.prepared import CLASS_IN, encode_sections
from geodns.zones.lookup import resolve
from geodns.zones.model import ZoneSet

RT = dns.rdatatype.RdataType
Rcode = dns.rcode.Rcode
_RR_FIXED = struct.Struct("!HHIH")  # an RR after its owner: TYPE, CLASS, TTL, RDLENGTH


@dataclass(frozen=True, slots=True)
class Referral:
    """The referral for every name strictly below one zone cut (the same NS and glue,
    whatever the name and type), encoded once with the cut itself as the question name.
    For a name `offset` octets longer, every compression pointer in it moves by `offset`:
    those into the question (the cut now starts `offset` later) and those into the body
    (which now starts `offset` later) alike."""

    template: bytes
    counts: tuple[int, int, int]
    pointers: tuple[int, ...]  # where in `template` each compression pointer is

    @classmethod
    def build(cls, zones: ZoneSet, cut: bytes) -> Referral | None:
        name = dns.name.from_wire(cut, 0)[0]
        res = resolve(zones, dns.name.Name((b"x", *name.labels)), RT.A)
        if res.rcode != Rcode.NOERROR or res.authoritative or res.answer or res.ede is not None:
            return None
        body, counts = encode_sections(name, RT.A, CLASS_IN, (), res.authority, res.additional)
        pointers = _pointers(body, sum(counts))
        return None if pointers is None else cls(body, counts, pointers)

    def body(self, offset: int) -> bytes:
        body = bytearray(self.template)
        for at in self.pointers:
            target = ((body[at] << 8) | body[at + 1]) + offset
            body[at], body[at + 1] = target >> 8, target & 0xFF
        return bytes(body)


def _pointers(body: bytes, records: int) -> tuple[int, ...] | None:
    """The offsets of the compression pointers in `records` RRs of NS, A, AAAA or DS (the
    types a referral holds); None if another type is there."""
    found: list[int] = []

    def skip_name(at: int) -> int:
        while True:
            length = body[at]
            if length >= 0xC0:
                found.append(at)
                return at + 2
            if length == 0:
                return at + 1
            at += length + 1

    at = 0
    for _ in range(records):
        at = skip_name(at)
        rtype, _, _, rdlen = _RR_FIXED.unpack_from(body, at)
        at += 10
        if rtype == RT.NS:
            if skip_name(at) != at + rdlen:
                return None
        elif rtype not in (RT.A, RT.AAAA, RT.DS):
            return None
        at += rdlen
    return tuple(found) if at == len(body) else None
