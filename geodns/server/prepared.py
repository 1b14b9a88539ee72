"""Encoded answers: a Resolution written to wire once (Prepared), the canned replies that
hold no records, and how large a reply a client takes.

A Prepared is a reply minus its header, question and OPT, which each query brings:
`render` puts them around it, so that dnspython encodes an answer once, never per query.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset

from geodns.wire.edns import ede_option
from geodns.wire.query import HEADER
from geodns.zones.lookup import Resolution

RT = dns.rdatatype.RdataType
Rcode = dns.rcode.Rcode
CLASS_IN = 1
CLASS_CH = 3

FLAG_QR = 0x8000
FLAG_AA = 0x0400
FLAG_TC = 0x0200
FLAG_RD = 0x0100
FLAG_CD = 0x0010
MASK_OPCODE = 0x7800
# Echoed from the query: opcode and RD (RFC 1035 4.1.1), CD (RFC 6840 5.9).
COPIED_FLAGS = MASK_OPCODE | FLAG_RD | FLAG_CD
# Echoed in FORMERR, NOTIMP and NOTAUTH, whose query was not understood (an opcode's other
# bits mean what that opcode says, RFC 6895 2): opcode and RD only, as NSD and Knot do.
ERROR_FLAGS = MASK_OPCODE | FLAG_RD

UDP = "udp"
TCP = "tcp"
TCP_LIMIT = 65535
MIN_UDP = 512  # RFC 1035 4.2.1; EDNS payloads below it are treated as 512 (RFC 6891 6.2.5)

# How a reply may be cached, besides True (by the query bytes) and False (not at all); a
# float is cookied()'s.
BY_SOURCE = "by-source"  # a reply that the query bytes and the sender's address decide
BY_STATE = "by-state"  # a reply that the query bytes and the region state decide
UNLISTED = "unlisted"  # a reply that the query bytes decide, for a name no zone lists


@dataclass(frozen=True, slots=True)
class Prepared:
    """An encoded answer, minus header, question and OPT."""

    flags: int  # AA and the low rcode bits
    ext_rcode: int  # rcode bits above 4, for the OPT
    body: bytes
    counts: tuple[int, int, int]
    # The same without the additional section, when that may be dropped to fit (RFC 2181 9).
    short_body: bytes | None
    short_counts: tuple[int, int, int]
    cacheable: bool = True
    ede: bytes = b""  # an Extended DNS Error option (RFC 8914) for the OPT, if any
    copied: int = COPIED_FLAGS  # the query's header bits this reply echoes

    def render(self, qid: int, qflags: int, question: bytes, opt: bytes, limit: int) -> bytes:
        flags = FLAG_QR | (qflags & self.copied) | self.flags
        fixed = 12 + len(question) + len(opt)
        ar_opt = 1 if opt else 0
        if fixed + len(self.body) <= limit:
            body, (an, ns, ar) = self.body, self.counts
        elif self.short_body is not None and fixed + len(self.short_body) <= limit:
            body, (an, ns, ar) = self.short_body, self.short_counts
        else:
            # RFC 2181 9: set TC and send what fits: the question and the OPT.
            flags |= FLAG_TC
            body, an, ns, ar = b"", 0, 0, 0
        return HEADER.pack(qid, flags, 1, an, ns, ar + ar_opt) + question + body + opt


def encode_resolution(qname: dns.name.Name, qtype: int, qclass: int, res: Resolution) -> Prepared:
    """Encode a Resolution once, with the question at offset 12 so that names compress
    against it; the question's case does not change its length, so any case fits."""
    flags = (FLAG_AA if res.authoritative else 0) | (res.rcode & 0xF)
    if res.ede is None and not res.authority and not res.additional and len(res.answer) == 1:
        body = _plain_answer(qname, res.answer[0])
        if body is not None:
            return Prepared(
                flags, res.rcode >> 4, body, (len(res.answer[0]), 0, 0), None, (0, 0, 0)
            )
    full, counts = encode_sections(qname, qtype, qclass, res.answer, res.authority, res.additional)
    short_body = None
    short_counts = (0, 0, 0)
    if res.additional and not res.glue_required:
        short_body, short_counts = encode_sections(
            qname, qtype, qclass, res.answer, res.authority, ()
        )
    ede = ede_option(*res.ede) if res.ede is not None else b""
    return Prepared(flags, res.rcode >> 4, full, counts, short_body, short_counts, ede=ede)


# Types whose RDATA holds no domain name, so that it is the same bytes wherever it is
# written (no compression pointers into the message): what _plain_answer writes itself.
_NAMELESS_RDATA = frozenset({RT.A, RT.AAAA, RT.TXT})
_RR_FIXED = struct.Struct("!HHIH")  # TYPE, CLASS, TTL, RDLENGTH


def _plain_answer(qname: dns.name.Name, rrset: dns.rrset.RRset) -> bytes | None:
    """The answer section for the most common reply, one RRset of addresses or text at the
    question's name and nothing else, written directly: each record's owner a pointer to
    the question (offset 12), as dnspython's renderer compresses it, and its RDATA as
    dnspython writes it, in the RRset's order. A sixth of the cost of rendering a whole
    message, for the first query of every name (after a start or reload). None for any
    other shape, which encode_sections renders."""
    if rrset.rdtype not in _NAMELESS_RDATA or not rrset or rrset.name != qname:
        return None
    fixed = _RR_FIXED.pack
    parts = []
    for rdata in rrset:
        wire = rdata.to_wire()
        parts.append(b"\xc0\x0c" + fixed(rrset.rdtype, rrset.rdclass, rrset.ttl, len(wire)) + wire)
    return b"".join(parts)


def encode_sections(
    qname: dns.name.Name,
    qtype: int,
    qclass: int,
    answer: tuple[dns.rrset.RRset, ...],
    authority: tuple[dns.rrset.RRset, ...],
    additional: tuple[dns.rrset.RRset, ...],
) -> tuple[bytes, tuple[int, int, int]]:
    msg = dns.message.Message(id=0)
    msg.question = [dns.rrset.RRset(qname, qclass, qtype)]
    msg.answer = list(answer)
    msg.authority = list(authority)
    msg.additional = list(additional)
    # No shuffling: every node and worker must send the same bytes for the same question.
    wire = msg.to_wire(max_size=TCP_LIMIT, want_shuffle=False)
    _, _, _, an, ns, ar = HEADER.unpack_from(wire)
    question_len = len(qname.to_wire()) + 4
    return wire[12 + question_len :], (an, ns, ar)


def bare(
    rcode: Rcode,
    authoritative: bool = False,
    cacheable: bool = True,
    ede: int | None = None,
    copied: int = COPIED_FLAGS,
) -> Prepared:
    flags = (FLAG_AA if authoritative else 0) | (rcode & 0xF)
    option = ede_option(ede) if ede is not None else b""
    return Prepared(flags, rcode >> 4, b"", (0, 0, 0), None, (0, 0, 0), cacheable, option, copied)


# RFC 8914 INFO-CODEs, sent without EXTRA-TEXT as NSD and Knot do: a refusal is what a
# reflection attack asks for, so it stays small.
EDE_PROHIBITED = 18
EDE_NOT_AUTHORITATIVE = 20
EDE_NOT_SUPPORTED = 21

NXDOMAIN_FLAGS = FLAG_AA | Rcode.NXDOMAIN
REFUSED_OUTSIDE = bare(Rcode.REFUSED, ede=EDE_NOT_AUTHORITATIVE)  # no zone of ours holds it
REFUSED_TRANSFER = bare(Rcode.REFUSED, ede=EDE_PROHIBITED)  # zone transfers are not offered
REFUSED_PROHIBITED = bare(Rcode.REFUSED, ede=EDE_PROHIBITED)  # e.g. id.server with no id
REFUSED_UNSUPPORTED = bare(Rcode.REFUSED, ede=EDE_NOT_SUPPORTED)  # a class or CH name we lack
FORMERR = bare(Rcode.FORMERR, cacheable=False, copied=ERROR_FLAGS)
NOTIMP = bare(Rcode.NOTIMP, cacheable=False, copied=ERROR_FLAGS)
NOTAUTH = bare(Rcode.NOTAUTH, cacheable=False, copied=ERROR_FLAGS)
SERVFAIL = bare(Rcode.SERVFAIL, cacheable=False)
BADVERS = bare(Rcode.BADVERS)
COOKIE_ONLY = bare(Rcode.NOERROR, cacheable=False, copied=ERROR_FLAGS)  # RFC 7873 5.4


def reply_limit(transport: str, payload: int | None, udp_size: int) -> int:
    """The largest reply a client takes: TCP's, or over UDP its EDNS payload (none: 512)
    within our own UDP size, and never under 512 (RFC 6891 6.2.5)."""
    if transport == TCP:
        return TCP_LIMIT
    if payload is None:
        return MIN_UDP
    return max(MIN_UDP, min(payload, udp_size))


def rcode_of(prepared: Prepared) -> int:
    return (prepared.ext_rcode << 4) | (prepared.flags & 0xF)


def cookied(cacheable: bool, until: float) -> bool | float:
    """How a reply carrying a server cookie may be cached: only while it echoes the query's
    own cookie (`until` > 0), and only if the same reply without one could be."""
    return until if cacheable and until else False
