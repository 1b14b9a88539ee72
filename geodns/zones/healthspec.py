"""The `health:` keys of a service and its regions: how to check a region, validated.

A service's `health:` mapping holds defaults; each region's own `health:` replaces them key by
key (a key's whole value: a region's `headers` replaces the service's `headers`). `url` and
`tcp` are one slot, the target: a region that names either replaces the service's target.
A region left with no target is not checked.
"""

from __future__ import annotations

import os
import re
import ssl
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

from geodns.yamlsource import Path
from geodns.zones.keys import BODY_FIELDS, BODY_KEYS, HEALTH

HEALTH_KEYS = HEALTH.names

# `${NAME}` in a header value is read from the environment at check time, so that secrets
# stay out of zone files.
ENV_REF = re.compile(r"\$\{([^}]*)\}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an RFC 9110 token


@dataclass(frozen=True, slots=True)
class BodyKeys:
    """The JSON fields of a health response that report utilization, version and readiness."""

    utilization: str = BODY_KEYS.default("utilization")
    version: str = BODY_KEYS.default("version")
    ready: str = BODY_KEYS.default("ready")


@dataclass(frozen=True, slots=True)
class HealthCheck:
    """How to probe one region: an HTTP GET of `url`, or a TCP connect to `tcp` (host, port).

    Frozen and hashable (headers are pairs, not a dict) so that a Region stays a value.
    """

    url: str | None = None
    tcp: tuple[str, int] | None = None
    # The defaults, and why, are declared in keys.HEALTH.
    interval: float = HEALTH.default("interval")  # seconds between probes
    timeout: float = HEALTH.default("timeout")  # seconds a probe may take, body included
    jitter: float = HEALTH.default("jitter")  # +- this fraction of the interval
    rise: int = HEALTH.default("rise")  # consecutive successes that bring a down region up
    fall: int = HEALTH.default("fall")  # consecutive failures that take an up region down
    expect: tuple[int, ...] = tuple(HEALTH.default("expect"))
    headers: tuple[tuple[str, str], ...] = ()  # values may hold ${ENV_VAR}
    verify_tls: bool = HEALTH.default("verify_tls")
    ca_file: str | None = None  # a path, already made relative to the zone file's directory
    keys: BodyKeys = BodyKeys()
    require: frozenset[str] = frozenset(HEALTH.default("require"))  # among BODY_FIELDS

    @property
    def kind(self) -> str:
        return "http" if self.url is not None else "tcp"

    @property
    def target(self) -> str:
        """What is probed, for people: the URL, or host:port."""
        if self.url is not None:
            return self.url
        assert self.tcp is not None
        host, port = self.tcp
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class Errors(Protocol):
    """What the zone builder lends for validation."""

    def add_error(self, path: Path, message: str) -> None: ...
    def unknown_keys(self, path: Path, spec: dict[str, Any], allowed: Iterable[str]) -> None: ...


# Parsed keys of one `health:` mapping: key -> value, plus where it was written for errors.
Fields = dict[str, tuple[Any, Path]]


def health_fields(b: Errors, path: Path, spec: Any, zone_dir: str) -> Fields:
    """Validate the keys of one `health:` mapping (a service's or a region's) on their own.

    Keys with bad values are reported and left out, so that each problem is reported once,
    where it is written, even when a service's default is used by many regions.
    """
    if spec is None:
        return {}
    if not isinstance(spec, dict):
        b.add_error(path, "must be a mapping such as {url: https://host/healthz, interval: 5}")
        return {}
    b.unknown_keys(path, spec, HEALTH_KEYS)
    out: Fields = {}
    if "url" in spec and "tcp" in spec:
        b.add_error(path, "give either `url` or `tcp`, not both")
    for key, value in spec.items():
        if key not in HEALTH_KEYS:
            continue
        kpath = (*path, key)
        parser = _PARSERS.get(key)
        if parser is None:
            parsed = HEALTH[key].kind.parse(b, kpath, value)
        else:
            parsed = parser(b, kpath, value, zone_dir)
        if parsed is not None:
            out[key] = (parsed, kpath)
    return out


def merge_health(b: Errors, path: Path, defaults: Fields, own: Fields) -> HealthCheck | None:
    """A region's check: its own keys over the service's; None when there is no target."""
    merged = dict(defaults)
    if "url" in own or "tcp" in own:
        # The target is one slot: a region's `url` replaces a service-wide `tcp` and back.
        merged.pop("url", None)
        merged.pop("tcp", None)
    merged.update(own)
    if "url" in merged and "tcp" in merged:
        return None  # both in one mapping: already reported
    if "url" not in merged and "tcp" not in merged:
        return None
    values = {key: value for key, (value, _) in merged.items()}
    check = HealthCheck(**values)
    if check.timeout > check.interval:
        # Said where the region sets either value, else at the region's `health` itself.
        where = next((own[k][1] for k in ("timeout", "interval") if k in own), path)
        b.add_error(
            where,
            f"timeout ({check.timeout:g}s) must not exceed interval ({check.interval:g}s):"
            " a probe would still run when the next one starts",
        )
        return None
    return check


# --- one parser per key: the value, or None after reporting why not ----------------------


def _url(b: Errors, path: Path, value: Any, zone_dir: str) -> str | None:
    if not isinstance(value, str) or not value.strip():
        b.add_error(path, "must be an http:// or https:// URL")
        return None
    try:
        parts = urlsplit(value.strip())
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        b.add_error(path, f"{value!r} is not a URL: {exc}")
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        b.add_error(path, f"{value!r} is not an http:// or https:// URL with a host")
        return None
    return value.strip()


def _tcp(b: Errors, path: Path, value: Any, zone_dir: str) -> tuple[str, int] | None:
    message = f"{value!r} is not host:port (e.g. 10.0.0.1:8000 or [2001:db8::1]:8000)"
    if not isinstance(value, str):
        b.add_error(path, message)
        return None
    host, sep, port_text = value.strip().rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        host = ""  # an IPv6 address must be bracketed, or the port is ambiguous
    if not sep or not host or not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        b.add_error(path, message)
        return None
    return host, int(port_text)


def _expect(b: Errors, path: Path, value: Any, zone_dir: str) -> tuple[int, ...] | None:
    items = value if isinstance(value, list) else [value]
    if not items:
        b.add_error(path, "must list at least one HTTP status code")
        return None
    codes = []
    for i, code in enumerate(items):
        if isinstance(code, bool) or not isinstance(code, int) or not 100 <= code <= 599:
            where = (*path, i) if isinstance(value, list) else path
            b.add_error(where, f"{code!r} is not an HTTP status code (100 to 599)")
            return None
        codes.append(code)
    return tuple(dict.fromkeys(codes))


def _headers(
    b: Errors, path: Path, value: Any, zone_dir: str
) -> tuple[tuple[str, str], ...] | None:
    if not isinstance(value, dict):
        b.add_error(path, "must map header name -> value, e.g. {Authorization: 'Bearer ${TOKEN}'}")
        return None
    out = []
    ok = True
    for name, text in value.items():
        hpath = (*path, name)
        if not _HEADER_NAME.fullmatch(name):
            b.add_error(hpath, f"{name!r} is not an HTTP header name")
            ok = False
            continue
        if isinstance(text, bool) or not isinstance(text, str | int | float):
            b.add_error(hpath, f"{text!r} is not a header value (a string)")
            ok = False
            continue
        text = str(text)
        if "\r" in text or "\n" in text:
            b.add_error(hpath, "a header value cannot hold a line break")
            ok = False
            continue
        for ref in ENV_REF.findall(text):
            if not _ENV_NAME.fullmatch(ref):
                b.add_error(hpath, f"${{{ref}}} is not an environment variable name")
                ok = False
        if "${" in ENV_REF.sub("", text):
            b.add_error(hpath, "unterminated ${ in the value: write ${NAME}")
            ok = False
        out.append((str(name), text))
    return tuple(out) if ok else None


def _ca_file(b: Errors, path: Path, value: Any, zone_dir: str) -> str | None:
    if not isinstance(value, str) or not value.strip():
        b.add_error(path, "must be the path of a PEM file of CA certificates")
        return None
    file = os.path.join(zone_dir, value.strip())
    try:
        # Loaded now so that a missing or broken file is a config error, not a failed probe.
        ssl.create_default_context(cafile=file)
    except (OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or str(exc)
        b.add_error(path, f"cannot use {file} as CA certificates: {reason}")
        return None
    return file


def _keys(b: Errors, path: Path, value: Any, zone_dir: str) -> BodyKeys | None:
    if not isinstance(value, dict):
        b.add_error(path, "must map utilization/version/ready -> the JSON field name")
        return None
    b.unknown_keys(path, value, BODY_KEYS.names)
    names = {}
    for key in BODY_FIELDS:
        if key in value:
            name = value[key]
            if not isinstance(name, str) or not name:
                b.add_error((*path, key), f"{name!r} is not a JSON field name")
                return None
            names[key] = name
    if set(value) - set(BODY_FIELDS):
        return None
    return BodyKeys(**names)


def _require(b: Errors, path: Path, value: Any, zone_dir: str) -> frozenset[str] | None:
    items = value if isinstance(value, list) else [value]
    out = set()
    for i, item in enumerate(items):
        if item not in BODY_FIELDS:
            where = (*path, i) if isinstance(value, list) else path
            b.add_error(where, f"{item!r} is not one of {', '.join(BODY_FIELDS)}")
            return None
        out.add(item)
    return frozenset(out)


# The keys whose values need more than their kind's check (keys.HEALTH); the others are
# checked by their kind alone.
_PARSERS: dict[str, Callable[[Errors, Path, Any, str], Any]] = {
    "url": _url,
    "tcp": _tcp,
    "expect": _expect,
    "headers": _headers,
    "ca_file": _ca_file,
    "keys": _keys,
    "require": _require,
}
