"""The UDP listener: bytes in, `answer()`, response rate limiting, bytes out. No task per
datagram."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from geodns.server.rrl import Action, ResponseRateLimiter, truncated_untrusted

log = logging.getLogger("geodns.udp")

# (query, peer address) -> reply, or None to send nothing
Handler = Callable[[bytes, tuple], "bytes | None"]


class UDPServer(asyncio.DatagramProtocol):
    def __init__(
        self,
        handler: Handler,
        limiter: ResponseRateLimiter | None = None,
        clock: Callable[[], float] = time.monotonic,
        udp_size: int = 1232,
    ) -> None:
        self._handler = handler
        self._limiter = limiter if limiter is not None and limiter.rate > 0 else None
        self._clock = clock
        self._udp_size = udp_size
        self._transport: asyncio.DatagramTransport | None = None

    def set_handler(self, handler: Handler) -> None:
        """Swap in a new configuration's handler; the next datagram uses it (the rate
        limiter's counts carry over)."""
        self._handler = handler

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        reply = self._handler(data, addr)
        if reply is None:
            return
        limiter = self._limiter
        if limiter is not None:
            # Only UDP is limited: a TCP client has proved its address (RFC 7766 and
            # every RRL implementation), and is where a slipped reply sends real clients.
            action = limiter.check(data, reply, addr, self._clock())
            if action:
                if action is not Action.SLIP:
                    return
                reply = truncated_untrusted(data, reply, self._udp_size)
                if reply is None:
                    return
        self._transport.sendto(reply, addr)  # type: ignore[union-attr]

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable from a client that went away, and the like: not our problem.
        log.debug("UDP socket error: %s", exc)
