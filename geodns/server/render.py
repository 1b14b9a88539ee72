"""A reply around a Prepared answer: the header, the query's question, and the OPT this
server writes for the client (its payload size, NSID, the ECS scope, a cookie, an EDE)."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from geodns import __version__
from geodns.server.prepared import COPIED_FLAGS, FLAG_QR, Prepared, reply_limit
from geodns.wire.edns import Edns, build_opt, nsid_option
from geodns.wire.query import HEADER


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


class Renderer:
    """Writes replies for one set of ServerOptions; the OPTs that depend on nothing but the
    query's flags and the answer's rcode and EDE are built once."""

    def __init__(self, options: ServerOptions) -> None:
        self.options = options
        self.udp_size = options.udp_size
        self._server_id = options.server_id.encode("utf-8")[:65535]
        self._opt_cache: dict[tuple[bool, bool, int, bytes], bytes] = {}

    def render(
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
        """The reply, and whether the answer allows caching it."""
        opt = b""
        if edns is not None:
            opt = self.opt(edns, prepared.ext_rcode, prepared.ede, scope, cookie)
        if not question:
            # No readable question (a hopeless FORMERR, or a cookie-only query): the header
            # and the OPT alone.
            flags = FLAG_QR | (qflags & prepared.copied) | prepared.flags
            return HEADER.pack(qid, flags, 0, 0, 0, 1 if opt else 0) + opt, False
        reply = prepared.render(qid, qflags, question, opt, self.limit(edns, transport))
        return reply, prepared.cacheable

    def limit(self, edns: Edns | None, transport: str) -> int:
        payload = None if edns is None else edns.payload
        return reply_limit(transport, payload, self.udp_size)

    def opt(
        self, edns: Edns, ext_rcode: int, ede: bytes = b"", scope: int = 0, cookie: bytes = b""
    ) -> bytes:
        if edns.ecs is None and not cookie:
            key = (edns.do, edns.nsid, ext_rcode, ede)
            opt = self._opt_cache.get(key)
            if opt is None:
                options = self._nsid(edns) + ede
                opt = build_opt(self.udp_size, edns.do, ext_rcode, options)
                self._opt_cache[key] = opt
            return opt
        options = self._nsid(edns)
        if edns.ecs is not None:
            # RFC 7871 7.2.1: the scope is the network the answer holds for; 0: every client.
            options += edns.ecs.to_option(scope_prefix=scope)
        return build_opt(self.udp_size, edns.do, ext_rcode, options + cookie + ede)

    def _nsid(self, edns: Edns) -> bytes:
        # With no server id configured there is nothing to identify: send no NSID at all.
        return nsid_option(self._server_id) if edns.nsid and self._server_id else b""


def header_only(data: bytes, prepared: Prepared) -> bytes | None:
    """A reply of just a header to `data`'s ID and flags, for when nothing else of the
    query can be trusted (a SERVFAIL after a bug); None for fewer than 12 octets."""
    if len(data) < 12:
        return None
    qid, flags = struct.unpack_from("!HH", data)
    return HEADER.pack(qid, FLAG_QR | (flags & COPIED_FLAGS) | prepared.flags, 0, 0, 0, 0)
