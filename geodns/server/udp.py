"""The UDP listener: bytes in, `answer()`, bytes out. No task per datagram."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

log = logging.getLogger("geodns.udp")

# (query, peer address) -> reply, or None to send nothing
Handler = Callable[[bytes, tuple], "bytes | None"]


class UDPServer(asyncio.DatagramProtocol):
    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self._transport: asyncio.DatagramTransport | None = None

    def set_handler(self, handler: Handler) -> None:
        """Swap in a new configuration's handler; the next datagram uses it."""
        self._handler = handler

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        reply = self._handler(data, addr)
        if reply is not None:
            self._transport.sendto(reply, addr)  # type: ignore[union-attr]

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable from a client that went away, and the like: not our problem.
        log.debug("UDP socket error: %s", exc)
