"""The plain path: replies written straight from the query bytes, for the two floods that
miss every reply cache (random client subnets asking a service name, random names).

No dnspython and no query object: it reads only the plainest query shape and declines
everything else, which the full path (Answerer) answers. Its replies are the same bytes
the full path would send; the tests hold the two paths to that.
"""

from __future__ import annotations

import struct

import dns.rcode
import dns.rdatatype

from geodns.errors import MalformedQuery
from geodns.server.geoanswer import ALIAS, DynamicName, GeoAnswers
from geodns.server.georeplies import GeoReplies
from geodns.server.prepared import COPIED_FLAGS, FLAG_QR, MIN_UDP, REFUSED_OUTSIDE, reply_limit
from geodns.server.referral import Referral
from geodns.server.render import Renderer
from geodns.server.stats import QueryStats, ReplyKey
from geodns.wire.edns import OPT_ECS, build_opt, ecs_problem, parse_opt_untrusted
from geodns.wire.query import MAX_NAME, TYPE_OPT
from geodns.zones.model import ZoneSet
from geodns.zones.wireindex import WireIndex

RT = dns.rdatatype.RdataType
Rcode = dns.rcode.Rcode

ALIAS_TYPES = (RT.A, RT.AAAA, RT.ANY)
# Only the plainest query: QDCOUNT 1, ANCOUNT 0, NSCOUNT 0, and an ARCOUNT of 0 or 1 (an OPT).
_ONE_QUESTION = b"\x00\x01\x00\x00\x00\x00"
_NO_ADDITIONAL = b"\x00\x00"
_ONE_ADDITIONAL = b"\x00\x01"
# Its header after the ID, by the query's RD (0x01), CD (0x10) and OPT (0x02): QR, AA and
# NXDOMAIN, the query's RD and CD (COPIED_FLAGS, the opcode being 0), and the counts.
_NXDOMAIN_HEADS = {
    rd | cd | opt: struct.pack("!HHHHH", 0x8403 | rd << 8 | cd, 1, 0, 1, opt >> 1)
    for rd in (0, 0x01)
    for cd in (0, 0x10)
    for opt in (0, 0x02)
}
_TRANSFER_TYPES = (RT.AXFR, RT.IXFR)
_OPT_FIXED = struct.Struct("!HHIH")  # an RR after its owner: TYPE, CLASS, TTL, RDLENGTH
_SCOPE = [bytes((n,)) for n in range(129)]  # an ECS SCOPE PREFIX-LENGTH octet
_NOT_BUILT = object()

# A reply, its stats slot, and the reply cache it may be kept in (None: the query bytes
# alone do not decide it).
Plain = tuple[bytes, int, dict[bytes, tuple[bytes, int]] | None]


class PlainPath:
    """The plain path for one configuration; the reply caches it names are the Answerer's
    (by transport), which the handler fills."""

    def __init__(
        self,
        zones: ZoneSet,
        index: WireIndex,
        geo: GeoAnswers,
        replies: GeoReplies,
        renderer: Renderer,
        stats: QueryStats,
        unlisted: dict[str, dict[bytes, tuple[bytes, int]]],
        by_state: dict[str, dict[bytes, tuple[bytes, int]]],
    ) -> None:
        self.zones = zones
        self._wire_index = index
        self._origins = index.origin_texts
        self.geo = geo
        self._replies = replies
        self._renderer = renderer
        self.stats = stats
        self._unlisted = unlisted
        self._by_state = by_state
        # (zone origin, qtype, rcode) -> the stats slot of an unlisted reply
        self._fast_slots: dict[tuple[str, int, int], int] = {}
        # delegation point (wire) -> its referral for the names below it, or None
        self._referrals: dict[bytes, Referral | None] = {}

    def untrusted(self, data: bytes, transport: str) -> Plain | None:
        """The reply to the plainest queries, its stats slot, and the reply cache it may be
        kept in (None: the query bytes alone do not decide it). None for anything else,
        which the full path (Answerer._answer) takes. Two kinds take this path: a service
        name asked with ECS (_by_class), and a name no zone lists (NXDOMAIN, a referral for
        a name below a delegation, or REFUSED outside our zones), kept in the unlisted
        cache unless it is a v<version> name's NXDOMAIN, which lasts only as long as the
        region state.

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
            return self._by_class(data, dynamic, qtype, question_end, transport)
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
            opt = b"" if edns is None else self._renderer.opt(edns, 0)
            rcode = Rcode.NXDOMAIN
        else:
            cut = index.referral_cut(qname_key)
            if cut is not None:
                template = self._referral_template(cut[0])
                if template is None:
                    return None
                body = template.body(cut[1])
                counts = template.counts
                origin = self._wire_index.zone_of(qname_key)
                rcode = Rcode.NOERROR
                opt = b"" if edns is None else self._renderer.opt(edns, 0)
            elif index.outside(qname_key):
                body, counts, origin = b"", (0, 0, 0), ""
                rcode = Rcode.REFUSED
                opt = b"" if edns is None else self._renderer.opt(edns, 0, REFUSED_OUTSIDE.ede)
            else:
                return None
            flags = FLAG_QR | (((data[2] << 8) | data[3]) & COPIED_FLAGS) | rcode
            head = struct.pack("!HHHHH", flags, 1, counts[0], counts[1], counts[2] + bool(opt))
        slot = self._fast_slots.get((origin, qtype, rcode))
        if slot is None:
            key = ReplyKey(origin, qtype, rcode)
            slot = self._fast_slots[(origin, qtype, rcode)] = self.stats.key_id(key)
        reply = data[:2] + head + data[12:question_end] + body + opt
        if len(reply) > MIN_UDP and len(reply) > self._renderer.limit(edns, transport):
            return None  # a long name and a small buffer: the full path decides what fits
        return reply, slot, self._unlisted[transport] if by_bytes else None

    def _by_class(
        self, data: bytes, dynamic: DynamicName, qtype: int, question_end: int, transport: str
    ) -> Plain | None:
        """The reply to a query for a service name whose only EDNS option is ECS with a
        source prefix, from its class (GeoAnswers.class_answer): the same bytes the full
        path sends, without building a Query, an Edns or a client. None for anything
        else, and where the class path cannot say. The header, the question and the OPT's
        fixed part are the caller's (untrusted) to have checked."""
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
        prepared, slot = self._replies.class_reply(dynamic, qtype, answer)
        # Our OPT (as Renderer.opt builds it): the DO bit echoed, the ECS option as it came with our
        # scope, and the answer's EDE if any (a refusal's reason).
        options = data[at : at + 7] + _SCOPE[scope] + data[address_at:end] + prepared.ede
        udp_size = self._renderer.udp_size
        opt = build_opt(udp_size, bool(data[question_end + 7] & 0x80), prepared.ext_rcode, options)
        payload = (data[question_end + 3] << 8) | data[question_end + 4]
        limit = reply_limit(transport, payload, udp_size)
        reply = prepared.render(
            (data[0] << 8) | data[1], (data[2] << 8) | data[3], data[12:question_end], opt, limit
        )
        return reply, slot, self._by_state[transport]

    def _referral_template(self, cut: bytes) -> Referral | None:
        """The referral for names below `cut`, encoded once per cut (there are few)."""
        template = self._referrals.get(cut, _NOT_BUILT)
        if template is _NOT_BUILT:
            template = self._referrals[cut] = Referral.build(self.zones, cut)
        return template  # type: ignore[return-value]
