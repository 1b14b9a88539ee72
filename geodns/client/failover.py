"""FailoverClient: HTTP requests to a geodns service's regions, failing over faster than TTL."""

from __future__ import annotations

import asyncio
import json as jsonlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import aiohttp
import dns.asyncresolver

from geodns.client.breaker import BreakerConfig, BreakerState, CircuitBreaker
from geodns.client.resolve import Endpoint, Resolution, ResolutionError, resolve_service
from geodns.client.rum import RumReporter
from geodns.errors import GeodnsError

log = logging.getLogger("geodns.client")

DEFAULT_FAILURE_STATUSES = frozenset({500, 502, 503, 504})
# The timing of the attempt under way in this task: _send fills it, _attempt reports it.
_TIMING: ContextVar[dict[str, float] | None] = ContextVar("geodns_client_timing", default=None)


class AllRegionsFailed(GeodnsError):
    """Every region was tried once (or skipped) and none answered; `.attempts` says why."""

    def __init__(self, service: str, attempts: Iterable[tuple[str, str]]) -> None:
        self.service = service
        self.attempts = tuple(attempts)  # (region, what went wrong), in order
        lines = "; ".join(f"{region}: {error}" for region, error in self.attempts)
        super().__init__(f"every region of {service} failed: {lines or 'no region'}")


@dataclass(frozen=True)
class Choice:
    """Which region answered a request, and why that one."""

    region: str
    address: str
    port: int
    url: str
    reason: str  # e.g. "us-east-1 skipped: circuit open (...); eu-west-1: next in SRV order"
    attempts: tuple[tuple[str, str], ...] = ()  # regions tried or skipped before, with why
    stale: bool = False  # the region list is past its TTL (re-resolution failed)


@dataclass(frozen=True)
class Response:
    """A response read whole: status, headers, body, and the region that sent it."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    region: str
    url: str
    elapsed: float  # seconds, from the first attempt to the last byte
    choice: Choice = field(repr=False)

    def text(self, encoding: str = "utf-8") -> str:
        return self.body.decode(encoding, errors="replace")

    def json(self) -> Any:
        return jsonlib.loads(self.body)


@dataclass(frozen=True)
class _Call:
    method: str
    path: str
    headers: Mapping[str, str] | None
    json: Any
    data: bytes | str | None
    params: Mapping[str, str] | None


class _Failure(Exception):
    # One attempt's failure, caught by the retry loop and recorded in AllRegionsFailed.
    def __init__(self, message: str, timeout: bool = False) -> None:
        super().__init__(message)
        self.timeout = timeout


class FailoverClient:
    """Send HTTP requests to the first region, in the service's SRV order, that works.

    Use as `async with FailoverClient("inference.example.com", ...) as client:`.
    """

    def __init__(
        self,
        service: str,
        *,
        nameservers: Iterable[str] | None = None,
        dns_port: int = 53,
        dns_timeout: float = 2.0,
        dns_retry: float = 2.0,
        scheme: str = "https",
        default_port: int | None = None,
        host_header: str | None = None,
        breaker: BreakerConfig | None = None,
        request_timeout: float = 10.0,
        failure_statuses: Iterable[int] = DEFAULT_FAILURE_STATUSES,
        fail_open: bool = True,
        session: aiohttp.ClientSession | None = None,
        resolver: dns.asyncresolver.Resolver | None = None,
        clock: Callable[[], float] = time.monotonic,
        rum: RumReporter | None = None,
    ) -> None:
        if scheme not in ("http", "https"):
            raise ValueError(f"scheme must be http or https, not {scheme!r}")
        self.service = service.rstrip(".")
        self.scheme = scheme
        self.default_port = default_port or (443 if scheme == "https" else 80)
        self.host_header = host_header or self.service
        self.breaker_config = breaker or BreakerConfig()
        self.request_timeout = request_timeout
        self.failure_statuses = frozenset(failure_statuses)
        self.fail_open = fail_open
        self.dns_retry = dns_retry
        if resolver is None:
            # Without name servers, those of /etc/resolv.conf.
            resolver = dns.asyncresolver.Resolver(configure=nameservers is None)
            if nameservers is not None:
                resolver.nameservers = list(nameservers)
            resolver.port = dns_port
            resolver.lifetime = dns_timeout
        self.resolver = resolver
        self._clock = clock
        # Every request to a region is measured and, with a reporter, reported (docs/rum.md).
        self.rum = rum
        self._session = session
        self._own_session = session is None
        self._resolution: Resolution | None = None
        self._expires = 0.0  # clock time after which the list is re-resolved
        self._resolved_at = 0.0
        self._resolve_lock = asyncio.Lock()
        self._breakers: dict[str, CircuitBreaker] = {}
        self.resolve_count = 0  # lookups made (each is an SRV query plus any A/AAAA)
        self.resolution_error: str | None = None  # the latest failed re-resolution, if stale
        self.last_choice: Choice | None = None

    async def __aenter__(self) -> FailoverClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()
        self._session = None
        if self.rum is not None:
            await self.rum.close()

    def breakers(self) -> dict[str, BreakerState]:
        """Every known region's breaker, in the current SRV order, then any no longer listed."""
        order = [e.region for e in self._resolution.endpoints] if self._resolution else []
        names = order + [r for r in self._breakers if r not in order]
        return {r: self._breaker(r).snapshot() for r in names}

    async def endpoints(self) -> tuple[Endpoint, ...]:
        """The service's regions in order, resolved again if the TTL has passed."""
        return (await self._current()).endpoints

    async def resolve(self) -> Resolution:
        """Resolve now, whatever the TTL says; raises ResolutionError on failure."""
        async with self._resolve_lock:
            return await self._resolve_now()

    async def _resolve_now(self) -> Resolution:
        self.resolve_count += 1
        resolution = await resolve_service(self.resolver, self.service, self.default_port)
        now = self._clock()
        self._resolution = resolution
        self._resolved_at = now
        self._expires = now + resolution.ttl
        self.resolution_error = None
        for skipped in resolution.skipped:
            log.warning("%s: SRV target left out: %s", self.service, skipped)
        return resolution

    async def _current(self) -> Resolution:
        if self._clock() < self._expires:
            return self._known()
        async with self._resolve_lock:
            if self._clock() < self._expires:
                return self._known()  # resolved (or failed) while this request waited
            try:
                return await self._resolve_now()
            except ResolutionError as e:
                # Not asked again for dns_retry seconds, so that requests do not queue up
                # behind a DNS timeout each.
                self.resolution_error = str(e)
                self._expires = self._clock() + self.dns_retry
                if self._resolution is None:
                    raise
                log.warning(
                    "%s: re-resolving failed (%s); still using the list resolved %.0f s ago",
                    self.service,
                    e,
                    self._clock() - self._resolved_at,
                )
                return self._resolution

    def _known(self) -> Resolution:
        if self._resolution is None:
            raise ResolutionError(f"{self.resolution_error} (retried after {self.dns_retry:g} s)")
        return self._resolution

    def _breaker(self, region: str) -> CircuitBreaker:
        breaker = self._breakers.get(region)
        if breaker is None:
            breaker = CircuitBreaker(region, self.breaker_config, self._clock)
            self._breakers[region] = breaker
        return breaker

    async def request(
        self,
        method: str,
        path: str = "/",
        *,
        headers: Mapping[str, str] | None = None,
        json: Any = None,
        data: bytes | str | None = None,
        params: Mapping[str, str] | None = None,
    ) -> Response:
        """Send to the first region whose breaker allows it; on failure, the next in order.

        Every region is tried at most once per request. Raises AllRegionsFailed when none
        answers, and ResolutionError when the service cannot be resolved at all.
        """
        if not path.startswith("/"):
            raise ValueError(f"path must start with '/', not {path!r}")
        call = _Call(method, path, headers, json, data, params)
        resolution = await self._current()
        order = "SRV order" if resolution.source == "SRV" else "A/AAAA order"
        started = self._clock()
        attempts: list[tuple[str, str]] = []
        skipped: list[Endpoint] = []
        for endpoint in resolution.endpoints:
            breaker = self._breaker(endpoint.region)
            ticket = breaker.acquire()
            if ticket is None:
                attempts.append((endpoint.region, f"skipped: {breaker.snapshot().describe()}"))
                skipped.append(endpoint)
                continue
            if ticket == "probe":
                why = f"half-open probe after a {self.breaker_config.cooldown:g} s cool-down"
            else:
                why = f"next in {order}" if attempts else f"first in {order}"
            response = await self._attempt(endpoint, breaker, ticket, call, attempts, why, started)
            if response is not None:
                return response
        if self.fail_open and skipped:
            # Every region that was allowed failed, or none was: try the open ones anyway,
            # as geodns answers with every region when all look down.
            for endpoint in skipped:
                breaker = self._breaker(endpoint.region)
                why = "tried despite its open circuit: no other region answered"
                response = await self._attempt(
                    endpoint, breaker, breaker.force(), call, attempts, why, started
                )
                if response is not None:
                    return response
        if self.resolution_error is not None:
            attempts.append(("DNS", f"re-resolving failed: {self.resolution_error}"))
        raise AllRegionsFailed(self.service, attempts)

    async def _attempt(
        self,
        endpoint: Endpoint,
        breaker: CircuitBreaker,
        ticket: str,
        call: _Call,
        attempts: list[tuple[str, str]],
        why: str,
        started: float,
    ) -> Response | None:
        """One try at one region: the Response, or None after recording the failure."""
        url = self.url(endpoint, call.path)
        timing: dict[str, float] = {}
        token = _TIMING.set(timing)
        try:
            status, headers, body = await self._send(url, call)
        except _Failure as e:
            self._measured(endpoint.region, timing, False)
            breaker.failure(str(e), timeout=e.timeout, ticket=ticket)
            attempts.append((endpoint.region, f"failed: {e}"))
            return None
        except BaseException:
            breaker.release(ticket)  # cancelled: no verdict on the region
            raise
        finally:
            _TIMING.reset(token)
        self._measured(endpoint.region, timing, status not in self.failure_statuses)
        if status in self.failure_statuses:
            breaker.failure(f"HTTP {status}", ticket=ticket)
            attempts.append((endpoint.region, f"failed: HTTP {status}"))
            return None
        breaker.success(ticket)
        stale = self.resolution_error is not None
        reason = "; ".join([f"{r} {what}" for r, what in attempts] + [f"{endpoint.region}: {why}"])
        if stale:
            reason += f" (stale list: re-resolving failed: {self.resolution_error})"
        choice = Choice(
            endpoint.region, endpoint.address, endpoint.port, url, reason, tuple(attempts), stale
        )
        self.last_choice = choice
        elapsed = self._clock() - started
        return Response(status, headers, body, endpoint.region, url, elapsed, choice)

    async def probe(self, path: str = "/") -> dict[str, str]:
        """GET `path` once from every region of the current list, whatever the order and
        the breakers, to measure them all (a RUM beacon's job: the requests of an app only
        measure the region they use). Per region: "ok", or what went wrong."""
        resolution = await self._current()
        out = {}
        call = _Call("GET", path, None, None, None, None)
        for endpoint in resolution.endpoints:
            timing: dict[str, float] = {}
            token = _TIMING.set(timing)
            try:
                status, _, _ = await self._send(self.url(endpoint, path), call)
            except _Failure as e:
                self._measured(endpoint.region, timing, False)
                out[endpoint.region] = str(e)
                continue
            finally:
                _TIMING.reset(token)
            ok = status not in self.failure_statuses
            self._measured(endpoint.region, timing, ok)
            out[endpoint.region] = "ok" if ok else f"HTTP {status}"
        return out

    def _measured(self, region: str, timing: dict[str, float], ok: bool) -> None:
        if self.rum is not None:
            self.rum.record(region, timing.get("connect_ms"), timing.get("ttfb_ms"), ok)

    def url(self, endpoint: Endpoint, path: str = "/") -> str:
        """scheme://address:port/path for one region."""
        host = f"[{endpoint.address}]" if ":" in endpoint.address else endpoint.address
        return f"{self.scheme}://{host}:{endpoint.port}{path}"

    async def _send(self, url: str, call: _Call) -> tuple[int, Mapping[str, str], bytes]:
        """Status, headers and body; the attempt's timing (_TIMING) gets connect_ms (when a
        connection was made) and ttfb_ms (when the response's head came)."""
        timing = _TIMING.get()
        if self._session is None:
            if not self._own_session:
                raise RuntimeError("the client is closed")
            self._session = aiohttp.ClientSession(trace_configs=[_timing_trace()])
        sent_headers = {"Host": self.host_header, **(call.headers or {})}
        extra: dict[str, Any] = {}
        if self.scheme == "https":
            extra["server_hostname"] = self.host_header  # SNI and certificate name
        started = time.perf_counter()
        try:
            async with self._session.request(
                call.method,
                url,
                headers=sent_headers,
                json=call.json,
                data=call.data,
                params=call.params,
                timeout=aiohttp.ClientTimeout(total=self.request_timeout),
                allow_redirects=False,
                trace_request_ctx=timing,
                **extra,
            ) as resp:
                if timing is not None:
                    timing["ttfb_ms"] = (time.perf_counter() - started) * 1000
                body = await resp.read()
                return resp.status, resp.headers, body
        except TimeoutError as e:
            raise _Failure(f"timed out after {self.request_timeout:g} s", timeout=True) from e
        except aiohttp.ClientConnectorError as e:
            raise _Failure(_connect_error(e)) from e
        except (aiohttp.ClientError, OSError) as e:
            raise _Failure(str(e) or type(e).__name__) from e


def _timing_trace() -> aiohttp.TraceConfig:
    """Writes connect_ms into the request's `trace_request_ctx` dict when a connection is
    made for it (a pooled one is not: then there is no connect time to report)."""

    async def start(session: Any, ctx: Any, params: Any) -> None:
        if isinstance(ctx.trace_request_ctx, dict):
            ctx.trace_request_ctx["_connect"] = time.perf_counter()

    async def end(session: Any, ctx: Any, params: Any) -> None:
        timing = ctx.trace_request_ctx
        if isinstance(timing, dict) and "_connect" in timing:
            timing["connect_ms"] = (time.perf_counter() - timing.pop("_connect")) * 1000

    trace = aiohttp.TraceConfig()
    trace.on_connection_create_start.append(start)
    trace.on_connection_create_end.append(end)
    return trace


def _connect_error(error: aiohttp.ClientConnectorError) -> str:
    os_error = error.os_error
    if isinstance(os_error, ConnectionRefusedError):
        return "connection refused"
    return f"cannot connect: {os_error.strerror or os_error}"
