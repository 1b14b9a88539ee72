"""A simulated inference region: `GET /healthz` reports health, `POST /control` changes it.

    GET /healthz   {"ready": true, "gpu_utilization": 0.42, "model_version": "42"}
    GET /          {"region": "eu-west-1", "version": "42"}   (stands in for the inference API)
    POST /control  {"mode": "failing", "utilization": 0.9, "version": "43", "delay": 3.0,
                    "latency": 0.15}

Modes: healthy; failing (HTTP 500); slow (answers after `delay` seconds); hanging (never
answers); garbage (200 with a body that is not JSON); lying (200, but the body says
`"ready": false`, and the API answers 503). A busy region is a healthy one with a high
utilization; a far or congested one, a healthy one whose API answers `latency` seconds
late (its health checks are not delayed: what its clients measure, not its checks, says
it is slow). The same settings are attributes of SimulatedRegion for use from Python.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from typing import Any

from aiohttp import web

MODES = ("healthy", "failing", "slow", "hanging", "garbage", "lying")


class SimulatedRegion:
    """One running simulated region; change `mode`, `utilization`, `version`, `delay` freely."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.mode = "healthy"
        self.utilization: Any = 0.42  # Any: tests set nonsense on purpose
        self.version = "42"
        self.delay = 3.0  # seconds, in mode slow
        self.latency = 0.0  # seconds added to every API answer, in any mode
        self.extra: dict[str, Any] = {}  # more fields of the health body (capacity signals)
        self.health_requests = 0
        self.last_headers: dict[str, str] = {}  # of the latest GET /healthz
        self.host = ""
        self.port = 0
        self.scheme = "http"
        self._runner: web.AppRunner | None = None
        self._closing = asyncio.Event()

    @property
    def url(self) -> str:
        """The region's base URL (its inference API)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    @property
    def health_url(self) -> str:
        return f"{self.url}/healthz"

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/", self._api)
        app.router.add_post("/control", self._control)
        return app

    async def close(self) -> None:
        self._closing.set()  # hanging and slow handlers return now, so cleanup is quick
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _misbehave(self) -> web.Response | None:
        """What slow, hanging and failing have in common for both endpoints."""
        if self.mode == "hanging":
            await self._closing.wait()
            return web.Response(status=503)
        if self.mode == "slow":
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), self.delay)
        if self.mode == "failing":
            return web.json_response({"error": "simulated failure"}, status=500)
        if self.mode == "garbage":
            return web.Response(text="<html>502 Bad Gateway, or so</html>", status=200)
        return None

    async def _healthz(self, request: web.Request) -> web.Response:
        self.health_requests += 1
        self.last_headers = dict(request.headers)
        response = await self._misbehave()
        if response is not None:
            return response
        body = {
            "ready": self.mode != "lying",
            "gpu_utilization": self.utilization,
            "model_version": self.version,
            **self.extra,
        }
        return web.json_response(body)

    async def _api(self, request: web.Request) -> web.Response:
        if self.latency:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), self.latency)
        response = await self._misbehave()
        if response is not None:
            return response
        if self.mode == "lying":
            return web.json_response({"error": "model not loaded"}, status=503)
        return web.json_response({"region": self.name, "version": self.version})

    async def _control(self, request: web.Request) -> web.Response:
        try:
            spec = await request.json()
        except ValueError:
            return web.json_response({"error": "body is not JSON"}, status=400)
        if not isinstance(spec, dict):
            return web.json_response({"error": "body must be a JSON object"}, status=400)
        problem = self.configure(**{k: v for k, v in spec.items() if isinstance(k, str)})
        if problem:
            return web.json_response({"error": problem}, status=400)
        return web.json_response(self.settings())

    def configure(self, **spec: Any) -> str | None:
        """Apply settings (mode, utilization, version, delay, latency); a message if one
        is bad."""
        unknown = set(spec) - {"mode", "utilization", "version", "delay", "latency"}
        if unknown:
            return f"unknown keys: {', '.join(sorted(unknown))}"
        if "mode" in spec and spec["mode"] not in MODES:
            return f"mode {spec['mode']!r} is not one of {', '.join(MODES)}"
        delay = spec.get("delay", self.delay)
        latency = spec.get("latency", self.latency)
        for key, value in (("delay", delay), ("latency", latency)):
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                return f"{key} {value!r} is not a number of seconds"
        self.mode = spec.get("mode", self.mode)
        self.utilization = spec.get("utilization", self.utilization)
        self.version = str(spec.get("version", self.version))
        self.delay = float(delay)
        self.latency = float(latency)
        return None

    def settings(self) -> dict[str, Any]:
        return {
            "region": self.name,
            "mode": self.mode,
            "utilization": self.utilization,
            "version": self.version,
            "delay": self.delay,
            "latency": self.latency,
        }


async def start_region(
    name: str,
    host: str = "127.0.0.1",
    port: int = 0,
    ssl_context: ssl.SSLContext | None = None,
) -> SimulatedRegion:
    """Serve a simulated region on host:port (0: any free port, read back from `.port`)."""
    region = SimulatedRegion(name)
    # No access log: a probe every fraction of a second would drown a demo's output.
    runner = web.AppRunner(region.app(), access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
    await site.start()
    region._runner = runner
    region.host = host
    region.port = site.port
    region.scheme = "https" if ssl_context is not None else "http"
    return region
