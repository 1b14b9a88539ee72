"""The real-user measurement report (POST /api/rum), version 1: parsed from untrusted bytes.

    {"version": 1,
     "client": "24.5.6.0/24",              optional; a trusted gateway's only
     "samples": [{"region": "us-west-2", "connect_ms": 12.5, "ttfb_ms": 41.0,
                  "ok": true, "t": 1764288000.5}, ...]}

`connect_ms` is null when the request reused a connection, `ttfb_ms` null when no byte came
back (a failed connect, a timeout); `t` is when the request was made, epoch seconds. The
limits below bound what one report can cost; docs/rum.md documents the format.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
from dataclasses import dataclass
from typing import Any

from geodns.errors import GeodnsError

FORMAT_VERSION = 1
MAX_BODY = 64 * 1024  # bytes: 500 samples of about 100 bytes each, with room
MAX_SAMPLES = 500  # per report: a client batches every few seconds, a gateway more often
MAX_MS = 120_000.0  # two minutes: anything longer is a broken clock, not a latency
MAX_FUTURE = 300.0  # seconds a sample's time may be ahead of ours (clock skew)
# The widest client prefix a gateway may report for: one aggregation network (/24, /48).
MIN_CLIENT_PREFIX = {4: 24, 6: 48}
REGION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
_SAMPLE_KEYS = frozenset({"region", "connect_ms", "ttfb_ms", "ok", "t"})
_REPORT_KEYS = frozenset({"version", "client", "samples"})

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class BadReport(GeodnsError):
    """A report that is not version 1 of the format; `reason` is a metric label."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason  # malformed | too_many_samples | bad_value | bad_client


@dataclass(frozen=True, slots=True)
class Sample:
    """One request from a client to a region."""

    region: str
    connect_ms: float | None  # TCP (and TLS) set-up; None: a reused connection, or none made
    ttfb_ms: float | None  # request sent to first response byte; None: no response
    ok: bool  # the request succeeded (what the client counts as success)
    t: float  # epoch seconds, when the request was made


@dataclass(frozen=True, slots=True)
class Report:
    client: IPNetwork | None  # the clients' network a gateway reports for; None: the sender
    samples: tuple[Sample, ...]


def parse_report_untrusted(body: bytes, now: float) -> Report:
    """A Report from a request body, or BadReport saying what is wrong (the first problem)."""
    if len(body) > MAX_BODY:
        raise BadReport("too_large", f"the body is over {MAX_BODY} bytes")
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadReport("malformed", f"the body is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise BadReport("malformed", "the body must be a JSON object")
    unknown = set(doc) - _REPORT_KEYS
    if unknown:
        raise BadReport("malformed", f"unknown keys {sorted(unknown)} (expected version, samples)")
    if doc.get("version") != FORMAT_VERSION or isinstance(doc.get("version"), bool):
        raise BadReport("malformed", f"version must be {FORMAT_VERSION}")
    samples = doc.get("samples")
    if not isinstance(samples, list):
        raise BadReport("malformed", "samples must be a list")
    if len(samples) > MAX_SAMPLES:
        raise BadReport("too_many_samples", f"{len(samples)} samples, at most {MAX_SAMPLES}")
    client = _client(doc.get("client"))
    return Report(client, tuple(_sample(i, s, now) for i, s in enumerate(samples)))


def _client(value: Any) -> IPNetwork | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadReport("bad_client", "client must be a prefix like 24.5.6.0/24")
    try:
        net = ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        raise BadReport("bad_client", f"client: {exc}") from None
    least = MIN_CLIENT_PREFIX[net.version]
    if net.prefixlen < least:
        raise BadReport("bad_client", f"client {value}: at least /{least}, one client network")
    return net


def _sample(i: int, value: Any, now: float) -> Sample:
    where = f"samples[{i}]"
    if not isinstance(value, dict):
        raise BadReport("malformed", f"{where}: expected an object")
    unknown = set(value) - _SAMPLE_KEYS
    if unknown:
        raise BadReport("malformed", f"{where}: unknown keys {sorted(unknown)}")
    region = value.get("region")
    if not isinstance(region, str) or not REGION_NAME.fullmatch(region):
        raise BadReport("bad_value", f"{where}.region: expected a region name")
    ok = value.get("ok")
    if not isinstance(ok, bool):
        raise BadReport("bad_value", f"{where}.ok: expected true or false")
    t = value.get("t")
    if isinstance(t, bool) or not isinstance(t, int | float) or not math.isfinite(t) or t <= 0:
        raise BadReport("bad_value", f"{where}.t: expected epoch seconds")
    if t > now + MAX_FUTURE:
        raise BadReport("bad_value", f"{where}.t: {t:.0f} is in the future")
    connect = _ms(value.get("connect_ms"), f"{where}.connect_ms")
    ttfb = _ms(value.get("ttfb_ms"), f"{where}.ttfb_ms")
    if ok and ttfb is None:
        raise BadReport("bad_value", f"{where}: a request that succeeded has a ttfb_ms")
    return Sample(region, connect, ttfb, ok, float(t))


def _ms(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not 0 <= value <= MAX_MS
    ):
        raise BadReport("bad_value", f"{where}: expected milliseconds, 0 to {MAX_MS:g}")
    return float(value)
