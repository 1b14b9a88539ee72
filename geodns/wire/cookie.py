"""DNS COOKIEs (RFC 7873) with interoperable server cookies (RFC 9018): make, check, encode.

A server cookie is version 1, three reserved octets, a 32-bit timestamp and an 8-octet
SipHash-2-4 of (client cookie | version | reserved | timestamp | client IP) keyed with the
server secret (RFC 9018 4.2, 4.4). Any server holding the same secret checks any other's
cookie, whatever its implementation: that is what lets a fleet (anycast, or several
addresses behind one NS name) share cookies, and why its members must share the secret.

SipHash comes from `siphashc` (a small C module kept by the Weblate project, abi3 wheels
for x86-64 and arm64): one hash of a cookie costs 0.08 us there, 13 us in pure Python.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import struct
import time
from collections.abc import Callable
from functools import lru_cache

from siphashc import siphash

from geodns.errors import MalformedQuery
from geodns.wire.edns import CLIENT_COOKIE, OPT_COOKIE
from geodns.wire.query import parse_query_untrusted

VERSION = 1  # RFC 9018 4.2: the only version defined
SECRET_SIZE = 16  # SipHash-2-4 takes a 128-bit key
SERVER_COOKIE = 16  # version, reserved (3), timestamp (4), hash (8)
MAX_AGE = 3600  # RFC 9018 4.3: a server cookie more than an hour old is not valid,
MAX_AHEAD = 300  # nor one more than five minutes in the future (clock skew in a fleet)
REUSE_FOR = 1800  # RFC 9018 4.3: a new cookie is due once the client's is half an hour old

# Used when no secret is configured: one per process, so that a reload (a new Answerer)
# keeps every cookie already handed out valid. Not shared between processes or hosts.
_PROCESS_SECRET = os.urandom(SECRET_SIZE)


@lru_cache(maxsize=4096)
def address_octets(host: str) -> bytes:
    """The client IP as RFC 9018 4.4 hashes it: 4 octets for IPv4, 16 for IPv6, as the
    socket reports it (an IPv4-mapped IPv6 address stays 16 octets, as in NSD and Knot)."""
    return ipaddress.ip_address(host.partition("%")[0]).packed


class ServerCookies:
    """Makes and checks RFC 9018 server cookies with one secret.

    `secret` is 16 octets; empty means this process's own random secret. A fleet that
    answers behind one address must give every member the same secret (and roll it as
    RFC 9018 5 describes), or a client's cookie from one member fails at the next.
    """

    def __init__(self, secret: bytes = b"", clock: Callable[[], float] = time.time) -> None:
        secret = secret or _PROCESS_SECRET
        if len(secret) != SECRET_SIZE:
            raise ValueError(f"a cookie secret is {SECRET_SIZE} octets, not {len(secret)}")
        self._secret = bytes(secret)
        self.clock = clock

    def _hash(self, head: bytes, client_ip: str) -> bytes:
        # siphashc returns the 64-bit result as an integer; SipHash's output octets are
        # that integer little-endian (the RFC 9018 appendix A vectors check this).
        return siphash(self._secret, head + address_octets(client_ip)).to_bytes(8, "little")

    def make(self, client_cookie: bytes, client_ip: str, now: int | None = None) -> bytes:
        """A fresh 16-octet server cookie for `client_cookie` sent from `client_ip`."""
        if now is None:
            now = int(self.clock())
        head = struct.pack("!BxxxI", VERSION, now & 0xFFFFFFFF)
        return head + self._hash(client_cookie + head, client_ip)

    def valid(self, cookie: bytes, client_ip: str, now: int | None = None) -> bool:
        """Whether a COOKIE option body holds a server cookie made with this secret for
        `client_ip`, at most an hour old and at most five minutes ahead (RFC 9018 4.3)."""
        if now is None:
            now = int(self.clock())
        return self._age_if_valid(cookie, client_ip, now) is not None

    def _age_if_valid(self, cookie: bytes, client_ip: str, now: int) -> int | None:
        if len(cookie) != CLIENT_COOKIE + SERVER_COOKIE or cookie[CLIENT_COOKIE] != VERSION:
            return None
        (stamp,) = struct.unpack_from("!I", cookie, CLIENT_COOKIE + 4)
        # RFC 1982 serial arithmetic: the timestamp wraps in 2106.
        age = (now - stamp) & 0xFFFFFFFF
        if age >= 1 << 31:
            age -= 1 << 32
        if age > MAX_AGE or age < -MAX_AHEAD:
            return None
        # The hash covers the reserved octets as sent (RFC 9018 4.4), so check those too.
        expected = self._hash(cookie[: CLIENT_COOKIE + 8], client_ip)
        if not hmac.compare_digest(cookie[CLIENT_COOKIE + 8 :], expected):
            return None
        return age

    def reply_option(self, cookie: bytes, client_ip: str) -> tuple[bytes, float]:
        """The COOKIE option of a reply to a query carrying `cookie` from `client_ip`, and
        until when (on `clock`) that option stays right for the same query from the same
        address: 0 when it holds a fresh server cookie, which no other query may reuse.

        A valid server cookie less than half an hour old is returned as it came (RFC 9018
        4.3, as NSD does): the client's next queries are then the same bytes, and their
        replies can be cached per sender until the cookie turns half an hour old. Any
        other cookie (none, stale, foreign, of another length) gets a fresh one: no
        BADCOOKIE, which would only make a client retry (RFC 7873 5.2.3 leaves that to
        the server's policy), and a client keeps the latest cookie (RFC 7873 5.3)."""
        now = int(self.clock())
        age = self._age_if_valid(cookie, client_ip, now)
        if age is not None and age < REUSE_FOR:
            return struct.pack("!HH", OPT_COOKIE, len(cookie)) + cookie, float(
                now - age + REUSE_FOR
            )
        client = cookie[:CLIENT_COOKIE]
        body = client + self.make(client, client_ip, now)
        return struct.pack("!HH", OPT_COOKIE, len(body)) + body, 0.0

    def has_valid_server_cookie_untrusted(self, data: bytes, client_ip: str) -> bool:
        """Whether the query `data` from `client_ip` carries a valid server cookie: the
        client has answered us from that address before, so its source is not spoofed
        (RFC 7873 5.2.4; response rate limiting may exempt it). Never raises."""
        try:
            query = parse_query_untrusted(data)
        except MalformedQuery:
            return False
        edns = query.edns
        if edns is None or edns.cookie is None:
            return False
        try:
            return self.valid(edns.cookie, client_ip)
        except ValueError:  # not an IP address: no client to vouch for
            return False
