"""DNS over TCP (RFC 7766): 2-byte framing, pipelined queries, deadlines, connection cap.

Slow clients must not starve the rest (RFC 7766 6.2.3 asks servers to protect
themselves): a query frame that has started must be complete within a deadline however
its bytes trickle in; when every slot is taken the connection that has been useless the
longest (no complete query for the longest time) makes room for the new one; and a
connection whose deadline passes with replies still unsent (a client that pipelines and
never reads) is aborted, not closed, since a close would wait for the client to read.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger("geodns.tcp")

# (query, peer address) -> reply, or None to send nothing
TcpHandler = Callable[[bytes, tuple], "bytes | None"]

CAP_LOG_INTERVAL = 10.0  # seconds: at most one "cap reached" line per interval, with a count
# How far down the eviction line to look for a connection stuck in a partial query frame
# (a slow client's) before taking the head: bounded, so that admitting stays cheap.
STALLED_SCAN = 64


@dataclass
class TCPState:
    """Shared by every connection of one listener set."""

    handler: TcpHandler
    idle_timeout: float = 10.0  # RFC 7766 6.2.3 suggests seconds, not minutes
    max_connections: int = 1000
    # Seconds from a query frame's first byte to its last; None: the idle timeout.
    frame_timeout: float | None = None
    # Open connections, the one with the oldest complete query (or connect) first.
    connections: dict[TCPConnection, None] = field(default_factory=dict)
    evicted: int = 0  # connections closed to make room for a new one, since start
    aborted: int = 0  # connections aborted with replies unsent, since start
    clock: Callable[[], float] = time.monotonic
    _cap_logged_at: float = -CAP_LOG_INTERVAL
    _evicted_logged: int = 0

    @property
    def frame_deadline(self) -> float:
        return self.idle_timeout if self.frame_timeout is None else self.frame_timeout

    def admit(self, conn: TCPConnection) -> None:
        """Take `conn` in, closing the longest-useless connection when at the cap."""
        connections = self.connections
        while connections and len(connections) >= self.max_connections:
            oldest = _eviction_victim(connections)
            del connections[oldest]
            self.evicted += 1
            oldest.abort("connection cap reached: closing the longest-idle connection")
            self._log_cap()
        connections[conn] = None

    def used(self, conn: TCPConnection) -> None:
        """`conn` has just had a complete query: it goes to the back of the eviction line."""
        connections = self.connections
        if connections.pop(conn, 0) is None:
            connections[conn] = None

    def _log_cap(self) -> None:
        # A flood of connections must not become a flood of log lines: one per interval.
        now = self.clock()
        if now - self._cap_logged_at < CAP_LOG_INTERVAL:
            return
        count = self.evicted - self._evicted_logged
        log.warning(
            "TCP connection cap (%d) reached: closed %d longest-idle connection%s to make room "
            "(in the last %.0f s at most)",
            self.max_connections,
            count,
            "" if count == 1 else "s",
            CAP_LOG_INTERVAL,
        )
        self._cap_logged_at = now
        self._evicted_logged = self.evicted


def _eviction_victim(connections: dict[TCPConnection, None]) -> TCPConnection:
    """The oldest connection stuck in a partial frame, else the head of the line: a client
    that has just connected and not yet sent its query must not go before a trickler,
    however fast new connections churn through a full table."""
    for i, conn in enumerate(connections):
        if conn.stalled:
            return conn
        if i >= STALLED_SCAN:
            break
    return next(iter(connections))


class TCPConnection(asyncio.Protocol):
    def __init__(self, state: TCPState) -> None:
        self._state = state
        # Per-connection state
        self._transport: asyncio.Transport | None = None
        self._peer: tuple = ()
        self._buffer = bytearray()
        self._last_activity = 0.0
        self._frame_started: float | None = None  # when the pending partial frame began
        self._idle_handle: asyncio.TimerHandle | None = None
        self._closing = False

    @property
    def stalled(self) -> bool:
        """Part of a query frame has arrived and the rest has not."""
        return self._frame_started is not None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self._peer = transport.get_extra_info("peername")
        self._state.admit(self)
        self._last_activity = self._state.clock()
        self._arm_idle(self._state.idle_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._state.connections.pop(self, None)
        self._closing = True
        if self._idle_handle is not None:
            self._idle_handle.cancel()
            self._idle_handle = None

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        now = self._state.clock()
        self._last_activity = now
        buf = self._buffer
        buf += data
        handler = self._state.handler
        transport = self._transport
        offset = 0
        while len(buf) - offset >= 2:
            length = (buf[offset] << 8) | buf[offset + 1]
            if len(buf) - offset - 2 < length:
                break  # a half-sent query: wait for the rest, within the frame deadline
            frame = bytes(buf[offset + 2 : offset + 2 + length])
            offset += 2 + length
            reply = handler(frame, self._peer)
            if reply is not None and transport is not None:
                transport.write(len(reply).to_bytes(2, "big") + reply)
        if offset:
            del buf[:offset]
            self._state.used(self)
            self._frame_started = None
        if buf:
            if self._frame_started is None:
                # The deadline runs from the frame's first byte, not its latest one, so
                # that one byte a second cannot hold a slot for ever.
                self._frame_started = now
        else:
            self._frame_started = None

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

    def abort(self, reason: str) -> None:
        """Close now, dropping whatever is unsent (the client is not reading it)."""
        log.debug("aborting TCP connection from %s: %s", self._peer, reason)
        self._closing = True
        if self._transport is not None:
            self._transport.abort()

    def _arm_idle(self, delay: float) -> None:
        loop = asyncio.get_running_loop()
        self._idle_handle = loop.call_later(max(delay, 0.0), self._check_idle)

    def _check_idle(self) -> None:
        # One timer per connection, re-armed lazily, rather than one per received segment.
        self._idle_handle = None
        if self._closing:
            return
        state = self._state
        now = state.clock()
        remaining = state.idle_timeout - (now - self._last_activity)
        why = "idle"
        if self._frame_started is not None:
            frame_left = state.frame_deadline - (now - self._frame_started)
            if frame_left < remaining:
                remaining, why = frame_left, "query frame not complete in time"
        if remaining > 0:
            self._arm_idle(remaining)
            return
        transport = self._transport
        if transport is not None and transport.get_write_buffer_size() > 0:
            # Replies still unsent at the deadline: a close would wait for a reader that
            # never comes, holding the slot and the kernel buffers.
            state.aborted += 1
            self.abort(f"{why} with replies unsent")
            return
        log.debug("closing TCP connection from %s: %s", self._peer, why)
        self.shutdown()
