"""Messages between the control plane and forked DNS workers: length-prefixed pickles.

Only our own processes are at either end (a socketpair made before fork), which is what
makes pickle acceptable here.
"""

from __future__ import annotations

import asyncio
import pickle
import socket
import struct
from typing import Any

_LENGTH = struct.Struct("!I")


def encode(message: Any) -> bytes:
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _LENGTH.pack(len(body)) + body


async def read_message(reader: asyncio.StreamReader) -> Any:
    """The next message; raises asyncio.IncompleteReadError when the other end is gone."""
    header = await reader.readexactly(_LENGTH.size)
    (length,) = _LENGTH.unpack(header)
    return pickle.loads(await reader.readexactly(length))


def read_message_blocking(sock: socket.socket) -> Any | None:
    """The next message, read without an event loop (a worker's twin); None at the end."""
    header = _read_exactly(sock, _LENGTH.size)
    if header is None:
        return None
    (length,) = _LENGTH.unpack(header)
    body = _read_exactly(sock, length)
    return None if body is None else pickle.loads(body)


def _read_exactly(sock: socket.socket, n: int) -> bytes | None:
    chunks = []
    while n:
        try:
            chunk = sock.recv(min(n, 1 << 20))
        except ConnectionError:
            return None
        if not chunk:
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


class Channel:
    """One end of a worker link, usable from an event loop once `open()` has run."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self._reader, self._writer = await asyncio.open_unix_connection(sock=self.sock)

    async def receive(self) -> Any:
        assert self._reader is not None
        return await read_message(self._reader)

    def send(self, message: Any) -> None:
        if self._writer is not None and not self._writer.is_closing():
            self._writer.write(encode(message))

    def unsent(self) -> int:
        """Bytes sent that the other end has not read yet (still in this end's buffer)."""
        if self._writer is None or self._writer.is_closing():
            return 0
        return self._writer.transport.get_write_buffer_size()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        else:
            self.sock.close()


class WorkerLink(Channel):
    """The control plane's end of a worker's channel, which outlives the worker: when a
    killed worker is replaced, `replace()` points it at the new one, and a `receive()`
    waiting on the dead one carries on with the new one (the control plane's readers
    and senders keep the same object)."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__(sock)
        self._generation = 0
        self._replaced: asyncio.Event | None = None
        self.last_stats: Any = None  # the worker's last ("stats", ...) report

    async def receive(self) -> Any:
        while True:
            reader = self._reader
            generation = self._generation
            assert reader is not None
            try:
                message = await read_message(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                # The worker is gone: wait for its successor (the supervisor starts one).
                while self._generation == generation:
                    if self._replaced is None:
                        self._replaced = asyncio.Event()
                    await self._replaced.wait()
                continue
            if isinstance(message, tuple) and message and message[0] == "stats":
                self.last_stats = message[1]
            return message

    async def replace(self, sock: socket.socket) -> None:
        """Talk to a new worker from now on; what was sent to the old one is lost."""
        old = self._writer
        self.sock = sock
        self._reader, self._writer = await asyncio.open_unix_connection(sock=sock)
        self._generation += 1
        if old is not None:
            old.close()
        waiting, self._replaced = self._replaced, None
        if waiting is not None:
            waiting.set()
