"""DNS over TCP (RFC 7766): 2-byte framing, pipelined queries, idle timeout, connection cap."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger("geodns.tcp")

# (query, peer address) -> reply, or None to send nothing
TcpHandler = Callable[[bytes, tuple], "bytes | None"]


@dataclass
class TCPState:
    """Shared by every connection of one listener set."""

    handler: TcpHandler
    idle_timeout: float = 10.0  # RFC 7766 6.2.3 suggests seconds, not minutes
    max_connections: int = 1000
    connections: set[TCPConnection] = field(default_factory=set)
    refused: int = 0


class TCPConnection(asyncio.Protocol):
    def __init__(self, state: TCPState) -> None:
        self._state = state
        # Per-connection state
        self._transport: asyncio.Transport | None = None
        self._peer: tuple = ()
        self._buffer = bytearray()
        self._last_activity = 0.0
        self._idle_handle: asyncio.TimerHandle | None = None
        self._closing = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self._peer = transport.get_extra_info("peername")
        if len(self._state.connections) >= self._state.max_connections:
            # Over the cap: close at once rather than let a flood of idle sockets starve us.
            self._state.refused += 1
            log.warning(
                "TCP connection cap (%d) reached; closing a new connection",
                self._state.max_connections,
            )
            transport.close()
            self._closing = True
            return
        self._state.connections.add(self)
        self._last_activity = time.monotonic()
        self._arm_idle(self._state.idle_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._state.connections.discard(self)
        if self._idle_handle is not None:
            self._idle_handle.cancel()
            self._idle_handle = None

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        self._last_activity = time.monotonic()
        buf = self._buffer
        buf += data
        handler = self._state.handler
        transport = self._transport
        offset = 0
        while len(buf) - offset >= 2:
            length = (buf[offset] << 8) | buf[offset + 1]
            if len(buf) - offset - 2 < length:
                break  # a half-sent query: wait for the rest (the idle timer bounds the wait)
            frame = bytes(buf[offset + 2 : offset + 2 + length])
            offset += 2 + length
            reply = handler(frame, self._peer)
            if reply is not None and transport is not None:
                transport.write(len(reply).to_bytes(2, "big") + reply)
        if offset:
            del buf[:offset]

    def eof_received(self) -> bool | None:
        return None  # close our side too once the replies are written

    # Flow control: a client that does not read its replies stops being read (uvicorn does this).
    def pause_writing(self) -> None:
        if self._transport is not None:
            self._transport.pause_reading()

    def resume_writing(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.resume_reading()

    def shutdown(self) -> None:
        """Close after what is already written has been sent."""
        self._closing = True
        if self._transport is not None:
            self._transport.close()

    def _arm_idle(self, delay: float) -> None:
        loop = asyncio.get_running_loop()
        self._idle_handle = loop.call_later(delay, self._check_idle)

    def _check_idle(self) -> None:
        # One timer per connection, re-armed lazily, rather than one per received segment.
        idle_for = time.monotonic() - self._last_activity
        remaining = self._state.idle_timeout - idle_for
        if remaining > 0:
            self._arm_idle(remaining)
            return
        self._idle_handle = None
        log.debug("closing idle TCP connection")
        self.shutdown()
