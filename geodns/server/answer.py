"""From query bytes to reply bytes: one synchronous call per query, with reply caches.

The hot path, and why it is written by hand: a query from a client that asked
the same thing before (same bytes after the ID) is answered by one dict lookup
and an ID patch. The plainest uncached queries (a service name with ECS, a name no zone
lists) are written from their bytes by the plain path (plainpath.py). Anything else is
parsed (header, question, OPT), resolved from a cache of encoded answers keyed by
(lowercased name, type, class) (prepared.py), or for a service name by the geo replies
(georeplies.py), and rendered around the query's own question bytes (so the name's case
is preserved) with an OPT built for the client (render.py). dnspython encodes those
answers once; it never runs per query.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from geodns.errors import MalformedQuery, ShortHeader
from geodns.geo.geoip import GeoIPDatabase
from geodns.health.state import ALL_UP, StateSnapshot
from geodns.server.geoanswer import ALIAS, GeoAnswers
from geodns.server.georeplies import GeoReplies
from geodns.server.plainpath import ALIAS_TYPES, PlainPath
from geodns.server.prepared import (
    BADVERS,
    BY_SOURCE,
    BY_STATE,
    CLASS_CH,
    CLASS_IN,
    COOKIE_ONLY,
    ERROR_FLAGS,
    FLAG_QR,
    FLAG_TC,
    FORMERR,
    NOTAUTH,
    NOTIMP,
    NXDOMAIN_FLAGS,
    REFUSED_OUTSIDE,
    REFUSED_PROHIBITED,
    REFUSED_TRANSFER,
    REFUSED_UNSUPPORTED,
    SERVFAIL,
    TCP,
    UDP,
    UNLISTED,
    Prepared,
    cookied,
    encode_resolution,
    rcode_of,
)
from geodns.server.querylog import PATH_CACHE, PATH_FAST, PATH_FULL, QueryLog
from geodns.server.render import Renderer, ServerOptions, header_only
from geodns.server.stats import QueryStats, ReplyKey
from geodns.wire.cookie import ServerCookies
from geodns.wire.query import HEADER, Query, QueryError, parse_query_untrusted
from geodns.wire.tsig import tsig_error_rr
from geodns.zones.lookup import Resolution, resolve, resolve_owner
from geodns.zones.model import ZoneSet
from geodns.zones.wireindex import WireIndex

log = logging.getLogger("geodns.answer")

RT = dns.rdatatype.RdataType
Rcode = dns.rcode.Rcode

# Bounded so that a flood of distinct names costs a cache refill, not memory.
EXACT_CACHE_SIZE = 50_000
PREPARED_CACHE_SIZE = 50_000
# Replies for names no zone lists (outside our zones, below a delegation, from a wildcard):
# what a random-name flood asks for, so they have caches of their own, which the flood
# may churn without touching the answers for names that exist.
UNLISTED_CACHE_SIZE = 10_000
# Seconds a reload spends answering the old configuration's recent queries into the new
# one's caches (Answerer.warm_from): about 4,000 names at 45 us each.
WARM_BUDGET = 0.2
_WARM_PEER = ("127.0.0.1", 0)  # static replies do not depend on the sender
DROPPED_ID = 0  # QueryStats counts nothing-sent in its first slot
_SERVFAIL_KEY = ReplyKey("", -1, Rcode.SERVFAIL)

_CHAOS_ID = {b"\x02id\x06server\x00", b"\x08hostname\x04bind\x00"}
_CHAOS_VERSION = {b"\x07version\x04bind\x00", b"\x07version\x06server\x00"}


@dataclass(frozen=True, slots=True)
class Peer:
    """Where a query came from."""

    host: str
    port: int
    transport: str  # "udp" | "tcp"


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
        self._renderer = Renderer(self.options)
        self._geo_replies = GeoReplies(self.geo, self._renderer, self.stats)
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
        self._prepared: dict[tuple[bytes, int, int], Prepared] = {}
        # Both caches for names no zone lists (UNLISTED_CACHE_SIZE): query bytes -> reply,
        # and (name, type, class) -> encoded answer.
        self._unlisted: dict[str, dict[bytes, tuple[bytes, int]]] = {UDP: {}, TCP: {}}
        self._prepared_unlisted: dict[tuple[bytes, int, int], Prepared] = {}
        self._wire_index = WireIndex(zones)
        self._plain = PlainPath(
            zones,
            self._wire_index,
            self.geo,
            self._geo_replies,
            self._renderer,
            self.stats,
            self._unlisted,
            self._by_state,
        )
        self.dropped = 0
        self.errors = 0
        # Where UDP queries newly in the static cache go (the bytes after their ID), for the
        # worker's twin to answer into its own caches (geodns.server.twin); None: nowhere.
        self.fresh: deque[bytes] | None = None

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
        return warmed + self.warm(reversed(list(old._exact[UDP])), deadline)

    def warm(self, tails: Iterable[bytes], deadline: float = math.inf) -> int:
        """Answer UDP queries (the bytes after their ID) into the caches, uncounted, until
        `deadline` (this thread's CPU time); how many."""
        answer = self._answer
        warmed = 0
        for tail in tails:
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
        self._geo_replies.drop()
        for by_state in self._by_state.values():
            by_state.clear()
        for by_source in self._by_source.values():
            by_source.clear()
        for by_cookie in self._cookied.values():
            by_cookie.clear()

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
        plain_fast = self._plain.untrusted
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
            return header_only(data, SERVFAIL), self.stats.key_id(_SERVFAIL_KEY)
        if reply is None:
            self.dropped += 1
            return None, DROPPED_ID
        key = counted if isinstance(counted, int) else self.stats.key_id(counted)
        if cacheable is True:
            exact = self._exact[transport]
            if len(exact) >= EXACT_CACHE_SIZE:
                exact.clear()
            exact[data[2:]] = (reply[2:], key)
            if self.fresh is not None and transport == UDP:
                self.fresh.append(data[2:])
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
            by_cookie = self._cookied[transport]
            if len(by_cookie) >= EXACT_CACHE_SIZE:
                by_cookie.clear()
            by_cookie[(data[2:], addr[0])] = (reply[2:], key, cacheable)
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
                *self._renderer.render(rcode, qid, flags, question, exc.edns, transport),
                ReplyKey("", -1, rcode_of(rcode)),
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
                return self._geo_replies.reply(
                    dynamic, query, addr, qid, flags, question, transport, cookie, until
                )
            prepared = self._prepared_for(qname_key, query.qtype, query.qclass)
        key = ReplyKey(self._wire_index.zone_of(qname_key), query.qtype, rcode_of(prepared))
        reply, cacheable = self._renderer.render(
            prepared, qid, flags, question, edns, transport, 0, cookie
        )
        listed = self._wire_index.listed(qname_key)
        if cookie:
            # Per sender, and not for unlisted names: a flood must not churn it either.
            return reply, cookied(cacheable and listed, until), key
        if state_scoped and cacheable:
            return reply, BY_STATE, key
        return reply, cacheable if listed or cacheable is not True else UNLISTED, key

    def _transfer(self, qname_key: bytes) -> Prepared:
        """AXFR and IXFR, which geodns does not offer, answered as NSD answers them without
        provide-xfr: REFUSED with EDE 18 (Prohibited) for one of our zones, NOTAUTH for a
        name that is no zone of ours (Knot too). The same over UDP and TCP: NSD and Knot
        answer AXFR over UDP with NOTIMP instead (RFC 5936 4.2: AXFR is a TCP exchange),
        but one answer for a refused transfer, whatever the transport, is simpler to read."""
        if qname_key in self._wire_index.origin_texts:
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
            opt = self._renderer.opt(query.edns, NOTAUTH.ext_rcode, b"", 0, cookie)
        tsig = tsig_error_rr(query.tsig)
        flags = FLAG_QR | (qflags & ERROR_FLAGS) | NOTAUTH.flags
        limit = self._renderer.limit(query.edns, transport)
        if 12 + len(question) + len(opt) + len(tsig) > limit:
            flags |= FLAG_TC  # a key name and algorithm name of 255 octets each, over UDP
            tsig = b""
        counts = (1 if question else 0, 0, 0, (1 if opt else 0) + (1 if tsig else 0))
        reply = HEADER.pack(qid, flags, *counts) + question + opt + tsig
        key = ReplyKey(self._wire_index.zone_of(query.qname.lower()), query.qtype, Rcode.NOTAUTH)
        return reply, False, key

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
                    return Prepared(NXDOMAIN_FLAGS, 0, body, (0, 1, 0), None, (0, 0, 0))
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


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


__all__ = ["TCP", "UDP", "Answerer", "MalformedQuery", "Peer", "ServerOptions"]
