"""The sampled query log: one record per sampled query, at most `rate` a second.

The hot path (Answerer.handler) calls `QueryLog.note` where it has the answer: with the
path that answered (the reply cache, the fast path, the full path) and the slot the
reply is counted in, whose ReplyKey already names the zone, the rcode, the service and
the regions answered. The token bucket is checked first; only a query that gets a token
costs the rest: its question and ECS are read again from its bytes, the ECS scope from
the reply's, and for a service name asked with ECS the routing class's decision, which
the class path keeps, is looked up (never recomputed). When the log is off there is no
QueryLog, and the hot path's cost is the one test of `note is not None`.
"""

from __future__ import annotations

import logging
import struct
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import dns.name
import dns.rcode
import dns.rdatatype

from geodns.server.geoanswer import client_address
from geodns.tokenbucket import TokenBucket
from geodns.wire.edns import OPT_ECS, ClientSubnet
from geodns.wire.query import parse_query_untrusted

if TYPE_CHECKING:
    from geodns.server.answer import Answerer

log = logging.getLogger("geodns.query")

DEFAULT_RATE = 50.0  # records a second: enough to see what clients get, cheap at any load
# Where the reply came from, as Answerer.handler knows it.
PATH_CACHE = "cache"  # a reply cache: these query bytes were answered before
PATH_FAST = "fast"  # the plain-query path: a service name's class, or a name no zone lists
PATH_FULL = "full"  # the full path: parsed, resolved, routed per client network if need be
# How the answer was decided.
ROUTE_CLASS = "class"  # the routing class of the client's address (no GeoIP lookup)
ROUTE_NETWORK = "network"  # the client's GeoIP network (or the sender's, without ECS)
ROUTE_STATIC = "static"  # no routing: the zone's records, NXDOMAIN, a refusal


class QueryLog:
    """One worker's sampler: a token bucket of `rate` records a second, bursts of as many
    (at least one); records go to the `geodns.query` logger at INFO."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0:
            raise ValueError("the query log's rate must be more than 0 records a second")
        self.rate = rate
        self._clock = clock
        self._bucket = TokenBucket(rate, max(1.0, rate), clock())

    def note(
        self,
        answerer: Answerer,
        transport: str,
        path: str,
        slot: int,
        data: bytes,
        addr: tuple,
        reply: bytes | None,
    ) -> None:
        """Log this query if the bucket has a token; never raises (a query must not fail
        for its log record)."""
        if not self._bucket.take(self._clock()):
            return
        try:
            fields = describe(answerer, transport, path, slot, data, addr, reply)
        except Exception:
            log.debug("query log: cannot describe a query", exc_info=True)
            return
        ecs = fields["ecs"]
        log.info(
            "%s#%s %s %s %s ecs=%s -> %s region=%s path=%s route=%s",
            fields["client"],
            fields["port"],
            transport,
            fields["qname"],
            fields["qtype"],
            "-" if ecs is None else f"{ecs['address']}/{ecs['source']}/{ecs['scope']}",
            fields["rcode"] or "dropped",
            fields["region"] or "-",
            path,
            fields["route"],
            extra=fields,
        )


def describe(
    answerer: Answerer,
    transport: str,
    path: str,
    slot: int,
    data: bytes,
    addr: tuple,
    reply: bytes | None,
) -> dict[str, Any]:
    """The fields of one query's record (docs/logging.md lists them)."""
    key = answerer.stats.keys[slot]
    qname = qtype = None
    ecs: ClientSubnet | None = None
    qname_key = b""
    value = 0
    try:
        query = parse_query_untrusted(data)
    except Exception:
        query = None  # malformed: FORMERR or dropped, and only the sender is known
    if query is not None and query.has_question:
        qname_key = query.qname.lower()
        qname = dns.name.from_wire(query.qname, 0)[0].to_text()
        qtype = dns.rdatatype.to_text(query.qtype)
        ecs = query.edns.ecs if query.edns is not None else None
    ecs_json = None
    if ecs is not None:
        address = client_address(ecs.family, ecs.address, ecs.source_prefix)
        value = int(address)
        ecs_json = {
            "address": str(address),
            "source": ecs.source_prefix,
            "scope": _reply_scope(reply, ecs),
        }
    route, decision = ROUTE_STATIC, None
    if key.service is not None:
        route = ROUTE_NETWORK
        if ecs is not None and ecs.source_prefix > 0 and query is not None:
            geo = answerer.geo
            dyn = geo.names.get(qname_key) or geo.version_host(qname_key)
            family = 4 if ecs.family == 1 else 6
            found = None if dyn is None else geo.class_answer(dyn, query.qtype, value, family)
            if found is not None:
                route = ROUTE_CLASS
                decision = [f"{s.step}: {s.reason}" for s in found[0].result.decision.steps]
    return {
        "client": addr[0],
        "port": addr[1],
        "transport": transport,
        "qname": qname,
        "qtype": qtype,
        "ecs": ecs_json,
        "rcode": dns.rcode.to_text(key.rcode) if key.rcode >= 0 else None,
        "zone": key.zone or None,
        "service": key.service,
        "region": key.regions[0] if key.regions else None,
        "regions": list(key.regions),
        "path": path,
        "route": route,
        "decision": decision,
    }


def _reply_scope(reply: bytes | None, ecs: ClientSubnet) -> int | None:
    """The SCOPE PREFIX-LENGTH of the reply's ECS option: the query's option with our
    scope (Answerer writes it so), found from the end, where the OPT is."""
    if reply is None:
        return None
    head = struct.pack("!HHHB", OPT_ECS, 4 + len(ecs.address), ecs.family, ecs.source_prefix)
    at = len(reply)
    while True:
        at = reply.rfind(head, 12, at)
        if at < 0:
            return None
        start = at + len(head) + 1
        if reply[start : start + len(ecs.address)] == ecs.address:
            return reply[at + len(head)]
