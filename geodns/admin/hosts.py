"""Which `Host:` headers the admin HTTP side answers: its defence against DNS rebinding.

A page on another site can point a name of its own at 127.0.0.1 (DNS rebinding) and
then read the admin side as that name's origin; the browser sends that name as `Host:`.
So a request is answered only when its Host is

- an IP address the connection arrived on (the listen address; for a wildcard listen,
  whichever local address the client used): an address is its own origin, never a
  rebindable name;
- `localhost` or a name under `.localhost`, on a loopback connection (RFC 6761 6.3: those
  names are the loopback, and browsers resolve them so themselves);
- a name the operator allowed (`geodns serve --http-host NAME`, repeatable): a reverse
  proxy's name, the host's own name.

A port in the header is ignored: a rebinding page must use the server's own port anyway,
and a proxy in front may keep its own. A request without Host (HTTP/1.0) is answered:
browsers always send one.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def normalize_name(name: str) -> str:
    """Lowercase, without a final dot or a port: how names are compared."""
    host, _ = split_host(name.strip())
    return host


def split_host(header: str) -> tuple[str, str]:
    """`Host:` value -> (lowercased host without brackets or final dot, port text or "")."""
    header = header.strip().lower()
    if header.startswith("["):
        host, _, rest = header[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else rest
    elif header.count(":") > 1:
        host, port = header, ""  # a bare IPv6 address, as some clients send it
    else:
        host, _, port = header.partition(":")
    return host.rstrip("."), port


def _address(text: str) -> Address | None:
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # a dual-stack socket's view of an IPv4 client
    return address


class HostPolicy:
    """Decides whether a request's `Host:` names this admin server."""

    def __init__(self, names: Iterable[str] = ()) -> None:
        self.names = frozenset(n for n in (normalize_name(x) for x in names) if n)

    def allows(self, header: str | None, local: str | None) -> bool:
        """`header`: the Host value (None: absent); `local`: the connection's local address."""
        if header is None:
            return True
        host, port = split_host(header)
        if port and not port.isdigit():
            return False
        if not host:
            return False
        if host in self.names:
            return True
        local_address = _address(local) if local else None
        asked = _address(host)
        if asked is not None:
            return local_address is not None and asked == local_address
        if host == "localhost" or host.endswith(".localhost"):
            return local_address is not None and local_address.is_loopback
        return False
