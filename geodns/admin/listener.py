"""An aiohttp application on one address (the admin API, the metrics listener): started
with a clear error when the address is taken, and the port it really bound (port 0 asks
the kernel for one)."""

from __future__ import annotations

import logging
import os

from aiohttp import web

from geodns.errors import GeodnsError
from geodns.server.sockets import ListenAddress


class Listener:
    """Serves one application on `listen`; `option` names the command-line option that
    gave the address, for the error when it cannot be had, and `path` ends url()."""

    option = ""
    path = "/"

    def __init__(self, listen: ListenAddress) -> None:
        self.listen = listen
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    async def serve(self, app: web.Application, access_log: logging.Logger | None) -> None:
        self._runner = web.AppRunner(app, access_log=access_log)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.listen.host, self.listen.port)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            # The errno's own words: the event loop's message repeats the address.
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise GeodnsError(f"{self.option} {self.listen}: cannot listen: {reason}") from exc
        sockets = getattr(site._server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else self.listen.port

    def url(self) -> str:
        """http://host:port/..., with the port actually bound."""
        return f"http://{ListenAddress(self.listen.host, self.port or self.listen.port)}{self.path}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
