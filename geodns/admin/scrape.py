"""The read-only metrics listener (`serve --metrics HOST:PORT`): GET /metrics, nothing else.

Prometheus scrapes it without reaching the admin API, which can drain regions: it serves
the admin side's own registry through the one renderer (`metrics_response`), so that both
addresses give the same text. Every other path is 404, every other method 405, and there is
no token and no Host check: what it serves is read-only and meant for other machines.
"""

from __future__ import annotations

import logging

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry

from geodns.admin.listener import Listener
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


class MetricsServer(Listener):
    """Serves GET /metrics from `registry` on one address for as long as the plane runs."""

    option = "--metrics"
    path = "/metrics"

    def __init__(self, listen: ListenAddress, registry: CollectorRegistry) -> None:
        super().__init__(listen)
        self.registry = registry

    def build(self) -> web.Application:
        app = web.Application()
        app.add_routes([web.get("/metrics", self.metrics)])
        return app

    async def metrics(self, request: web.Request) -> web.Response:
        return metrics_response(self.registry)

    async def start(self) -> None:
        await self.serve(self.build(), access_log=None)
        log.info("metrics HTTP on %s", self.url())
