"""UDP replies from the address each query was sent to, on sockets bound to a wildcard
address (0.0.0.0, ::): IP_PKTINFO / IPV6_RECVPKTINFO, recvmsg and sendmsg.

A UDP socket bound to 0.0.0.0 receives a query sent to any of the host's addresses, but a
reply sent with sendto() leaves from the address the kernel's routing picks for the
client, which on a host with several addresses need not be the one the client asked. A
resolver drops such a reply (it waits for an answer from the server it asked: a connected
socket, or a source check), so the query times out. With the option set, recvmsg() tells
each datagram's destination, and sendmsg() names it as the reply's source, as Knot,
PowerDNS and Unbound (interface-automatic) do. A socket bound to one address needs none
of this (its replies can only leave from that address) and keeps the plain transport,
whose recvfrom and sendto are cheaper: only a wildcard socket pays.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import sys
from typing import Protocol

log = logging.getLogger("geodns.udp")

# Python's socket module exposes IP_PKTINFO from 3.12 only (8 on Linux, where the rest of
# this module's behaviour is defined: ipi_spec_dst as a reply's source is Linux's).
IP_PKTINFO: int | None = getattr(socket, "IP_PKTINFO", 8 if sys.platform == "linux" else None)
MAX_DATAGRAM = 65535
# Room for one control message: in6_pktinfo (20 bytes) is the larger of the two.
ANCILLARY_SPACE = socket.CMSG_SPACE(20)
READ_BUDGET = 32  # datagrams read per readiness event before the loop runs other work
_NO_ADDRESS = bytes(4)
_NO_INTERFACE = bytes(4)

Ancillary = list[tuple[int, int, bytes]]


class DatagramProtocol(Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None: ...

    def datagram_received(self, data: bytes, addr: tuple) -> None: ...

    def error_received(self, exc: Exception) -> None: ...


def enable(sock: socket.socket) -> bool:
    """Ask the kernel for each datagram's destination address on `sock`; False where this
    platform cannot (replies then leave from the address routing picks)."""
    try:
        if sock.family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
        elif IP_PKTINFO is not None:
            sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
        else:
            return False
    except (AttributeError, OSError):
        return False
    return True


def enabled(sock: socket.socket) -> bool:
    """Whether `sock` reports destinations: read from the socket itself, so that a socket
    handed to another process (a forked worker, a stand-in) is read the right way."""
    with contextlib.suppress(AttributeError, OSError):
        if sock.family == socket.AF_INET6:
            return bool(sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO))
        if sock.family == socket.AF_INET and IP_PKTINFO is not None:
            return bool(sock.getsockopt(socket.IPPROTO_IP, IP_PKTINFO))
    return False


def reply_source(ancillary: Ancillary) -> Ancillary:
    """The control message that sends a reply from the destination a query's `ancillary`
    data names; [] when it names none (the kernel then picks, as with sendto).

    The interface index is 0 in both families, so routing picks the way out (the way in
    may not be the way back); for IPv4 the source is ipi_spec_dst, set to the query's
    header destination (ipi_addr). An IPv4 query on a dual-stack IPv6 socket arrives with
    an IPv4-mapped in6_pktinfo, which Linux takes back as the source of the IPv4 reply.
    """
    for level, kind, data in ancillary:
        if level == socket.IPPROTO_IP and kind == IP_PKTINFO and len(data) >= 12:
            # in_pktinfo: ipi_ifindex, ipi_spec_dst, ipi_addr
            return [(level, kind, _NO_INTERFACE + data[8:12] + _NO_ADDRESS)]
        if level == socket.IPPROTO_IPV6 and kind == socket.IPV6_PKTINFO and len(data) >= 20:
            # in6_pktinfo: ipi6_addr, ipi6_ifindex
            return [(level, kind, data[:16] + _NO_INTERFACE)]
    return []


class PktinfoTransport:
    """What a UDPServer sends through on a wildcard-bound socket. Answering is synchronous
    (the protocol's sendto comes while it handles the datagram just read), so the reply
    goes out from the destination of the last datagram received.

    Without a loop (a stand-in), the owner calls receive() itself; attach() hands the
    socket to a loop instead."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._source: Ancillary = []
        self._loop: asyncio.AbstractEventLoop | None = None

    def receive(self) -> tuple[bytes, tuple]:
        """One datagram and its sender; BlockingIOError when none is waiting."""
        data, ancillary, _flags, addr = self.sock.recvmsg(MAX_DATAGRAM, ANCILLARY_SPACE)
        self._source = reply_source(ancillary)
        return data, addr

    def sendto(self, data: bytes, addr: tuple) -> None:
        try:
            self.sock.sendmsg((data,), self._source, 0, addr)
        except OSError as exc:  # a full buffer drops the reply, as the stand-in's transport does
            log.debug("UDP reply to %s dropped: %s", addr[0], exc)

    def attach(self, loop: asyncio.AbstractEventLoop, protocol: DatagramProtocol) -> None:
        """Feed the socket's datagrams to `protocol` from `loop` (its replies come back
        through sendto)."""
        self._loop = loop
        protocol.connection_made(self)  # type: ignore[arg-type]
        loop.add_reader(self.sock.fileno(), self._read_ready, protocol)

    def _read_ready(self, protocol: DatagramProtocol) -> None:
        receive, received = self.receive, protocol.datagram_received
        for _ in range(READ_BUDGET):
            try:
                data, addr = receive()
            except BlockingIOError:
                return
            except OSError as exc:
                protocol.error_received(exc)
                return
            received(data, addr)

    def close(self) -> None:
        if self._loop is not None and self.sock.fileno() >= 0:
            self._loop.remove_reader(self.sock.fileno())
            self._loop = None
        self.sock.close()
