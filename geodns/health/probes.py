"""One probe of one region: an HTTP GET or a TCP connect, turned into a ProbeResult.

A failed probe is a value, never an exception: whatever the endpoint does (refuses, hangs,
answers garbage, lies), the caller gets `ProbeResult(ok=False, error="...")` with a short
reason for people.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import socket
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from geodns.errors import GeodnsError
from geodns.zones.healthspec import BODY_FIELDS, ENV_REF, HealthCheck

MAX_BODY = 64 * 1024  # a health body is small; more is read no further
MAX_ERROR = 200  # characters of an unexpected error's text kept in `error`


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """What one probe found. `error` is why it failed, or, when it passed, what it ignored."""

    ok: bool
    latency: float  # seconds
    error: str | None = None
    utilization: float | None = None
    version: str | None = None
    # Every other top-level number of the body, for the capacity signals a service names
    # (docs/capacity.md); a value that is not a finite number is left out: unknown.
    numbers: tuple[tuple[str, float], ...] = ()


class MissingEnv(GeodnsError):
    """A header refers to an environment variable that is not set."""


def resolve_headers(
    headers: tuple[tuple[str, str], ...], environ: Mapping[str, str]
) -> dict[str, str]:
    """Header values with `${NAME}` replaced from `environ`; raises MissingEnv naming it."""

    def lookup(match: Any) -> str:
        name = match.group(1)
        if name not in environ:
            raise MissingEnv(f"environment variable {name} is not set (header value)")
        return environ[name]

    return {name: ENV_REF.sub(lookup, value) for name, value in headers}


def parse_utilization(value: Any) -> float:
    """GPU utilization as a ratio: 0..1 as is, a percent (above 1, at most 100) divided by 100.

    1 means 100%, not 1%. Raises ValueError with a reason for anything else.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{value!r} is not a number")
    if math.isnan(value) or value < 0 or value > 100:
        raise ValueError(f"{value!r} is not 0..1 or a percent")
    return float(value) if value <= 1 else value / 100


class TLSContexts:
    """SSL contexts per CA file, built once: building one reads the CA bundle."""

    def __init__(self) -> None:
        self._by_ca: dict[str | None, ssl.SSLContext] = {}

    def for_check(self, check: HealthCheck) -> ssl.SSLContext | bool:
        if check.url is None or not check.url.lower().startswith("https:"):
            return True  # aiohttp's default; plain HTTP needs no context built
        if not check.verify_tls:
            return False
        if check.ca_file not in self._by_ca:
            self._by_ca[check.ca_file] = ssl.create_default_context(cafile=check.ca_file)
        return self._by_ca[check.ca_file]


async def probe(
    check: HealthCheck,
    session: aiohttp.ClientSession,
    tls: TLSContexts,
    environ: Mapping[str, str] = os.environ,
) -> ProbeResult:
    """Probe once, never longer than the check's timeout (plus a little), never raising."""
    start = time.perf_counter()
    try:
        # aiohttp's own timeout covers the request; this guard covers everything else
        # (name resolution, a body trickling in, our own parsing) so no probe outlives it.
        # asyncio.timeout, not wait_for: on Python 3.11, wait_for loses a cancellation that
        # arrives as the probe completes, and the monitor's stop() then waited for ever on a
        # probe loop that went on (a test hung so, 1 run in 4).
        async with asyncio.timeout(check.timeout + 0.05):
            if check.url is not None:
                return await _http(check, session, tls, environ, start)
            return await _tcp(check, start)
    except asyncio.CancelledError:
        raise
    except TimeoutError:
        return _fail(start, f"timeout after {check.timeout}s")
    except Exception as exc:  # any failure of the endpoint is a failed check, never a crash
        return _fail(start, describe_error(exc, check))


def _fail(start: float, error: str) -> ProbeResult:
    return ProbeResult(False, time.perf_counter() - start, error)


async def _tcp(check: HealthCheck, start: float) -> ProbeResult:
    assert check.tcp is not None
    host, port = check.tcp
    _, writer = await asyncio.open_connection(host, port)
    latency = time.perf_counter() - start
    writer.close()
    with contextlib.suppress(OSError):  # the connection opened: that was the check
        await writer.wait_closed()
    return ProbeResult(True, latency)


async def _http(
    check: HealthCheck,
    session: aiohttp.ClientSession,
    tls: TLSContexts,
    environ: Mapping[str, str],
    start: float,
) -> ProbeResult:
    assert check.url is not None
    try:
        headers = resolve_headers(check.headers, environ)
    except MissingEnv as exc:
        return _fail(start, str(exc))
    async with session.get(
        check.url,
        headers=headers,
        ssl=tls.for_check(check),
        timeout=aiohttp.ClientTimeout(total=check.timeout),
        allow_redirects=False,  # a redirect is a status like any other: list it in `expect`
    ) as resp:
        body = await resp.content.read(MAX_BODY)
        status = resp.status
    latency = time.perf_counter() - start
    if status not in check.expect:
        return ProbeResult(False, latency, f"HTTP {status}")
    return read_body(check, body, latency)


def read_body(check: HealthCheck, body: bytes, latency: float) -> ProbeResult:
    """Judge a health body: `ready` not false, required fields present and valid."""
    keys = check.keys
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        if check.require:
            what = "body is not JSON" if data is None else "body is not a JSON object"
            return ProbeResult(False, latency, what)
        return ProbeResult(True, latency)  # a plain "OK" is a fine health body
    missing: dict[str, str] = {}  # body field -> message
    invalid: dict[str, str] = {}
    if keys.ready not in data:
        missing["ready"] = f"missing key {keys.ready}"
    elif data[keys.ready] is False:
        return ProbeResult(False, latency, f"{keys.ready} is false")  # required or not
    elif data[keys.ready] is not True:
        invalid["ready"] = f"{keys.ready} {data[keys.ready]!r} is not true or false"
    utilization = None
    if keys.utilization not in data:
        missing["utilization"] = f"missing key {keys.utilization}"
    else:
        try:
            utilization = parse_utilization(data[keys.utilization])
        except ValueError as exc:
            invalid["utilization"] = f"{keys.utilization} {exc}"
    version = None
    raw = data.get(keys.version)
    if keys.version not in data:
        missing["version"] = f"missing key {keys.version}"
    elif isinstance(raw, str | int | float) and not isinstance(raw, bool):
        version = str(raw)
    else:
        invalid["version"] = f"{keys.version} {raw!r} is not a string"
    for field in BODY_FIELDS:
        if field in check.require and (field in missing or field in invalid):
            return ProbeResult(False, latency, missing.get(field) or invalid[field])
    # An optional field that is absent is just not reported; a garbled one is noted.
    numbers = tuple(
        (k, float(v))
        for k, v in data.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    )
    error = "; ".join(invalid.values()) or None
    return ProbeResult(True, latency, error, utilization, version, numbers)


def describe_error(exc: BaseException, check: HealthCheck) -> str:
    """A short reason for people from whatever a probe raised."""
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        cert_error = exc.certificate_error
        detail = getattr(cert_error, "verify_message", None) or str(cert_error)
        return f"TLS: certificate verify failed ({detail})"
    if isinstance(exc, aiohttp.ClientConnectorSSLError | aiohttp.ClientSSLError | ssl.SSLError):
        reason = getattr(exc, "reason", None) or str(exc)
        return f"TLS: {reason}"[:MAX_ERROR]
    if isinstance(exc, aiohttp.ClientConnectorError):
        return _os_error(exc.os_error, exc.host)
    if isinstance(exc, aiohttp.ServerTimeoutError):
        return f"timeout after {check.timeout}s"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "server disconnected"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "broken response body"
    if isinstance(exc, aiohttp.ClientResponseError):
        return f"bad HTTP response: {exc.message}"[:MAX_ERROR]
    if isinstance(exc, OSError):
        host = check.tcp[0] if check.tcp else ""
        return _os_error(exc, host)
    return f"{type(exc).__name__}: {exc}"[:MAX_ERROR]


def _os_error(exc: OSError, host: str) -> str:
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve {host}"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError):
        return "connection reset"
    text = exc.strerror or str(exc) or type(exc).__name__
    return text[0].lower() + text[1:] if text else text
