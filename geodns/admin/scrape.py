"""The read-only metrics listener (`serve --metrics HOST:PORT`): GET /metrics, nothing else.

Prometheus scrapes it without reaching the admin API, which can drain regions: it serves
the admin side's own registry through the one renderer (`metrics_response`), so that both
addresses give the same text. Every other path is 404, every other method 405, and there is
no token and no Host check: what it serves is read-only and meant for other machines.
"""

from __future__ import annotations

import logging
import os

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry

from geodns.errors import GeodnsError
from geodns.server.sockets import ListenAddress, parse_listen

log = logging.getLogger("geodns.admin")


def parse_metrics_listen(text: str) -> ListenAddress:
    """`--metrics HOST:PORT`: the port is required, since a DNS port by default is no
    default for a metrics listener."""
    text = text.strip()
    bare_ipv6 = not text.startswith("[") and text.count(":") > 1
    if bare_ipv6 or ":" not in text.rpartition("]")[2]:
        raise GeodnsError(
            f"--metrics {text}: give HOST:PORT, an IPv6 host in brackets ([::1]:9153)"
        )
    try:
        return parse_listen(text)
    except GeodnsError as exc:
        raise GeodnsError(f"--metrics {exc}") from None


def metrics_response(registry: CollectorRegistry) -> web.Response:
    """The registry in Prometheus's text format, built now: the reply of every /metrics."""
    body = generate_latest(registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


class MetricsServer:
    """Serves GET /metrics from `registry` on one address for as long as the plane runs."""

    def __init__(self, listen: ListenAddress, registry: CollectorRegistry) -> None:
        self.listen = listen
        self.registry = registry
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    def build(self) -> web.Application:
        app = web.Application()
        app.add_routes([web.get("/metrics", self.metrics)])
        return app

    async def metrics(self, request: web.Request) -> web.Response:
        return metrics_response(self.registry)

    async def start(self) -> None:
        self._runner = web.AppRunner(self.build(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.listen.host, self.listen.port)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            # The errno's own words: the event loop's message repeats the address.
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise GeodnsError(f"--metrics {self.listen}: cannot listen: {reason}") from exc
        sockets = getattr(site._server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else self.listen.port
        log.info("metrics HTTP on %s", self.url())

    def url(self) -> str:
        """http://host:port/metrics, with the port actually bound."""
        return f"http://{ListenAddress(self.listen.host, self.port or self.listen.port)}/metrics"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
