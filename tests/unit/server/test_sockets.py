"""Listening sockets: which report each datagram's destination (wildcard addresses only,
so that a socket bound to one address keeps the cheaper recvfrom/sendto path), and a bind
error that names its address."""

from __future__ import annotations

import socket

import pytest

from geodns.server import pktinfo
from geodns.server.sockets import ListenAddress, bind_all, parse_listen


@pytest.mark.parametrize(
    ("text", "wildcard"),
    [
        ("0.0.0.0:53", True),
        ("[::]:53", True),
        (":53", True),
        ("127.0.0.1:53", False),
        ("[::1]:53", False),
        ("[0:0::0]:53", True),
    ],
)
def test_wildcard_addresses(text: str, wildcard: bool) -> None:
    assert parse_listen(text).wildcard is wildcard


def test_only_wildcard_udp_sockets_report_destinations() -> None:
    addrs = [ListenAddress("0.0.0.0", 0), ListenAddress("127.0.0.1", 0)]
    if socket.has_ipv6:
        addrs += [ListenAddress("::", 0), ListenAddress("::1", 0)]
    (sockets,) = bind_all(addrs, 1)
    try:
        seen = [(s.getsockname()[0], pktinfo.enabled(s)) for s in sockets.udp]
    finally:
        sockets.close()
    expected = [("0.0.0.0", True), ("127.0.0.1", False)]
    if socket.has_ipv6:
        expected += [("::", True), ("::1", False)]
    assert seen == expected


def test_a_bind_error_names_the_address() -> None:
    # 192.0.2.99 (TEST-NET-1) is no address of this host.
    with pytest.raises(OSError, match=r"192\.0\.2\.99:0: Cannot assign requested address"):
        bind_all([ListenAddress("192.0.2.99", 0)], 1)
