"""Listening sockets: HOST:PORT parsing, UDP and TCP bound on one port, SO_REUSEPORT."""

from __future__ import annotations

import ipaddress
import logging
import socket
from dataclasses import dataclass

from geodns.errors import GeodnsError
from geodns.server import pktinfo

log = logging.getLogger("geodns.server")

DEFAULT_PORT = 5300
# Pending TCP connections the kernel queues (capped by net.core.somaxconn). asyncio's
# create_server(sock=...) calls listen() again, with 100 unless told: pass this to it too.
LISTEN_BACKLOG = 1024


@dataclass(frozen=True, slots=True)
class ListenAddress:
    host: str
    port: int

    @property
    def family(self) -> socket.AddressFamily:
        return socket.AF_INET6 if ":" in self.host else socket.AF_INET

    @property
    def wildcard(self) -> bool:
        """0.0.0.0 or ::, every address of the host (of its family)."""
        return ipaddress.ip_address(self.host).is_unspecified

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_listen(text: str) -> ListenAddress:
    """'127.0.0.1:5300', '[::1]:5300', '0.0.0.0' (port 5300), ':53'."""
    text = text.strip()
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep:
            raise GeodnsError(f"{text!r}: missing ']' after an IPv6 address")
        port_text = rest[1:] if rest.startswith(":") else rest
    elif text.count(":") > 1:
        host, port_text = text, ""  # a bare IPv6 address
    else:
        host, _, port_text = text.partition(":")
    host = host or "0.0.0.0"
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise GeodnsError(f"{text!r}: {host!r} is not an IP address to listen on") from None
    try:
        port = int(port_text) if port_text else DEFAULT_PORT
    except ValueError:
        raise GeodnsError(f"{text!r}: {port_text!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise GeodnsError(f"{text!r}: port {port} out of range")
    return ListenAddress(host, port)


@dataclass
class SocketSet:
    """One worker's sockets: a UDP and a TCP socket per listen address."""

    udp: list[socket.socket]
    tcp: list[socket.socket]

    def close(self) -> None:
        for s in (*self.udp, *self.tcp):
            s.close()


def _socket(addr: ListenAddress, kind: int, port: int, reuse_port: bool) -> socket.socket:
    sock = socket.socket(addr.family, kind)
    try:
        if kind == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if addr.family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        if kind == socket.SOCK_DGRAM:
            # Bursts of queries queue in the kernel rather than being dropped.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
            # Replies leave from the address each query was sent to (docs/listening.md).
            if addr.wildcard and not pktinfo.enable(sock):
                log.warning(
                    "%s: this platform cannot tell a UDP query's destination: replies leave "
                    "from the address routing picks; list each address with --listen instead",
                    addr,
                )
        try:
            sock.bind((addr.host, port))
        except OSError as exc:  # say which address: "cannot listen: [Errno 99] 192.0.2.9:53: ..."
            raise OSError(exc.errno, f"{ListenAddress(addr.host, port)}: {exc.strerror}") from exc
        if kind == socket.SOCK_STREAM:
            sock.listen(LISTEN_BACKLOG)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def bind_all(addresses: list[ListenAddress], workers: int) -> list[SocketSet]:
    """Sockets for each worker. UDP and TCP share a port; port 0 picks one free for both."""
    reuse = workers > 1
    sets = [SocketSet([], []) for _ in range(workers)]
    try:
        for addr in addresses:
            port = _bind_pair(addr, sets[0], reuse)
            for worker_set in sets[1:]:
                worker_set.udp.append(_socket(addr, socket.SOCK_DGRAM, port, reuse))
                worker_set.tcp.append(_socket(addr, socket.SOCK_STREAM, port, reuse))
    except OSError:
        for s in sets:
            s.close()
        raise
    return sets


def _bind_pair(addr: ListenAddress, into: SocketSet, reuse: bool) -> int:
    attempts = 20 if addr.port == 0 else 1
    for attempt in range(attempts):
        udp = _socket(addr, socket.SOCK_DGRAM, addr.port, reuse)
        port = udp.getsockname()[1]
        try:
            tcp = _socket(addr, socket.SOCK_STREAM, port, reuse)
        except OSError:
            udp.close()
            if attempt == attempts - 1:
                raise
            continue  # port 0 gave a UDP port whose TCP twin is taken: try another
        into.udp.append(udp)
        into.tcp.append(tcp)
        return port
    raise AssertionError("unreachable")
