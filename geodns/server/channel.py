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

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        else:
            self.sock.close()
