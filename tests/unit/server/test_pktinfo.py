"""The control message that sends a UDP reply from the destination of its query, and the
transport that reads destinations and sends with it (real sockets, 127.0.0.2 as a second
local address)."""

from __future__ import annotations

import socket

from geodns.server import pktinfo


def test_an_ipv4_reply_names_the_query_destination_as_its_source() -> None:
    # in_pktinfo as received: ifindex 1, spec_dst 127.0.0.1, header destination 127.0.0.2
    received = (1).to_bytes(4, "little") + bytes([127, 0, 0, 1]) + bytes([127, 0, 0, 2])
    ancillary = [(socket.IPPROTO_IP, pktinfo.IP_PKTINFO, received)]
    reply = bytes(4) + bytes([127, 0, 0, 2]) + bytes(4)  # any interface, from 127.0.0.2
    assert pktinfo.reply_source(ancillary) == [(socket.IPPROTO_IP, pktinfo.IP_PKTINFO, reply)]


def test_an_ipv6_reply_names_the_query_destination_as_its_source() -> None:
    dst = socket.inet_pton(socket.AF_INET6, "fd00::2")
    received = dst + (4).to_bytes(4, "little")
    ancillary = [(socket.IPPROTO_IPV6, socket.IPV6_PKTINFO, received)]
    reply = [(socket.IPPROTO_IPV6, socket.IPV6_PKTINFO, dst + bytes(4))]
    assert pktinfo.reply_source(ancillary) == reply


def test_without_a_destination_the_kernel_picks() -> None:
    assert pktinfo.reply_source([]) == []
    assert pktinfo.reply_source([(socket.IPPROTO_IP, pktinfo.IP_PKTINFO, b"short")]) == []


def test_an_ipv4_query_on_a_dual_stack_socket_is_answered_from_its_destination() -> None:
    # geodns binds IPv6 sockets V6ONLY; a dual-stack socket still gets IPv4 right.
    server = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        server.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        server.bind(("::", 0))
        assert pktinfo.enable(server)
        transport = pktinfo.PktinfoTransport(server)
        client.settimeout(2.0)
        client.connect(("127.0.0.2", server.getsockname()[1]))
        client.send(b"query")
        assert transport.receive() == (
            b"query",
            ("::ffff:127.0.0.1", client.getsockname()[1], 0, 0),
        )
        addr = ("::ffff:127.0.0.1", client.getsockname()[1], 0, 0)
        transport.sendto(b"reply", addr)
        assert client.recv(100) == b"reply"  # connected: only from 127.0.0.2 does it get in
    finally:
        server.close()
        client.close()
