"""Parse a query from untrusted bytes just far enough to answer it: header, question, OPT."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from geodns.errors import (
    BadEDNS,
    BadQuestion,
    BadTSIG,
    MalformedQuery,
    ShortHeader,
    TrailingJunk,
)
from geodns.wire.edns import Edns, parse_opt_untrusted
from geodns.wire.tsig import TYPE_TSIG, Tsig, parse_tsig_untrusted, read_name_untrusted

HEADER = struct.Struct("!HHHHHH")
_RR_FIXED = struct.Struct("!HHIH")
TYPE_OPT = 41
TYPE_IXFR = 251
MAX_NAME = 255  # RFC 1035 2.3.4, in wire octets


@dataclass(frozen=True, slots=True)
class Query:
    """The parts of a query that decide the reply."""

    id: int
    flags: int
    qname: bytes  # wire form, case as sent
    qtype: int
    qclass: int
    question_end: int  # offset just past the question; 12 for a cookie-only query
    edns: Edns | None
    tsig: Tsig | None = None  # the request's TSIG RR, when signed

    @property
    def has_question(self) -> bool:
        """False only for a query asking for a server cookie alone (RFC 7873 5.4)."""
        return self.question_end > 12

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


def _skip_questions_untrusted(data: bytes, offset: int, count: int) -> int:
    """Offset past `count` question entries (names possibly compressed)."""
    for _ in range(count):
        offset, _ = _skip_name_untrusted(data, offset)
        offset += 4
        if offset > len(data):
            raise MalformedQuery("question type and class run past the packet")
    return offset


def _skip_records_untrusted(data: bytes, offset: int, count: int) -> int:
    """Offset past `count` resource records."""
    for _ in range(count):
        offset, _ = _skip_name_untrusted(data, offset)
        if offset + 10 > len(data):
            raise MalformedQuery("truncated record")
        (rdlen,) = struct.unpack_from("!H", data, offset + 8)
        offset += 10 + rdlen
        if offset > len(data):
            raise MalformedQuery("record data runs past the packet")
    return offset


def parse_query_untrusted(data: bytes) -> Query:
    """Parse a query. ShortHeader: drop it. QueryError: answer FORMERR.

    A query that breaks a rule but can still be walked (QDCOUNT other than 1, answer or
    authority records, a TSIG that is not last) is read to its end first, so that the
    FORMERR reply carries an OPT when the query had one (RFC 6891 7). Each step of the
    walk moves forward or raises, so huge header counts cost no more than the packet.
    """
    qid, flags, qdcount, ancount, nscount, arcount = parse_header_untrusted(data)
    end = len(data)
    qname, qtype, qclass, question_end = b"", 0, 0, 0
    no_question: MalformedQuery | None = None
    if qdcount == 1:
        try:
            qname, qtype, qclass, offset = parse_question_untrusted(data)
        except MalformedQuery as exc:
            raise QueryError(exc) from None
        question_end = offset
    else:
        no_question = MalformedQuery(f"QDCOUNT is {qdcount}, not 1")
        try:
            offset = _skip_questions_untrusted(data, 12, qdcount)
        except MalformedQuery:
            raise QueryError(no_question) from None
    problem: MalformedQuery | None = None
    if ancount:
        problem = problem or MalformedQuery("a query with answer records")
    if nscount and qtype != TYPE_IXFR:
        # RFC 1995 3: an IXFR query holds the client's SOA in its authority section.
        problem = problem or MalformedQuery("a query with authority records")
    edns: Edns | None = None
    tsig: Tsig | None = None
    try:
        offset = _skip_records_untrusted(data, offset, ancount + nscount)
        for index in range(arcount):
            owner = offset
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
            elif rtype == TYPE_TSIG:
                # RFC 8945 5.2: one TSIG, the last record; anything else is FORMERR.
                if index != arcount - 1:
                    problem = problem or BadTSIG("TSIG is not the last record")
                else:
                    key_name = read_name_untrusted(data, owner)[0]
                    tsig = parse_tsig_untrusted(
                        key_name, rclass, ttl, data[offset : offset + rdlen]
                    )
            offset += rdlen
        if offset != end:
            raise TrailingJunk(f"{end - offset} bytes after the last record")
    except QueryError:
        raise
    except MalformedQuery as exc:
        raise QueryError(no_question or problem or exc, question_end, edns) from None
    if no_question is not None:
        # RFC 7873 5.4: a query with no question but a COOKIE option asks for a server
        # cookie alone; any other question-less query is malformed.
        cookie_only = qdcount == 0 and edns is not None and edns.cookie is not None
        if not cookie_only or tsig is not None or problem is not None:
            raise QueryError(no_question, question_end, edns)
        question_end = 12
    if problem is not None:
        raise QueryError(problem, question_end, edns)
    return Query(qid, flags, qname, qtype, qclass, question_end, edns, tsig)
