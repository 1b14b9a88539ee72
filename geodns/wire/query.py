"""Parse a query from untrusted bytes just far enough to answer it: header, question, OPT."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from geodns.errors import BadEDNS, BadQuestion, MalformedQuery, ShortHeader, TrailingJunk
from geodns.wire.edns import Edns, parse_opt_untrusted

HEADER = struct.Struct("!HHHHHH")
_RR_FIXED = struct.Struct("!HHIH")
TYPE_OPT = 41
MAX_NAME = 255  # RFC 1035 2.3.4, in wire octets


@dataclass(frozen=True, slots=True)
class Query:
    """The parts of a query that decide the reply."""

    id: int
    flags: int
    qname: bytes  # wire form, case as sent
    qtype: int
    qclass: int
    question_end: int  # offset just past the question in the packet
    edns: Edns | None

    @property
    def opcode(self) -> int:
        return (self.flags >> 11) & 0xF


class QueryError(MalformedQuery):
    """A malformed query, with what could still be read for a FORMERR reply."""

    def __init__(self, cause: MalformedQuery, question_end: int = 0, edns: Edns | None = None):
        super().__init__(str(cause))
        self.cause = cause
        self.question_end = question_end  # 0 when the question itself is bad
        self.edns = edns


def parse_header_untrusted(data: bytes) -> tuple[int, int, int, int, int, int]:
    if len(data) < 12:
        raise ShortHeader(f"{len(data)} bytes is shorter than a DNS header")
    return HEADER.unpack_from(data)


def parse_question_untrusted(data: bytes) -> tuple[bytes, int, int, int]:
    """(qname wire, qtype, qclass, offset past the question); names may not be compressed here."""
    offset = 12
    end = len(data)
    while True:
        if offset >= end:
            raise BadQuestion("question name runs past the packet")
        length = data[offset]
        if length == 0:
            offset += 1
            break
        if length > 63:
            raise BadQuestion("compressed or extended label in the question")
        offset += 1 + length
        if offset - 12 > MAX_NAME:
            raise BadQuestion("question name longer than 255 octets")
    if offset - 12 > MAX_NAME:
        raise BadQuestion("question name longer than 255 octets")
    if offset + 4 > end:
        raise BadQuestion("question type and class run past the packet")
    qtype, qclass = struct.unpack_from("!HH", data, offset)
    return data[12:offset], qtype, qclass, offset + 4


def _skip_name_untrusted(data: bytes, offset: int) -> tuple[int, bool]:
    """Offset past a (possibly compressed) name, and whether it was the root name."""
    start = offset
    end = len(data)
    while True:
        if offset >= end:
            raise MalformedQuery("record name runs past the packet")
        length = data[offset]
        if length == 0:
            return offset + 1, offset == start
        if length >= 0xC0:
            if offset + 2 > end:
                raise MalformedQuery("truncated compression pointer")
            return offset + 2, False
        if length > 63:
            raise MalformedQuery("unknown label type")
        offset += 1 + length


def parse_query_untrusted(data: bytes) -> Query:
    """Parse a query. ShortHeader: drop it. QueryError: answer FORMERR."""
    qid, flags, qdcount, ancount, nscount, arcount = parse_header_untrusted(data)
    if qdcount != 1:
        raise QueryError(MalformedQuery(f"QDCOUNT is {qdcount}, not 1"))
    try:
        qname, qtype, qclass, offset = parse_question_untrusted(data)
    except MalformedQuery as exc:
        raise QueryError(exc) from None
    question_end = offset
    if ancount or nscount:
        raise QueryError(MalformedQuery("a query with answer or authority records"), question_end)
    edns: Edns | None = None
    end = len(data)
    try:
        for _ in range(arcount):
            offset, is_root = _skip_name_untrusted(data, offset)
            if offset + 10 > end:
                raise MalformedQuery("truncated additional record")
            rtype, rclass, ttl, rdlen = _RR_FIXED.unpack_from(data, offset)
            offset += 10
            if offset + rdlen > end:
                raise MalformedQuery("record data runs past the packet")
            if rtype == TYPE_OPT:
                if edns is not None:
                    # RFC 6891 6.1.1: FORMERR, and no OPT since we can't tell which one counts.
                    raise QueryError(BadEDNS("more than one OPT record"), question_end)
                if not is_root:
                    raise BadEDNS("OPT record owner is not the root")
                try:
                    edns = parse_opt_untrusted(rclass, ttl, data[offset : offset + rdlen])
                except MalformedQuery as exc:
                    # The OPT itself was readable: the FORMERR reply carries an OPT too.
                    bare = Edns(rclass, (ttl >> 16) & 0xFF, bool(ttl & 0x8000), False, None)
                    raise QueryError(exc, question_end, bare) from None
            offset += rdlen
        if offset != end:
            raise TrailingJunk(f"{end - offset} bytes after the last record")
    except QueryError:
        raise
    except MalformedQuery as exc:
        raise QueryError(exc, question_end, edns) from None
    return Query(qid, flags, qname, qtype, qclass, question_end, edns)
