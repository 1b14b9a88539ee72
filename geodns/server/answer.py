"""From query bytes to reply bytes: one synchronous call per query, with two caches.

The hot path, and why it is written by hand: a query from a client that asked
the same thing before (same bytes after the ID) is answered by one dict lookup
and an ID patch. Anything else is parsed just far enough (header, question,
OPT), resolved from a second cache of encoded answers keyed by (lowercased
name, type, class), and assembled from the query's own question bytes (so the
name's case is preserved), the cached sections, and an OPT built for the
client. dnspython encodes those cached sections once; it never runs per query.
"""

from __future__ import annotations

import logging
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from geodns import __version__
from geodns.errors import MalformedQuery, ShortHeader
from geodns.geo.geoip import GeoIPDatabase
from geodns.health.state import ALL_UP, StateSnapshot
from geodns.routing.context import bucket
from geodns.server.geoanswer import (
    ALIAS,
    ClassAnswer,
    DynamicName,
    GeoAnswers,
    GeoResult,
    client_address,
)
from geodns.server.querylog import PATH_CACHE, PATH_FAST, PATH_FULL, QueryLog
from geodns.server.stats import QueryStats, ReplyKey
from geodns.wire.cookie import ServerCookies
from geodns.wire.edns import (
    OPT_ECS,
    Edns,
    build_opt,
    ecs_problem,
    ede_option,
    nsid_option,
    parse_opt_untrusted,
)
from geodns.wire.query import (
    HEADER,
    MAX_NAME,
    TYPE_OPT,
    Query,
    QueryError,
    parse_query_untrusted,
)
from geodns.wire.tsig import tsig_error_rr
from geodns.zones.lookup import Resolution, resolve, resolve_owner
from geodns.zones.model import ZoneSet
from geodns.zones.wireindex import WireIndex

log = logging.getLogger("geodns.answer")

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
_COPIED_FLAGS = MASK_OPCODE | FLAG_RD | FLAG_CD
# Echoed in FORMERR, NOTIMP and NOTAUTH, whose query was not understood (an opcode's other
# bits mean what that opcode says, RFC 6895 2): opcode and RD only, as NSD and Knot do.
_ERROR_FLAGS = MASK_OPCODE | FLAG_RD

UDP = "udp"
TCP = "tcp"
TCP_LIMIT = 65535
MIN_UDP = 512  # RFC 1035 4.2.1; EDNS payloads below it are treated as 512 (RFC 6891 6.2.5)
# Bounded so that a flood of distinct names costs a cache refill, not memory.
EXACT_CACHE_SIZE = 50_000
PREPARED_CACHE_SIZE = 50_000
DECISION_CACHE_SIZE = 50_000
# A decision cache entry saying "decided per bucket: look again with the client's bucket".
BY_BUCKET: Any = object()
# Replies for names no zone lists (outside our zones, below a delegation, from a wildcard):
# what a random-name flood asks for, so they have caches of their own, which the flood
# may churn without touching the answers for names that exist.
UNLISTED_CACHE_SIZE = 10_000
# Seconds a reload spends answering the old configuration's recent queries into the new
# one's caches (Answerer.warm_from): about 4,000 names at 45 us each.
WARM_BUDGET = 0.2
_WARM_PEER = ("127.0.0.1", 0)  # static replies do not depend on the sender
ALIAS_TYPES = (RT.A, RT.AAAA, RT.ANY)
BY_SOURCE = "by-source"  # a reply that the query bytes and the sender's address decide
BY_STATE = "by-state"  # a reply that the query bytes and the region state decide
UNLISTED = "unlisted"  # a reply that the query bytes decide, for a name no zone lists
DROPPED_ID = 0  # QueryStats counts nothing-sent in its first slot
_SERVFAIL_KEY = ReplyKey("", -1, Rcode.SERVFAIL)

# The plain path (Answerer._plain_untrusted) takes only the plainest
# query: QDCOUNT 1, ANCOUNT 0, NSCOUNT 0, and an ARCOUNT of 0 or 1 (an OPT).
_ONE_QUESTION = b"\x00\x01\x00\x00\x00\x00"
_NO_ADDITIONAL = b"\x00\x00"
_ONE_ADDITIONAL = b"\x00\x01"
# Its header after the ID, by the query's RD (0x01), CD (0x10) and OPT (0x02): QR, AA and
# NXDOMAIN, the query's RD and CD (_COPIED_FLAGS, the opcode being 0), and the counts.
_NXDOMAIN_HEADS = {
    rd | cd | opt: struct.pack("!HHHHH", 0x8403 | rd << 8 | cd, 1, 0, 1, opt >> 1)
    for rd in (0, 0x01)
    for cd in (0, 0x10)
    for opt in (0, 0x02)
}
_TRANSFER_TYPES = (RT.AXFR, RT.IXFR)
_OPT_FIXED = struct.Struct("!HHIH")  # an RR after its owner: TYPE, CLASS, TTL, RDLENGTH
_SCOPE = [bytes((n,)) for n in range(129)]  # an ECS SCOPE PREFIX-LENGTH octet

_CHAOS_ID = {b"\x02id\x06server\x00", b"\x08hostname\x04bind\x00"}
_CHAOS_VERSION = {b"\x07version\x04bind\x00", b"\x07version\x06server\x00"}


@dataclass(frozen=True, slots=True)
class Peer:
    """Where a query came from."""

    host: str
    port: int
    transport: str  # "udp" | "tcp"


@dataclass(frozen=True, slots=True)
class ServerOptions:
    """Settings that shape every reply."""

    udp_size: int = 1232  # DNS Flag Day 2020: avoids IP fragmentation on nearly every path
    server_id: str = ""
    version: str = f"geodns {__version__}"
    # The 16-octet key of RFC 9018 server cookies. Empty: a random one per process, which
    # is right for one server; servers answering behind one address (anycast, one NS name
    # on several hosts) must share one, or a cookie from one fails at the next.
    cookie_secret: bytes = b""


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
    copied: int = _COPIED_FLAGS  # the query's header bits this reply echoes

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
    full, counts = _encode_sections(qname, qtype, qclass, res.answer, res.authority, res.additional)
    short_body = None
    short_counts = (0, 0, 0)
    if res.additional and not res.glue_required:
        short_body, short_counts = _encode_sections(
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
    other shape, which _encode_sections renders."""
    if rrset.rdtype not in _NAMELESS_RDATA or not rrset or rrset.name != qname:
        return None
    fixed = _RR_FIXED.pack
    parts = []
    for rdata in rrset:
        wire = rdata.to_wire()
        parts.append(b"\xc0\x0c" + fixed(rrset.rdtype, rrset.rdclass, rrset.ttl, len(wire)) + wire)
    return b"".join(parts)


def _encode_sections(
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


def _bare(
    rcode: Rcode,
    authoritative: bool = False,
    cacheable: bool = True,
    ede: int | None = None,
    copied: int = _COPIED_FLAGS,
) -> Prepared:
    flags = (FLAG_AA if authoritative else 0) | (rcode & 0xF)
    option = ede_option(ede) if ede is not None else b""
    return Prepared(flags, rcode >> 4, b"", (0, 0, 0), None, (0, 0, 0), cacheable, option, copied)


# RFC 8914 INFO-CODEs, sent without EXTRA-TEXT as NSD and Knot do: a refusal is what a
# reflection attack asks for, so it stays small.
EDE_PROHIBITED = 18
EDE_NOT_AUTHORITATIVE = 20
EDE_NOT_SUPPORTED = 21

_NXDOMAIN_FLAGS = FLAG_AA | Rcode.NXDOMAIN
REFUSED_OUTSIDE = _bare(Rcode.REFUSED, ede=EDE_NOT_AUTHORITATIVE)  # no zone of ours holds it
REFUSED_TRANSFER = _bare(Rcode.REFUSED, ede=EDE_PROHIBITED)  # zone transfers are not offered
REFUSED_PROHIBITED = _bare(Rcode.REFUSED, ede=EDE_PROHIBITED)  # e.g. id.server with no id
REFUSED_UNSUPPORTED = _bare(Rcode.REFUSED, ede=EDE_NOT_SUPPORTED)  # a class or CH name we lack
FORMERR = _bare(Rcode.FORMERR, cacheable=False, copied=_ERROR_FLAGS)
NOTIMP = _bare(Rcode.NOTIMP, cacheable=False, copied=_ERROR_FLAGS)
NOTAUTH = _bare(Rcode.NOTAUTH, cacheable=False, copied=_ERROR_FLAGS)
SERVFAIL = _bare(Rcode.SERVFAIL, cacheable=False)
BADVERS = _bare(Rcode.BADVERS)
COOKIE_ONLY = _bare(Rcode.NOERROR, cacheable=False, copied=_ERROR_FLAGS)  # RFC 7873 5.4


_NOT_BUILT = object()


@dataclass(frozen=True, slots=True)
class _Referral:
    """The referral for every name strictly below one zone cut (the same NS and glue,
    whatever the name and type), encoded once with the cut itself as the question name.
    For a name `offset` octets longer, every compression pointer in it moves by `offset`:
    those into the question (the cut now starts `offset` later) and those into the body
    (which now starts `offset` later) alike."""

    template: bytes
    counts: tuple[int, int, int]
    pointers: tuple[int, ...]  # where in `template` each compression pointer is

    @classmethod
    def build(cls, zones: ZoneSet, cut: bytes) -> _Referral | None:
        name = dns.name.from_wire(cut, 0)[0]
        res = resolve(zones, dns.name.Name((b"x", *name.labels)), RT.A)
        if res.rcode != Rcode.NOERROR or res.authoritative or res.answer or res.ede is not None:
            return None
        body, counts = _encode_sections(name, RT.A, CLASS_IN, (), res.authority, res.additional)
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
        rtype, _, _, rdlen = _OPT_FIXED.unpack_from(body, at)
        at += 10
        if rtype == RT.NS:
            if skip_name(at) != at + rdlen:
                return None
        elif rtype not in (RT.A, RT.AAAA, RT.DS):
            return None
        at += rdlen
    return tuple(found) if at == len(body) else None


class Answerer:
    """`answer(query, peer) -> reply | None` for one immutable ZoneSet and option set.

    A new configuration gets a new Answerer, which drops both caches with it.
    """

    def __init__(
        self,
        zones: ZoneSet,
        options: ServerOptions | None = None,
        state: StateSnapshot = ALL_UP,
        geoip: GeoIPDatabase | None = None,
        stats: QueryStats | None = None,
        query_log: QueryLog | None = None,
    ) -> None:
        self.zones = zones
        # The sampled query log (docs/logging.md), or None: off, and then the hot path pays
        # one test of a local per query for it.
        self.query_log = query_log
        self.options = options or ServerOptions()
        self.geo = GeoAnswers(zones, state, geoip)
        # Outlives this Answerer: a reload swaps the Answerer, not the counts.
        self.stats = stats or QueryStats()
        # (service, name asked, client network, qtype, ECS /0) -> (encoded answer, ECS scope,
        # count slot)
        # ... and the client's bucket after them, for a network whose entry is BY_BUCKET
        self._decisions: dict[tuple[object, ...], tuple[Prepared, int, int] | Any] = {}
        # (service, decision signature) -> encoded answer: few, shared by many networks
        self._encoded: dict[tuple[str, object], Prepared] = {}
        self._server_id = self.options.server_id.encode("utf-8")[:65535]
        # Also what response rate limiting asks whether a query proves its source address.
        self.cookies = ServerCookies(self.options.cookie_secret)
        # Query bytes after the ID -> (reply after the ID, the slot it is counted in): static
        # replies, which no region state changes, then replies that depend on the state
        # too (service names asked with ECS), dropped with every new state.
        self._exact: dict[str, dict[bytes, tuple[bytes, int]]] = {UDP: {}, TCP: {}}
        self._by_state: dict[str, dict[bytes, tuple[bytes, int]]] = {UDP: {}, TCP: {}}
        # Service-name queries without ECS: (query bytes after the ID, sender) -> the same.
        self._by_source: dict[str, dict[tuple[bytes, str], tuple[bytes, int]]] = {
            UDP: {},
            TCP: {},
        }
        # Queries echoing a server cookie we return as it came (RFC 9018 4.3): (bytes,
        # sender) -> (reply, slot, until when on the cookie clock the cookie may be reused).
        self._cookied: dict[str, dict[tuple[bytes, str], tuple[bytes, int, float]]] = {
            UDP: {},
            TCP: {},
        }
        self._origins = {
            origin.canonicalize().to_wire(): origin.to_text(omit_final_dot=True) or "."
            for origin in zones.zones
        }
        self._prepared: dict[tuple[bytes, int, int], Prepared] = {}
        # Both caches for names no zone lists (UNLISTED_CACHE_SIZE): query bytes -> reply,
        # and (name, type, class) -> encoded answer.
        self._unlisted: dict[str, dict[bytes, tuple[bytes, int]]] = {UDP: {}, TCP: {}}
        self._prepared_unlisted: dict[tuple[bytes, int, int], Prepared] = {}
        self._wire_index = WireIndex(zones)
        self._opt_cache: dict[tuple[bool, bool, int, bytes], bytes] = {}
        # (zone origin, qtype, rcode) -> the stats slot of an unlisted reply of _plain_untrusted
        self._fast_slots: dict[tuple[str, int, int], int] = {}
        # delegation point (wire) -> its referral for the names below it, or None
        self._referrals: dict[bytes, _Referral | None] = {}
        self.dropped = 0
        self.errors = 0

    def warm_from(self, old: Answerer, budget: float = WARM_BUDGET) -> int:
        """Answer again, into this Answerer's caches, what `old` answered last, for up to
        `budget` seconds of this thread's CPU: first each name and type it answered (its
        prepared answers), then its UDP replies, newest first; the number of both warmed.

        A new configuration starts with empty caches, and the first query for each name
        costs about 45 us against 0.5 from a cache: after a reload at 20,000 q/s of 5,000
        names, the loop fell behind by a third of a second. A name's prepared answer is
        most of that (13 us to make, and the reply from it about 5), so names come first:
        with 5,000 in use, all of them fit in the budget. A reload warms the new Answerer
        while the old one's stand-in still answers, so the names in use are ready when it
        takes over. Nothing is counted: no client asked these.
        """
        # CPU time, not wall time: a reload warms at the lowest priority, and the time the
        # stand-in takes the core from it must not shorten the warming.
        deadline = time.thread_time() + budget
        warmed = 0
        prepared_for = self._prepared_for
        for key in reversed(list(old._prepared)):
            if warmed % 64 == 0 and warmed and time.thread_time() > deadline:
                return warmed
            prepared_for(*key)
            warmed += 1
        answer = self._answer
        for tail in reversed(list(old._exact[UDP])):
            if warmed % 64 == 0 and warmed and time.thread_time() > deadline:
                break
            answer(b"\0\0" + tail, UDP, _WARM_PEER)
            warmed += 1
        return warmed

    @property
    def state(self) -> StateSnapshot:
        return self.geo.state

    def set_state(self, state: StateSnapshot) -> None:
        """A new region state: every decision, and every reply built from one, is stale."""
        self.geo.state = state
        self.drop_decisions()

    def drop_decisions(self) -> None:
        """After a state change or a new GeoIP database."""
        self._decisions.clear()
        self._encoded.clear()
        self.geo.drop_class_decisions()
        for by_state in self._by_state.values():
            by_state.clear()
        for by_source in self._by_source.values():
            by_source.clear()
        for cookied in self._cookied.values():
            cookied.clear()

    def handler(self, transport: str) -> Callable[[bytes, tuple], bytes | None]:
        """The hot path for one transport as a closure: the exact-query cache, then `_answer`.

        The first cache holds replies that the query bytes alone decide; a service name
        asked without ECS depends on the sender too, so it is cached by (bytes, sender).
        A reply carrying a server cookie is only ever reused for the sender it was made
        for, and only while the cookie it echoes may be returned as it is.
        """
        cache_get = self._exact[transport].get
        state_get = self._by_state[transport].get
        source_get = self._by_source[transport].get
        cookied_get = self._cookied[transport].get
        unlisted = self._unlisted[transport]
        unlisted_get = unlisted.get
        cookie_clock = self.cookies.clock
        answer = self._answer
        plain_fast = self._plain_untrusted
        counts = self.stats.counts[transport]
        buckets = self.stats.latency_buckets
        observe = self.stats.observe
        clock = time.perf_counter
        note = None if self.query_log is None else self.query_log.note

        def handle(data: bytes, addr: tuple) -> bytes | None:
            tail = data[2:]  # one slice, so that its hash is computed once for every cache
            hit = cache_get(tail)
            if hit is None:
                hit = state_get(tail)
                if hit is None:
                    hit = unlisted_get(tail)
                    if hit is None:
                        hit = source_get((tail, addr[0]))
                        if hit is None:
                            hit = cookied_get((tail, addr[0]))
                            if hit is not None and hit[2] <= cookie_clock():
                                hit = None
            if hit is not None:
                counts[hit[1]] += 1
                # A cached reply takes well under the first bound (10 us): it is counted
                # there untimed, since two clock reads would cost more than the reply.
                buckets[0] += 1
                if note is None:
                    return data[:2] + hit[0]
                reply = data[:2] + hit[0]
                note(self, transport, PATH_CACHE, hit[1], data, addr, reply)
                return reply
            try:
                fast = plain_fast(data, transport)
            except Exception:  # a bug here must cost the shortcut, not the query
                log.debug("fast path failed; the full path answers", exc_info=True)
                fast = None
            if fast is not None:
                reply, key_id, keep = fast
                counts[key_id] += 1
                buckets[0] += 1  # as fast as a cached reply, and counted the same way
                # Kept for the same bytes asked again (a resolver's next client in the same
                # subnet, a retry, a typo many clients make) while its cache has room: under
                # a flood of random subnets or names it fills once and then costs a length
                # check, never an eviction of what real clients asked first.
                if keep is not None and len(keep) < (
                    UNLISTED_CACHE_SIZE if keep is unlisted else EXACT_CACHE_SIZE
                ):
                    keep[tail] = (reply[2:], key_id)
                if note is not None:
                    note(self, transport, PATH_FAST, key_id, data, addr, reply)
                return reply
            start = clock()
            reply, key_id = answer(data, transport, addr)
            counts[key_id] += 1
            observe(clock() - start)
            if note is not None:
                note(self, transport, PATH_FULL, key_id, data, addr, reply)
            return reply

        return handle

    def _plain_untrusted(
        self, data: bytes, transport: str
    ) -> tuple[bytes, int, dict[bytes, tuple[bytes, int]] | None] | None:
        """The reply to the plainest queries, its stats slot, and the reply cache it may be
        kept in (None: the query bytes alone do not decide it). None for anything else,
        which the full path (`_answer`) takes. Two kinds take this path: a service name
        asked with ECS (_by_class_untrusted), and a name no zone lists (NXDOMAIN, a
        referral for a name below a delegation, or REFUSED outside our zones), kept in
        the unlisted cache unless it is a v<version> name's NXDOMAIN, which lasts only as
        long as the region state.

        These are the paths of the two floods that miss every cache: random client
        subnets asking a service name, and random names ("water torture":
        a8f3k.example.com, each asked once). So it uses neither dnspython nor a query
        object: it reads the plainest query shape only (one question of class IN, no
        records but an optional OPT of version 0 with no cookie), and for an unlisted
        name asks the wire index what the name is, and writes the header, the query's own
        question (its case kept), a pre-encoded body (the zone's SOA; the cut's NS and
        glue with their pointers moved; nothing) and the OPT. The handler keeps its
        replies in caches it only fills while they have room (the unlisted one holds no
        name that exists), so a flood can neither grow memory nor evict real answers. What
        it declines (malformed or unusual queries, names that exist or may match a
        wildcard, replies too big for the client's buffer) the full path answers.
        """
        end = len(data)
        if end < 17 or data[2] & 0xF8 or data[4:10] != _ONE_QUESTION:
            return None  # a response, an opcode other than QUERY, or not one plain question
        offset = 12
        while True:
            if offset >= end:
                return None
            length = data[offset]
            if length == 0:
                break
            if length > 63:
                return None  # compressed or extended label: FORMERR from the full path
            offset += length + 1
            if offset - 12 > MAX_NAME:
                return None  # too long: stop here rather than walk a 64 KB TCP message
        offset += 1
        question_end = offset + 4
        if (
            offset - 12 > MAX_NAME
            or question_end > end
            or data[offset + 2 : question_end] != b"\x00\x01"
        ):
            return None
        qtype = (data[offset] << 8) | data[offset + 1]
        if qtype in _TRANSFER_TYPES:
            return None
        arcount = data[10:12]
        edns = None
        if arcount == _NO_ADDITIONAL:
            if question_end != end:
                return None
            rdata_at = 0
        elif arcount == _ONE_ADDITIONAL:
            rdata_at = question_end + 11
            if rdata_at > end or data[question_end] != 0:
                return None
            rtype, payload, ttl, rdlen = _OPT_FIXED.unpack_from(data, question_end + 1)
            if rtype != TYPE_OPT or rdata_at + rdlen != end or ttl & 0xFF0000:
                return None  # not one OPT, or BADVERS (version > 0): the full path's
        else:
            return None
        qname_key = data[12:offset].lower()
        geo = self.geo
        dynamic = geo.names.get(qname_key)
        if dynamic is not None:
            if rdata_at == 0 or (dynamic.kind == ALIAS and qtype not in ALIAS_TYPES):
                return None  # no ECS: the sender's address decides; a static answer
            return self._by_class_untrusted(data, dynamic, qtype, question_end, transport)
        if rdata_at:
            try:
                edns = parse_opt_untrusted(payload, ttl, data[rdata_at:])
            except MalformedQuery:
                return None
            if edns.cookie is not None:
                return None  # server cookies are the full path's
        by_bytes = True
        if qname_key[0] > 1 and qname_key[1] == 0x76 and geo.may_be_version_host(qname_key):
            if geo.version_host(qname_key) is not None:
                return None  # v<version>.<service> of a version some region reports: it exists
            by_bytes = False
        index = self._wire_index
        body = index.nxdomain_body(qname_key)
        if body is not None:
            # The body starts with a pointer to the zone's origin in the question (12 + offset).
            origin = self._origins[qname_key[((body[0] & 0x3F) << 8 | body[1]) - 12 :]]
            head = _NXDOMAIN_HEADS[(data[2] & 0x01) | (data[3] & 0x10) | (edns is not None) << 1]
            opt = b"" if edns is None else self._opt(edns, 0)
            rcode = Rcode.NXDOMAIN
        else:
            cut = index.referral_cut(qname_key)
            if cut is not None:
                template = self._referral_template(cut[0])
                if template is None:
                    return None
                body = template.body(cut[1])
                counts = template.counts
                origin = self._zone_of(qname_key)
                rcode = Rcode.NOERROR
                opt = b"" if edns is None else self._opt(edns, 0)
            elif index.outside(qname_key):
                body, counts, origin = b"", (0, 0, 0), ""
                rcode = Rcode.REFUSED
                opt = b"" if edns is None else self._opt(edns, 0, REFUSED_OUTSIDE.ede)
            else:
                return None
            flags = FLAG_QR | (((data[2] << 8) | data[3]) & _COPIED_FLAGS) | rcode
            head = struct.pack("!HHHHH", flags, 1, counts[0], counts[1], counts[2] + bool(opt))
        slot = self._fast_slots.get((origin, qtype, rcode))
        if slot is None:
            key = ReplyKey(origin, qtype, rcode)
            slot = self._fast_slots[(origin, qtype, rcode)] = self.stats.key_id(key)
        reply = data[:2] + head + data[12:question_end] + body + opt
        if len(reply) > MIN_UDP and len(reply) > self._limit(edns, transport):
            return None  # a long name and a small buffer: the full path decides what fits
        return reply, slot, self._unlisted[transport] if by_bytes else None

    def _by_class_untrusted(
        self, data: bytes, dynamic: DynamicName, qtype: int, question_end: int, transport: str
    ) -> tuple[bytes, int, dict[bytes, tuple[bytes, int]] | None] | None:
        """The reply to a query for a service name whose only EDNS option is ECS with a
        source prefix, from its class (GeoAnswers.class_answer): the same bytes the full
        path sends, without building a Query, an Edns or a client. None for anything
        else, and where the class path cannot say. The header, the question and the OPT's
        fixed part are the caller's (_plain_untrusted) to have checked."""
        end = len(data)
        at = question_end + 11  # the OPT's RDATA: exactly one option, ECS
        if end - at < 8 or data[at] != 0 or data[at + 1] != OPT_ECS:
            return None
        if at + 4 + ((data[at + 2] << 8) | data[at + 3]) != end:
            return None
        family = (data[at + 4] << 8) | data[at + 5]
        source = data[at + 6]
        address_at = at + 8
        size = end - address_at
        # A malformed option is FORMERR, which the full path writes; /0 is the resolver's
        # address, which the full path looks up.
        if source == 0 or ecs_problem(family, source, data[at + 7], size, data[end - 1]):
            return None
        bits = 32 if family == 1 else 128
        value = int.from_bytes(data[address_at:end], "big") << (bits - 8 * size)
        found = self.geo.class_answer(dynamic, qtype, value, 4 if bits == 32 else 6)
        if found is None:
            return None
        answer, scope = found
        prepared, slot = self._class_reply(dynamic, qtype, answer)
        # Our OPT (as _opt builds it): the DO bit echoed, the ECS option as it came with our
        # scope, and the answer's EDE if any (a refusal's reason).
        options = data[at : at + 7] + _SCOPE[scope] + data[address_at:end] + prepared.ede
        udp_size = self.options.udp_size
        opt = build_opt(udp_size, bool(data[question_end + 7] & 0x80), prepared.ext_rcode, options)
        payload = (data[question_end + 3] << 8) | data[question_end + 4]
        limit = _reply_limit(transport, payload, udp_size)
        reply = prepared.render(
            (data[0] << 8) | data[1], (data[2] << 8) | data[3], data[12:question_end], opt, limit
        )
        return reply, slot, self._by_state[transport]

    def _referral_template(self, cut: bytes) -> _Referral | None:
        """The referral for names below `cut`, encoded once per cut (there are few)."""
        template = self._referrals.get(cut, _NOT_BUILT)
        if template is _NOT_BUILT:
            template = self._referrals[cut] = _Referral.build(self.zones, cut)
        return template  # type: ignore[return-value]

    def answer(self, data: bytes, peer: Peer) -> bytes | None:
        """The reply to `data`, or None to send nothing: the same path the listeners take.
        (The handler is not kept: a handler on its Answerer would be a reference cycle, and
        a replaced configuration could then only be freed by a full collection.)"""
        return self.handler(peer.transport)(data, (peer.host, peer.port))

    def _answer(self, data: bytes, transport: str, addr: tuple) -> tuple[bytes | None, int]:
        """The reply and the slot it is counted in."""
        try:
            reply, cacheable, counted = self._reply(data, transport, addr)
        except ShortHeader:
            self.dropped += 1
            return None, DROPPED_ID
        except Exception:  # a bug must cost one query, never the server
            self.errors += 1
            log.exception("error answering a query; replying SERVFAIL")
            return self._header_only(data, SERVFAIL), self.stats.key_id(_SERVFAIL_KEY)
        if reply is None:
            self.dropped += 1
            return None, DROPPED_ID
        key = counted if isinstance(counted, int) else self.stats.key_id(counted)
        if cacheable is True:
            exact = self._exact[transport]
            if len(exact) >= EXACT_CACHE_SIZE:
                exact.clear()
            exact[data[2:]] = (reply[2:], key)
        elif cacheable == BY_STATE:
            # Keyed by bytes that carry the client's subnet: a flood of random subnets would
            # fill it in a moment. Full, it takes no more (until the next state empties it)
            # rather than evicting what real clients asked first; the rest are answered by
            # class, which costs no memory per subnet.
            by_state = self._by_state[transport]
            if len(by_state) < EXACT_CACHE_SIZE:
                by_state[data[2:]] = (reply[2:], key)
        elif cacheable == UNLISTED:
            unlisted = self._unlisted[transport]
            if len(unlisted) >= UNLISTED_CACHE_SIZE:
                unlisted.clear()
            unlisted[data[2:]] = (reply[2:], key)
        elif cacheable == BY_SOURCE:
            by_source = self._by_source[transport]
            if len(by_source) >= EXACT_CACHE_SIZE:
                by_source.clear()
            by_source[(data[2:], addr[0])] = (reply[2:], key)
        elif isinstance(cacheable, float):
            cookied = self._cookied[transport]
            if len(cookied) >= EXACT_CACHE_SIZE:
                cookied.clear()
            cookied[(data[2:], addr[0])] = (reply[2:], key, cacheable)
        return reply, key

    def _reply(
        self, data: bytes, transport: str, addr: tuple
    ) -> tuple[bytes | None, bool | str | float, ReplyKey | int]:
        """The reply, how it may be cached, and what it is counted as. Cacheable: False,
        True (by query bytes), BY_STATE, BY_SOURCE, or a float: it echoes the query's own
        server cookie, and may be reused for the same bytes and sender until then."""
        if len(data) < 12:
            raise ShortHeader
        flags = (data[2] << 8) | data[3]
        if flags & FLAG_QR:
            return None, False, DROPPED_ID  # a response, maybe reflected at us: never answer it
        qid = (data[0] << 8) | data[1]
        opcode = (flags >> 11) & 0xF
        try:
            query = parse_query_untrusted(data)
        except QueryError as exc:
            log.debug("FORMERR: %s", exc)
            rcode = NOTIMP if opcode != dns.opcode.QUERY else FORMERR
            question = data[12 : exc.question_end]
            return (
                *self._render(rcode, qid, flags, question, exc.edns, transport),
                ReplyKey("", -1, _rcode(rcode)),
            )
        question = data[12 : query.question_end]
        qname_key = query.qname.lower()
        edns = query.edns
        # A server cookie depends on the sender and the time: a reply carrying one never
        # enters a cache shared between senders (RFC 7873 5.2).
        cookie, until = b"", 0.0
        if edns is not None and edns.cookie is not None:
            cookie, until = self.cookies.reply_option(edns.cookie, addr[0])
        state_scoped = False
        if opcode != dns.opcode.QUERY:
            prepared = NOTIMP
        elif query.tsig is not None:
            # RFC 8945 5.2.2: we hold no keys, so every key is unknown (before BADVERS, as NSD).
            return self._notauth(query, qid, flags, question, transport, cookie)
        elif edns is not None and edns.version > 0:
            # RFC 6891 6.1.3: BADVERS, and our OPT says which version we speak.
            prepared = BADVERS
        elif not query.has_question:
            prepared = COOKIE_ONLY
        elif query.qtype in (RT.AXFR, RT.IXFR) and query.qclass == CLASS_IN:
            prepared = self._transfer(qname_key)
        else:
            dynamic = self.geo.names.get(qname_key)
            if dynamic is None and self.geo.may_be_version_host(qname_key):
                dynamic = self.geo.version_host(qname_key)
                # v<version> of a service is NXDOMAIN until a region reports that version,
                # so that reply lives only as long as the state.
                state_scoped = dynamic is None
            if dynamic is not None and dynamic.kind == ALIAS and query.qtype not in ALIAS_TYPES:
                dynamic = None  # a CNAME query, say: the static answer is the right one
            if dynamic is not None and query.qclass == CLASS_IN:
                return self._geo_reply(
                    dynamic, query, addr, qid, flags, question, transport, cookie, until
                )
            prepared = self._prepared_for(qname_key, query.qtype, query.qclass)
        key = ReplyKey(self._zone_of(qname_key), query.qtype, _rcode(prepared))
        reply, cacheable = self._render(prepared, qid, flags, question, edns, transport, 0, cookie)
        listed = self._wire_index.listed(qname_key)
        if cookie:
            # Per sender, and not for unlisted names: a flood must not churn it either.
            return reply, _cookied(cacheable and listed, until), key
        if state_scoped and cacheable:
            return reply, BY_STATE, key
        return reply, cacheable if listed or cacheable is not True else UNLISTED, key

    def _transfer(self, qname_key: bytes) -> Prepared:
        """AXFR and IXFR, which geodns does not offer, answered as NSD answers them without
        provide-xfr: REFUSED with EDE 18 (Prohibited) for one of our zones, NOTAUTH for a
        name that is no zone of ours (Knot too). The same over UDP and TCP: NSD and Knot
        answer AXFR over UDP with NOTIMP instead (RFC 5936 4.2: AXFR is a TCP exchange),
        but one answer for a refused transfer, whatever the transport, is simpler to read."""
        if qname_key in self._origins:
            return REFUSED_TRANSFER
        return NOTAUTH

    def _notauth(
        self,
        query: Query,
        qid: int,
        qflags: int,
        question: bytes,
        transport: str,
        cookie: bytes,
    ) -> tuple[bytes, bool, ReplyKey]:
        """NOTAUTH with an unsigned TSIG RR, error BADKEY, last in the reply (RFC 8945
        5.3.2): the request's key name, algorithm, time signed and fudge, no MAC."""
        assert query.tsig is not None
        opt = b""
        if query.edns is not None:
            opt = self._opt(query.edns, NOTAUTH.ext_rcode, b"", 0, cookie)
        tsig = tsig_error_rr(query.tsig)
        flags = FLAG_QR | (qflags & _ERROR_FLAGS) | NOTAUTH.flags
        limit = self._limit(query.edns, transport)
        if 12 + len(question) + len(opt) + len(tsig) > limit:
            flags |= FLAG_TC  # a key name and algorithm name of 255 octets each, over UDP
            tsig = b""
        counts = (1 if question else 0, 0, 0, (1 if opt else 0) + (1 if tsig else 0))
        reply = HEADER.pack(qid, flags, *counts) + question + opt + tsig
        key = ReplyKey(self._zone_of(query.qname.lower()), query.qtype, Rcode.NOTAUTH)
        return reply, False, key

    def _zone_of(self, qname_key: bytes) -> str:
        """The origin of the zone `qname_key` (lowercased wire) falls in, or ""."""
        i = 0
        while i < len(qname_key):
            origin = self._origins.get(qname_key[i:])
            if origin is not None:
                return origin
            i += qname_key[i] + 1
        return ""

    def _geo_reply(
        self,
        dynamic: DynamicName,
        query: Query,
        addr: tuple,
        qid: int,
        flags: int,
        question: bytes,
        transport: str,
        cookie: bytes = b"",
        until: float = 0.0,
    ) -> tuple[bytes, bool | str | float, int]:
        edns = query.edns
        ecs = edns.ecs if edns is not None else None
        if ecs is not None and ecs.source_prefix > 0:
            # The class path first: one search in the merged runs, a decision per class
            # (and bucket), no GeoIP lookup and no cache entry per client network.
            size = 4 if ecs.family == 1 else 16
            value = int.from_bytes(ecs.address + bytes(size - len(ecs.address)), "big")
            found = self.geo.class_answer(dynamic, query.qtype, value, 4 if size == 4 else 6)
            if found is not None:
                prepared, counted = self._class_reply(dynamic, query.qtype, found[0])
                reply, _ = self._render(
                    prepared, qid, flags, question, edns, transport, found[1], cookie
                )
                if cookie:
                    return reply, _cookied(True, until), counted
                return reply, BY_STATE, counted
            address = client_address(ecs.family, ecs.address, ecs.source_prefix)
            client = self.geo.locate(address, ecs.source_prefix, dynamic.service)
        else:
            # No ECS, or /0 (the client opted out): the resolver's address is all we have.
            client = self.geo.locate(addr[0], 0 if ecs is not None else None, dynamic.service)
        # A /0 query's reply claims scope 0 (GeoAnswers.ecs_scope): it must not share a
        # cached decision with the queries that claim this network's scope.
        key = (
            dynamic.service.key,
            dynamic.qname,
            client.network,
            query.qtype,
            client.source_prefix == 0,
        )
        cached = self._decisions.get(key)
        if cached is BY_BUCKET:
            # This network's decisions hang on the client's bucket (shedding, a canary
            # share): they are kept per bucket, which the network's entry only points to.
            key = (*key, bucket(client))
            cached = self._decisions.get(key)
        if cached is not None:
            self.stats.decision_hits += 1
        else:
            self.stats.decision_misses += 1
            result = self.geo.resolve(dynamic, query.qtype, client)
            if result.decision.by_network and len(key) == 5:
                self._decisions[key] = BY_BUCKET
                key = (*key, bucket(client))
            prepared = self._encoded_answer(dynamic, query.qtype, result)
            counted = self._count_slot(dynamic, query.qtype, prepared, result)
            cached = (prepared, result.scope_prefix, counted)
            if len(self._decisions) >= DECISION_CACHE_SIZE:
                self._decisions.clear()
                if len(key) == 6:
                    self._decisions[key[:5]] = BY_BUCKET
            self._decisions[key] = cached
        prepared, scope, counted = cached
        reply, _ = self._render(prepared, qid, flags, question, edns, transport, scope, cookie)
        if cookie:
            return reply, _cookied(True, until), counted
        # The bytes decide the reply only when they carry the client's subnet; without one,
        # or with SOURCE PREFIX-LENGTH 0 (RFC 7871 7.1.2: the resolver's address stands for
        # the client), the bytes and the sender's address do.
        by_bytes = ecs is not None and ecs.source_prefix > 0
        return reply, BY_STATE if by_bytes else BY_SOURCE, counted

    def _class_reply(
        self, dynamic: DynamicName, qtype: int, answer: ClassAnswer
    ) -> tuple[Prepared, int]:
        """The encoded answer of a class path decision and its count slot, kept on the
        ClassAnswer (the encoding itself is shared by every decision with its signature)."""
        reply = answer.reply
        if reply is not None:
            self.stats.decision_hits += 1
            return reply  # type: ignore[return-value]
        self.stats.decision_misses += 1
        prepared = self._encoded_answer(dynamic, qtype, answer.result)
        reply = answer.reply = (prepared, self._count_slot(dynamic, qtype, prepared, answer.result))
        return reply

    def _encoded_answer(self, dynamic: DynamicName, qtype: int, result: GeoResult) -> Prepared:
        """The decision's answer in wire form, encoded once per signature (every client
        whose decision has it shares it); a signature of None is this client's alone."""
        shared = (dynamic.service.key, result.signature)
        prepared = self._encoded.get(shared) if result.signature is not None else None
        if prepared is None:
            prepared = encode_resolution(
                dns.name.from_wire(dynamic.qname, 0)[0],
                qtype,
                CLASS_IN,
                self.geo.resolution(result),
            )
            if result.signature is not None:
                self._encoded[shared] = prepared
        return prepared

    def _count_slot(
        self, dynamic: DynamicName, qtype: int, prepared: Prepared, result: GeoResult
    ) -> int:
        """Where replies of this answer are counted (zone, type, rcode, service, regions,
        residency rule): once per decision, so that counting costs a query nothing more."""
        return self.stats.key_id(
            ReplyKey(
                dynamic.zone.origin.to_text(omit_final_dot=True),
                qtype,
                _rcode(prepared),
                dynamic.service.key,
                self.geo.answered_regions(result),
                self.geo.failed_closed_by(result),
            )
        )

    def _render(
        self,
        prepared: Prepared,
        qid: int,
        qflags: int,
        question: bytes,
        edns: Edns | None,
        transport: str,
        scope: int = 0,
        cookie: bytes = b"",
    ) -> tuple[bytes, bool]:
        opt = b""
        if edns is not None:
            opt = self._opt(edns, prepared.ext_rcode, prepared.ede, scope, cookie)
        limit = self._limit(edns, transport)
        if not question:
            # No readable question (a hopeless FORMERR, or a cookie-only query): the header
            # and the OPT alone.
            reply = (
                HEADER.pack(
                    qid,
                    FLAG_QR | (qflags & prepared.copied) | prepared.flags,
                    0,
                    0,
                    0,
                    1 if opt else 0,
                )
                + opt
            )
            return reply, False
        reply = prepared.render(qid, qflags, question, opt, limit)
        return reply, prepared.cacheable

    def _limit(self, edns: Edns | None, transport: str) -> int:
        payload = None if edns is None else edns.payload
        return _reply_limit(transport, payload, self.options.udp_size)

    def _opt(
        self, edns: Edns, ext_rcode: int, ede: bytes = b"", scope: int = 0, cookie: bytes = b""
    ) -> bytes:
        if edns.ecs is None and not cookie:
            key = (edns.do, edns.nsid, ext_rcode, ede)
            opt = self._opt_cache.get(key)
            if opt is None:
                options = self._nsid(edns) + ede
                opt = build_opt(self.options.udp_size, edns.do, ext_rcode, options)
                self._opt_cache[key] = opt
            return opt
        options = self._nsid(edns)
        if edns.ecs is not None:
            # RFC 7871 7.2.1: the scope is the network the answer holds for; 0: every client.
            options += edns.ecs.to_option(scope_prefix=scope)
        return build_opt(self.options.udp_size, edns.do, ext_rcode, options + cookie + ede)

    def _nsid(self, edns: Edns) -> bytes:
        # With no server id configured there is nothing to identify: send no NSID at all.
        return nsid_option(self._server_id) if edns.nsid and self._server_id else b""

    def _header_only(self, data: bytes, prepared: Prepared) -> bytes | None:
        if len(data) < 12:
            return None
        qid, flags = struct.unpack_from("!HH", data)
        return HEADER.pack(qid, FLAG_QR | (flags & _COPIED_FLAGS) | prepared.flags, 0, 0, 0, 0)

    def _prepared_for(self, qname_key: bytes, qtype: int, qclass: int) -> Prepared:
        key = (qname_key, qtype, qclass)
        cache = self._prepared if self._wire_index.listed(qname_key) else self._prepared_unlisted
        prepared = cache.get(key)
        if prepared is None:
            if qclass == CLASS_IN and qtype not in (RT.AXFR, RT.IXFR):
                # Random names (a water-torture flood) get an NXDOMAIN built from bytes,
                # and stay out of this cache so that they cannot evict real answers.
                body = self._wire_index.nxdomain_body(qname_key)
                if body is not None:
                    return Prepared(_NXDOMAIN_FLAGS, 0, body, (0, 1, 0), None, (0, 0, 0))
            prepared = self._prepare(qname_key, qtype, qclass)
            limit = PREPARED_CACHE_SIZE if cache is self._prepared else UNLISTED_CACHE_SIZE
            if len(cache) >= limit:
                cache.clear()
            cache[key] = prepared
        return prepared

    def _prepare(self, qname_key: bytes, qtype: int, qclass: int) -> Prepared:
        if qclass == CLASS_IN and qtype not in (RT.AXFR, RT.IXFR):
            # A name that owns data, in its zone, above no cut: its answer straight from the
            # node, without parsing the name or walking the zones (37 us to 12 for the
            # first query of a name; a reload warms thousands of them).
            owner = self._wire_index.owner(qname_key)
            if owner is not None:
                zone, name = owner
                res = resolve_owner(zone, name, RT.make(qtype))
                if res is not None:
                    return encode_resolution(name, qtype, qclass, res)
        qname = dns.name.from_wire(qname_key, 0)[0]
        if qclass == CLASS_CH:
            return self._chaos(qname, qname_key, qtype)
        if qclass != CLASS_IN:
            return REFUSED_UNSUPPORTED
        if qtype in (RT.AXFR, RT.IXFR):
            return REFUSED_TRANSFER  # zone transfers are not offered (docs/wire.md)
        res = resolve(self.zones, qname, RT.make(qtype))
        if res.rcode == Rcode.REFUSED and res.ede is None:
            return REFUSED_OUTSIDE  # resolve() refuses only names no zone of ours holds
        return encode_resolution(qname, qtype, qclass, res)

    def _chaos(self, qname: dns.name.Name, qname_key: bytes, qtype: int) -> Prepared:
        if qname_key in _CHAOS_ID:
            text = self.options.server_id
        elif qname_key in _CHAOS_VERSION:
            text = self.options.version
        else:
            return REFUSED_UNSUPPORTED
        answer: tuple[dns.rrset.RRset, ...] = ()
        if qtype in (RT.TXT, RT.ANY) and text:
            rrset = dns.rrset.RRset(qname, dns.rdataclass.CH, RT.TXT)
            rrset.add(dns.rdata.from_text(dns.rdataclass.CH, RT.TXT, _quote(text)), ttl=0)
            answer = (rrset,)
        elif qtype in (RT.TXT, RT.ANY):
            return REFUSED_PROHIBITED  # no server id configured: as NSD's hide-identity
        res = Resolution(Rcode.NOERROR, True, answer=answer)
        return encode_resolution(qname, qtype, CLASS_CH, res)


def _reply_limit(transport: str, payload: int | None, udp_size: int) -> int:
    """The largest reply a client takes: TCP's, or over UDP its EDNS payload (none: 512)
    within our own UDP size, and never under 512 (RFC 6891 6.2.5)."""
    if transport == TCP:
        return TCP_LIMIT
    if payload is None:
        return MIN_UDP
    return max(MIN_UDP, min(payload, udp_size))


def _cookied(cacheable: bool, until: float) -> bool | float:
    """How a reply carrying a server cookie may be cached: only while it echoes the query's
    own cookie (`until` > 0), and only if the same reply without one could be."""
    return until if cacheable and until else False


def _rcode(prepared: Prepared) -> int:
    return (prepared.ext_rcode << 4) | (prepared.flags & 0xF)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


__all__ = ["Answerer", "MalformedQuery", "Peer", "ServerOptions"]
