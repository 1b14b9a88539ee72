"""EDNS(0) (RFC 6891): the OPT record of a query, its options, and the OPT of a reply."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from geodns.errors import BadCookie, BadECS, BadEDNS

OPT_NSID = 3  # RFC 5001
OPT_ECS = 8  # RFC 7871
OPT_COOKIE = 10  # RFC 7873
OPT_EDE = 15  # RFC 8914
CLIENT_COOKIE = 8  # octets (RFC 7873 4)
_ECS_MAX_PREFIX = {1: 32, 2: 128}


@dataclass(frozen=True, slots=True)
class ClientSubnet:
    """An EDNS Client Subnet option as the client sent it (RFC 7871 section 6)."""

    family: int  # 1 IPv4, 2 IPv6
    source_prefix: int
    scope_prefix: int
    address: bytes  # exactly ceil(source_prefix / 8) octets

    def to_option(self, scope_prefix: int) -> bytes:
        """The option for a reply: the query's family, prefix and address, our scope."""
        body = struct.pack("!HBB", self.family, self.source_prefix, scope_prefix) + self.address
        return struct.pack("!HH", OPT_ECS, len(body)) + body


@dataclass(frozen=True, slots=True)
class Edns:
    """What the client's OPT record asks for."""

    payload: int  # the client's UDP payload size, as sent
    version: int
    do: bool
    nsid: bool
    ecs: ClientSubnet | None
    # The COOKIE option as sent: the client cookie, then the server cookie if any (RFC 7873 4).
    cookie: bytes | None = None


def check_cookie_untrusted(data: bytes) -> bytes:
    """A COOKIE option body of a valid length, or BadCookie (answered FORMERR).

    RFC 7873 5.2.2: a client cookie alone is 8 octets; with a server cookie, 16 to 40.
    """
    n = len(data)
    if n != CLIENT_COOKIE and not 16 <= n <= 40:
        raise BadCookie(f"COOKIE option of {n} octets (8, or 16 to 40)")
    return bytes(data)


def ecs_problem(family: int, source: int, scope: int, size: int, last: int) -> str | None:
    """What makes an ECS option malformed (RFC 7871 6), or None: its fixed fields, the
    number of address octets, and the last of them. Also read on the plain query path,
    which has the bytes and no option object."""
    max_prefix = _ECS_MAX_PREFIX.get(family)
    if max_prefix is None:
        return f"ECS family {family} is not IPv4 (1) or IPv6 (2)"
    if source > max_prefix or scope > max_prefix:
        return f"ECS prefix longer than {max_prefix} bits"
    if size != (source + 7) // 8:
        # RFC 7871 6: the address is truncated to exactly the octets the prefix needs.
        return f"ECS address has {size} octets for a /{source} prefix"
    if size and source % 8 and last & (0xFF >> (source % 8)):
        return "ECS address has bits set past the source prefix"
    return None


def parse_ecs_untrusted(data: bytes) -> ClientSubnet:
    """Validate an ECS option body; every malformed shape is BadECS (answered FORMERR)."""
    if len(data) < 4:
        raise BadECS("ECS option shorter than its fixed fields")
    family, source, scope = struct.unpack_from("!HBB", data)
    address = data[4:]
    problem = ecs_problem(family, source, scope, len(address), address[-1] if address else 0)
    if problem is not None:
        raise BadECS(problem)
    return ClientSubnet(family, source, scope, bytes(address))


def parse_opt_untrusted(payload: int, ttl: int, rdata: bytes) -> Edns:
    """Read an OPT record's class (payload), TTL (version, flags) and options."""
    version = (ttl >> 16) & 0xFF
    do = bool(ttl & 0x8000)
    nsid = False
    ecs: ClientSubnet | None = None
    cookie: bytes | None = None
    offset = 0
    end = len(rdata)
    while offset < end:
        if offset + 4 > end:
            raise BadEDNS("truncated EDNS option header")
        code, length = struct.unpack_from("!HH", rdata, offset)
        offset += 4
        if offset + length > end:
            raise BadEDNS(f"EDNS option {code} runs past the OPT record")
        if code == OPT_NSID:
            nsid = True
        elif code == OPT_ECS:
            if ecs is not None:
                raise BadECS("more than one ECS option")
            ecs = parse_ecs_untrusted(rdata[offset : offset + length])
        elif code == OPT_COOKIE:
            # RFC 7873 is silent on a second COOKIE option: the first counts, as in Knot.
            body = check_cookie_untrusted(rdata[offset : offset + length])
            if cookie is None:
                cookie = body
        # Unknown options are ignored and not echoed (RFC 6891 6.1.2).
        offset += length
    return Edns(payload, version, do, nsid, ecs, cookie)


def build_opt(udp_size: int, do: bool, ext_rcode: int = 0, options: bytes = b"") -> bytes:
    """A reply's OPT RR: our UDP size, version 0, the DO bit echoed, unknown flags zero."""
    ttl = (ext_rcode << 24) | (0x8000 if do else 0)
    return struct.pack("!BHHIH", 0, 41, udp_size, ttl, len(options)) + options


def nsid_option(server_id: bytes) -> bytes:
    return struct.pack("!HH", OPT_NSID, len(server_id)) + server_id


def ede_option(info_code: int, extra_text: str = "") -> bytes:
    """An Extended DNS Error option (RFC 8914 2): INFO-CODE, then UTF-8 EXTRA-TEXT, no NUL."""
    text = extra_text.encode("utf-8")
    return struct.pack("!HHH", OPT_EDE, 2 + len(text), info_code) + text
