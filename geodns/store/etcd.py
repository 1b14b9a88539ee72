"""The etcd v3 store: a fleet's shared control state in an etcd cluster, over its JSON gateway.

geodns speaks to etcd's gRPC gateway (JSON over HTTP/1.1 on the client URL, `/v3/...`)
with aiohttp, not gRPC: the Python gRPC client (aetcd) has no TLS, no client certificates
and no list of endpoints, and would pull in grpcio and protobuf. The calls used:

    list      POST /v3/kv/range      key .. range_end (the prefix with its last byte + 1)
    commit    POST /v3/kv/txn        compare MOD == expected (0: absent); success: deletes, puts
    watch     POST /v3/watch         one create_request; the reply is a stream of JSON lines
    grant     POST /v3/lease/grant
    keepalive POST /v3/lease/keepalive  one request; its first reply line says the TTL left
    put       POST /v3/kv/put        with the lease
    auth      POST /v3/auth/authenticate  -> the token sent as `Authorization`

Keys and values travel base64-encoded; int64 fields come back as JSON strings, and fields
at their zero value (0, false, PUT) are left out. An error is `{"error", "message", "code"}`
with a gRPC status code, inside `result` on a stream.

Endpoints. Each call tries the endpoints in order, starting from the one that answered
last; a refused connection, a reset, a timeout (`timeout` seconds per endpoint) or a member
that says it has no leader (gRPC UNAVAILABLE: every call carries etcd's `hasleader`
metadata, as etcdctl's --require-leader does) moves to the next. So one call takes at most
`timeout` x the number of endpoints, and all of them failing raises StoreUnavailable naming
each endpoint and its cause. A commit whose endpoint timed out may have been applied; its
retry elsewhere then fails its compare (None), and the caller lists again, as after any lost
compare-and-swap.

Watch loss. A watch stream has no deadline, and a member cut off by the network or frozen
says nothing. After `watch_check` seconds of silence (progress notifications included:
`progress_notify` is asked for, though etcd sends them only every 10 minutes unless
--experimental-watch-progress-notify-interval says otherwise) the watch asks the same member
for a linearizable read bounded by `timeout`; a member that cannot answer it (down, or
without a quorum) ends the watch with StoreUnavailable. A lost connection ends it at once;
a member that loses its leader cancels the stream itself (`hasleader`). Loss is therefore
seen within `watch_check` + `timeout` seconds at most.

Auth. With a user and password, a token from /v3/auth/authenticate goes with every call;
an "invalid auth token" (tokens die with etcd's --auth-token-ttl or a member's restart)
authenticates once more and retries.

TLS. `etcds://` endpoints use HTTPS. `etcd://` endpoints use HTTPS as well when a CA
bundle, client certificate or key is given (as etcdctl does with --cacert/--cert/--key),
plain HTTP otherwise.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import json
import math
import os
import re
import ssl
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import aiohttp

from geodns.store.kv import Change, Entry, Listing, StoreUnavailable, Txn, WatchCompacted

DEFAULT_PORT = 2379  # etcd's IANA client port
WATCH_CHECK = 5.0  # seconds of silence on a watch before its member is asked if it is alive
# gRPC status codes etcd answers with (google.golang.org/grpc/codes).
NOT_FOUND = 5
UNAVAILABLE = 14  # no leader, leader changed, request timed out inside etcd: next endpoint
DEADLINE_EXCEEDED = 4
UNAUTHENTICATED = 16
_FAIL_OVER = {UNAVAILABLE, DEADLINE_EXCEEDED}
# Every call requires a member with a leader: one cut off from its quorum says so at once
# (UNAVAILABLE, next endpoint) and cancels its watches. grpc-gateway turns Grpc-Metadata-*
# headers into gRPC metadata; etcd's clientv3.WithRequireLeader sets this one.
_HEADERS = {"Grpc-Metadata-hasleader": "true"}
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*\.?$")


@dataclass(frozen=True)
class EtcdOptions:
    """How to reach etcd. Endpoints are "HOST:PORT" (HTTP, or HTTPS when any of cacert,
    cert, key is given) or "https://HOST:PORT" (parse_store_url makes them)."""

    endpoints: tuple[str, ...]
    prefix: str = "/geodns/"  # every key lives under it; several fleets can share one etcd
    cacert: str | None = None  # CA bundle of etcd's server certificates (else the system's)
    cert: str | None = None  # client certificate, for etcd's --client-cert-auth
    key: str | None = None  # its private key
    user: str | None = None  # etcd auth
    password: str | None = None
    timeout: float = 2.0  # seconds one endpoint may take to answer one call
    watch_check: float = WATCH_CHECK


def parse_store_url(url: str) -> tuple[str, ...]:
    """The endpoints of `etcd://HOST:PORT[,HOST:PORT...]` ("HOST:PORT" each) or of
    `etcds://...` ("https://HOST:PORT" each). IPv6 addresses go in brackets ([::1]:2379);
    the port defaults to 2379. ValueError says what is wrong."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError("expected etcd://HOST:PORT[,HOST:PORT...] (etcds:// for TLS)")
    if scheme not in ("etcd", "etcds"):
        raise ValueError(f"unknown scheme {scheme!r}: use etcd:// (HTTP) or etcds:// (TLS)")
    rest = rest.removesuffix("/")
    if any(c in rest for c in "/?#"):
        raise ValueError("no path, query or fragment: the key prefix is --store-prefix")
    if "@" in rest:
        raise ValueError("no user in the URL: use --store-user and --store-password-file")
    if not rest:
        raise ValueError("no endpoint: expected etcd://HOST:PORT[,HOST:PORT...]")
    endpoints: list[str] = []
    for item in rest.split(","):
        endpoint = _parse_endpoint(item)
        if endpoint in endpoints:
            raise ValueError(f"{endpoint} is listed twice")
        endpoints.append(endpoint)
    if scheme == "etcds":
        return tuple(f"https://{e}" for e in endpoints)
    return tuple(endpoints)


def _parse_endpoint(item: str) -> str:
    """ "HOST:PORT" with IPv6 in brackets, checked."""
    if not item:
        raise ValueError("an empty endpoint (two commas, or one at an end)")
    if item.startswith("["):
        host, close, tail = item[1:].partition("]")
        if not close:
            raise ValueError(f"{item}: no closing ']' after the IPv6 address")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{item}: {host!r} is not an IPv6 address") from None
        host = f"[{host}]"
        if tail and not tail.startswith(":"):
            raise ValueError(f"{item}: expected ':PORT' after ']'")
        port = tail[1:] if tail else None
    elif item.count(":") > 1:
        raise ValueError(f"{item}: put an IPv6 address in brackets: [{item}]:{DEFAULT_PORT}")
    else:
        host, colon, port_text = item.partition(":")
        port = port_text if colon else None
        if not _HOSTNAME.match(host):
            raise ValueError(f"{item}: {host!r} is not a host name or address")
    if port is None:
        return f"{host}:{DEFAULT_PORT}"
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{item}: the port must be a number from 1 to 65535")
    return f"{host}:{int(port)}"


@dataclass(frozen=True, slots=True)
class _Endpoint:
    url: str  # "http://127.0.0.1:2379"
    label: str  # "127.0.0.1:2379", for messages


class _Failed(Exception):
    """One endpoint failed; `fail_over`: the next may do better (else the call fails)."""

    # Control flow only: the endpoint loop catches it and raises StoreUnavailable when no
    # endpoint is left, so callers see the tree's error, never this.

    def __init__(
        self,
        message: str,
        fail_over: bool = True,
        code: int | None = None,
        disconnected: bool = False,
    ) -> None:
        super().__init__(message)
        self.fail_over = fail_over
        self.code = code
        self.disconnected = disconnected  # closed by the server without a reply


class _Refused(StoreUnavailable):
    """etcd answered with an error that another endpoint would repeat; `code`: its gRPC code."""

    def __init__(self, message: str, code: int | None) -> None:
        super().__init__(message)
        self.code = code


class EtcdStore:
    """A KVStore in etcd v3, under `options.prefix`."""

    def __init__(self, options: EtcdOptions) -> None:
        if not options.endpoints:
            raise ValueError("etcd store: no endpoint")
        if options.timeout <= 0:
            raise ValueError("etcd store: the timeout must be more than 0 seconds")
        self.options = options
        self.prefix = options.prefix if options.prefix.endswith("/") else options.prefix + "/"
        any_tls = bool(options.cacert or options.cert or options.key)
        self._tls = any_tls or any(e.startswith("https://") for e in options.endpoints)
        endpoints = []
        for text in options.endpoints:
            scheme, sep, hostport = text.rpartition("://")
            if not sep:
                scheme = "https" if any_tls else "http"
            elif scheme not in ("http", "https"):
                raise ValueError(f"etcd store: {text}: expected HOST:PORT or https://HOST:PORT")
            elif scheme == "http" and any_tls:
                raise ValueError(f"etcd store: {text}: http:// with TLS files given")
            endpoints.append(_Endpoint(f"{scheme}://{hostport}", hostport))
        self._endpoints = tuple(endpoints)
        url_scheme = "etcds" if self._tls else "etcd"
        labels = ",".join(e.label for e in self._endpoints)
        self.description = f"etcd {url_scheme}://{labels} (prefix {self.prefix})"
        self._current = 0  # index of the endpoint that answered last
        self._session: aiohttp.ClientSession | None = None
        self._token: str | None = None
        self._auth_lock = asyncio.Lock()

    # --- KVStore --------------------------------------------------------------------

    async def open(self) -> None:
        """Make the session and read once (a linearizable range under the prefix): at least
        one endpoint must answer, with a leader, and accept the credentials."""
        self._get_session()
        key = self.prefix.encode()
        await self._call(
            "/v3/kv/range",
            {"key": _b64(key), "range_end": _b64(_range_end(key)), "limit": "1", "keys_only": True},
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def list(self, prefix: str) -> Listing:
        key = (self.prefix + prefix).encode()
        reply = await self._call(
            "/v3/kv/range", {"key": _b64(key), "range_end": _b64(_range_end(key))}
        )
        entries = {}
        for kv in reply.get("kvs", ()):
            name = self._relative(kv["key"])
            entries[name] = Entry(
                base64.b64decode(kv.get("value", "")),
                int(kv.get("mod_revision", 0)),
                int(kv.get("lease", 0)),
            )
        return Listing(_revision(reply), MappingProxyType(entries))

    async def commit(self, txn: Txn) -> int | None:
        compare = [
            {
                "key": _b64(self._key(key)),
                "target": "MOD",
                "result": "EQUAL",
                "mod_revision": str(revision),
            }
            for key, revision in txn.expect.items()
        ]
        # etcd refuses a txn that puts and deletes the same key; the put wins, as it does
        # in the embedded store (which applies the deletes first).
        success: list[dict[str, Any]] = [
            {"request_delete_range": {"key": _b64(self._key(key))}}
            for key in dict.fromkeys(txn.delete)
            if key not in txn.put
        ]
        success += [
            {"request_put": {"key": _b64(self._key(key)), "value": _b64(value)}}
            for key, value in txn.put.items()
        ]
        reply = await self._call("/v3/kv/txn", {"compare": compare, "success": success})
        if not reply.get("succeeded", False):
            return None
        return _revision(reply)

    async def grant(self, ttl: float) -> int:
        seconds = max(1, math.ceil(ttl))
        reply = await self._call("/v3/lease/grant", {"TTL": str(seconds)})
        return int(reply["ID"])

    async def keepalive(self, lease: int) -> bool:
        # A stream in gRPC; through the gateway one request gets one reply line, and the
        # stream ends with the request body. A lease not found comes back without a TTL.
        reply = await self._call("/v3/lease/keepalive", {"ID": str(lease)}, stream=True)
        return int(reply.get("TTL", 0)) > 0

    async def put_leased(self, key: str, value: bytes, lease: int) -> int:
        try:
            reply = await self._call(
                "/v3/kv/put",
                {"key": _b64(self._key(key)), "value": _b64(value), "lease": str(lease)},
            )
        except _Refused as exc:
            if exc.code == NOT_FOUND:
                raise StoreUnavailable(f"{self.description}: lease {lease} has expired") from None
            raise
        return _revision(reply)

    async def watch(self, prefix: str, after: int) -> AsyncIterator[tuple[int, list[Change]]]:
        key = (self.prefix + prefix).encode()
        request = {
            "create_request": {
                "key": _b64(key),
                "range_end": _b64(_range_end(key)),
                "start_revision": str(after + 1),
                "progress_notify": True,
            }
        }
        endpoint, response, lines = await self._open_watch(request, after)
        try:
            while True:
                message = await self._next_watch_line(endpoint, lines)
                result = _result(message, endpoint, self.description)
                if result.get("canceled"):
                    raise self._watch_canceled(endpoint, result, after)
                batch: dict[int, list[Change]] = {}
                for event in result.get("events", ()):
                    kv = event["kv"]
                    revision = int(kv.get("mod_revision", 0))
                    deleted = event.get("type") == "DELETE"
                    value = None if deleted else base64.b64decode(kv.get("value", ""))
                    name = self._relative(kv["key"])
                    batch.setdefault(revision, []).append(Change(name, value, revision))
                for revision in sorted(batch):
                    yield revision, batch[revision]
        finally:
            response.close()

    # --- calls ----------------------------------------------------------------------

    async def _call(self, path: str, body: dict[str, Any], stream: bool = False) -> dict[str, Any]:
        """POST `body` to the endpoints in turn until one answers; its reply (for a
        stream, its first result)."""
        errors = []
        for index in self._order():
            endpoint = self._endpoints[index]
            try:
                reply = await self._call_one(endpoint, path, body, stream)
            except _Failed as exc:
                if not exc.fail_over:
                    message = f"{self.description}: {endpoint.label}: {exc}"
                    raise _Refused(message, exc.code) from None
                errors.append(f"{endpoint.label}: {exc}")
                continue
            self._current = index
            return reply
        raise StoreUnavailable(f"{self.description}: no endpoint answered: {'; '.join(errors)}")

    async def _call_one(
        self, endpoint: _Endpoint, path: str, body: dict[str, Any], stream: bool
    ) -> dict[str, Any]:
        """One endpoint, with one new token if etcd said the last one is invalid."""
        for attempt in (1, 2):
            token = await self._ensure_token(endpoint)
            try:
                async with asyncio.timeout(self.options.timeout):
                    reply = await self._post(endpoint, path, body, token, stream)
            except TimeoutError:
                raise _Failed(f"no answer in {self.options.timeout:g} s") from None
            except _Failed as exc:
                # Upstream etcd 3.4.23 and some 3.5 builds close the connection without a
                # reply for an invalid token (etcd-io/etcd#15256, #20332): authenticate
                # once more before calling the member lost.
                if exc.disconnected and token is not None and attempt == 1:
                    await self._reauthenticate(endpoint, token)
                    continue
                raise
            error = _error(reply)
            if error is None:
                return reply
            code, message = error
            if code == UNAUTHENTICATED and self.options.user and attempt == 1:
                await self._reauthenticate(endpoint, token)
                continue
            if code == UNAVAILABLE and message == "connection closed" and self._tls:
                # The member's gateway could not reach its own gRPC port.
                message += (
                    " (inside etcd: with --client-cert-auth, etcd 3.4's server certificate"
                    " needs the clientAuth usage too)"
                )
            if not self.options.user and (
                code == UNAUTHENTICATED or "user name is empty" in message
            ):
                message += " (etcd has auth enabled: set --store-user and a password)"
            raise _Failed(message, fail_over=code in _FAIL_OVER, code=code)
        raise AssertionError("unreachable")

    async def _post(
        self, endpoint: _Endpoint, path: str, body: dict[str, Any], token: str | None, stream: bool
    ) -> dict[str, Any]:
        session = self._get_session()
        headers = dict(_HEADERS)
        if token is not None:
            headers["Authorization"] = token
        try:
            async with session.post(endpoint.url + path, json=body, headers=headers) as response:
                if stream and response.status == 200:
                    line = await response.content.readline()
                    reply = _decode(line)
                    result = reply.get("result")
                    return result if isinstance(result, dict) else reply
                data = await response.read()
                if response.status != 200 and not data.startswith(b"{"):
                    text = data.decode(errors="replace").strip()[:200]
                    raise _Failed(f"HTTP {response.status}: {text}")
                return _decode(data)
        except aiohttp.ServerDisconnectedError as exc:
            cause = _describe(exc, self._tls, self.options.cert)
            raise _Failed(cause, disconnected=True) from None
        except aiohttp.ClientError as exc:
            raise _Failed(_describe(exc, self._tls, self.options.cert)) from None
        except OSError as exc:
            raise _Failed(_describe(exc, self._tls, self.options.cert)) from None

    def _order(self) -> list[int]:
        n = len(self._endpoints)
        return [(self._current + i) % n for i in range(n)]

    # --- auth -----------------------------------------------------------------------

    async def _ensure_token(self, endpoint: _Endpoint) -> str | None:
        if not self.options.user:
            return None
        if self._token is None:
            await self._reauthenticate(endpoint, None)
        return self._token

    async def _reauthenticate(self, endpoint: _Endpoint, failed: str | None) -> None:
        async with self._auth_lock:
            if self._token != failed:
                return  # another call got a new token meanwhile
            body = {"name": self.options.user, "password": self.options.password or ""}
            try:
                async with asyncio.timeout(self.options.timeout):
                    reply = await self._post(endpoint, "/v3/auth/authenticate", body, None, False)
            except TimeoutError:
                raise _Failed(f"no answer in {self.options.timeout:g} s") from None
            error = _error(reply)
            if error is not None:
                code, message = error
                raise _Failed(
                    f"user {self.options.user!r} not authenticated: {message}",
                    fail_over=code in _FAIL_OVER,
                    code=code,
                )
            self._token = str(reply["token"])

    # --- watch ----------------------------------------------------------------------

    async def _open_watch(
        self, request: dict[str, Any], after: int
    ) -> tuple[_Endpoint, aiohttp.ClientResponse, _Lines]:
        """A watch stream that etcd has confirmed (`created`), from the first endpoint
        that gives one."""
        errors = []
        for index in self._order():
            endpoint = self._endpoints[index]
            reauthenticated = False
            while True:
                try:
                    token = await self._ensure_token(endpoint)
                    response, lines, first = await self._start_watch(endpoint, request, token)
                except _Failed as exc:
                    if not exc.fail_over:
                        raise StoreUnavailable(
                            f"{self.description}: {endpoint.label}: {exc}"
                        ) from None
                    errors.append(f"{endpoint.label}: {exc}")
                    break
                if first.get("canceled") and _auth_failure(first) and self.options.user:
                    response.close()
                    if reauthenticated:
                        raise self._watch_canceled(endpoint, first, after)
                    reauthenticated = True
                    try:
                        await self._reauthenticate(endpoint, token)
                    except _Failed as exc:
                        raise StoreUnavailable(
                            f"{self.description}: {endpoint.label}: {exc}"
                        ) from None
                    continue
                if first.get("canceled"):
                    response.close()
                    raise self._watch_canceled(endpoint, first, after)
                self._current = index
                return endpoint, response, lines
        raise StoreUnavailable(f"{self.description}: no endpoint would watch: {'; '.join(errors)}")

    async def _start_watch(
        self, endpoint: _Endpoint, request: dict[str, Any], token: str | None
    ) -> tuple[aiohttp.ClientResponse, _Lines, dict[str, Any]]:
        session = self._get_session()
        headers = dict(_HEADERS)
        if token is not None:
            headers["Authorization"] = token
        response = None
        try:
            async with asyncio.timeout(self.options.timeout):
                response = await session.post(
                    endpoint.url + "/v3/watch",
                    json=request,
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(total=None),
                )
                if response.status != 200:
                    data = (await response.read()).decode(errors="replace").strip()[:200]
                    raise _Failed(f"HTTP {response.status}: {data}")
                lines = _Lines(response.content)
                first = _result(_decode(await lines.next()), endpoint, self.description)
        except TimeoutError:
            if response is not None:
                response.close()
            raise _Failed(f"no watch created in {self.options.timeout:g} s") from None
        except (aiohttp.ClientError, OSError) as exc:
            if response is not None:
                response.close()
            raise _Failed(_describe(exc, self._tls, self.options.cert)) from None
        except BaseException:
            if response is not None:
                response.close()
            raise
        return response, lines, first

    async def _next_watch_line(self, endpoint: _Endpoint, lines: _Lines) -> dict[str, Any]:
        """The next message on the stream; StoreUnavailable when it ends, breaks, or has
        been silent for watch_check seconds and its member does not answer a read."""
        while True:
            try:
                async with asyncio.timeout(self.options.watch_check):
                    line = await lines.next()
            except TimeoutError:
                await self._check_member(endpoint)
                continue
            except (aiohttp.ClientError, OSError) as exc:
                cause = _describe(exc, self._tls, self.options.cert)
                raise StoreUnavailable(
                    f"{self.description}: watch on {endpoint.label} lost: {cause}"
                ) from None
            if not line:
                raise StoreUnavailable(
                    f"{self.description}: watch on {endpoint.label} lost: the stream ended"
                )
            return _decode(line)

    async def _check_member(self, endpoint: _Endpoint) -> None:
        started = time.monotonic()
        key = self.prefix.encode()
        body = {
            "key": _b64(key),
            "range_end": _b64(_range_end(key)),
            "limit": "1",
            "count_only": True,
        }
        try:
            await self._call_one(endpoint, "/v3/kv/range", body, stream=False)
        except _Failed as exc:
            silent = self.options.watch_check + time.monotonic() - started
            raise StoreUnavailable(
                f"{self.description}: watch on {endpoint.label} lost: silent for {silent:.1f} s"
                f" and the member does not answer: {exc}"
            ) from None

    def _watch_canceled(
        self, endpoint: _Endpoint, result: dict[str, Any], after: int
    ) -> StoreUnavailable:
        compacted = int(result.get("compact_revision", 0))
        if compacted:
            return WatchCompacted(
                f"{self.description}: revision {after + 1} is compacted"
                f" (the oldest kept is {compacted}): list again"
            )
        reason = result.get("cancel_reason") or "no reason given"
        return StoreUnavailable(
            f"{self.description}: {endpoint.label} canceled the watch: {reason}"
        )

    # --- inside ---------------------------------------------------------------------

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(ssl=self._ssl_context() if self._tls else False)
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=None, connect=self.options.timeout),
            )
        return self._session

    def _ssl_context(self) -> ssl.SSLContext:
        options = self.options
        try:
            context = ssl.create_default_context(cafile=options.cacert)
        except (OSError, ssl.SSLError) as exc:
            raise StoreUnavailable(f"etcd CA bundle {options.cacert}: {_reason(exc)}") from None
        if options.cert or options.key:
            if not (options.cert and options.key):
                raise StoreUnavailable("etcd TLS: a client certificate needs its key, and back")
            try:
                context.load_cert_chain(options.cert, options.key)
            except (OSError, ssl.SSLError) as exc:
                raise StoreUnavailable(
                    f"etcd client certificate {options.cert} / key {options.key}: {_reason(exc)}"
                ) from None
        return context

    def _key(self, key: str) -> bytes:
        return (self.prefix + key).encode()

    def _relative(self, encoded: str) -> str:
        # Not every key under the prefix need be geodns's own UTF-8: keep any bytes.
        return base64.b64decode(encoded).decode(errors="surrogateescape")[len(self.prefix) :]


class _Lines:
    """Newline-delimited JSON messages from a response body, of any length (aiohttp's own
    readline refuses lines above 128 KiB, and a watch catching up can send more)."""

    def __init__(self, content: aiohttp.StreamReader) -> None:
        self._content = content
        self._buffer = b""

    async def next(self) -> bytes:
        """The next line, without its newline; b"" at the end of the stream."""
        while b"\n" not in self._buffer:
            chunk = await self._content.readany()
            if not chunk:
                line, self._buffer = self._buffer, b""
                return line
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line if line.strip() else await self.next()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _range_end(prefix: bytes) -> bytes:
    """The first key after every key starting with `prefix` (etcd's GetPrefixRangeEnd)."""
    end = bytearray(prefix)
    while end:
        if end[-1] < 0xFF:
            end[-1] += 1
            return bytes(end)
        end.pop()
    return b"\x00"  # every key


def _revision(reply: Mapping[str, Any]) -> int:
    return int(reply.get("header", {}).get("revision", 0))


def _decode(data: bytes) -> dict[str, Any]:
    try:
        reply = json.loads(data)
    except ValueError:
        raise _Failed(f"not an etcd reply: {data[:100]!r}") from None
    if not isinstance(reply, dict):
        raise _Failed(f"not an etcd reply: {data[:100]!r}")
    return reply


def _error(reply: Mapping[str, Any]) -> tuple[int, str] | None:
    """(gRPC code, message) of an error reply (top-level, or a stream's `error`)."""
    error = reply.get("error")
    if isinstance(error, dict):  # on a stream: {"error": {"grpc_code", "message", ...}}
        code = error.get("grpc_code", error.get("code", 2))
        return int(code), str(error.get("message") or error)
    if error is not None:
        return int(reply.get("code", 2)), str(reply.get("message") or error)
    return None


def _result(message: dict[str, Any], endpoint: _Endpoint, description: str) -> dict[str, Any]:
    """A stream message's `result`; StoreUnavailable for an error message."""
    error = _error(message)
    if error is not None:
        raise StoreUnavailable(f"{description}: {endpoint.label}: watch failed: {error[1]}")
    result = message.get("result")
    if not isinstance(result, dict):
        raise StoreUnavailable(f"{description}: {endpoint.label}: not a watch reply: {message}")
    return result


def _auth_failure(result: Mapping[str, Any]) -> bool:
    return "invalid auth token" in str(result.get("cancel_reason", ""))


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or getattr(exc, "reason", None) or str(exc)


def _describe(exc: BaseException, tls: bool, cert: str | None) -> str:
    """A connection failure, in a few words."""
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return f"server certificate not trusted: {exc.certificate_error}"
    if isinstance(exc, aiohttp.ClientConnectorError):
        error = exc.os_error
        if isinstance(error, ConnectionRefusedError):
            return "cannot connect: connection refused"
        cause = os.strerror(error.errno) if error.errno else str(error)
        return f"cannot connect: {cause}"
    ssl_error = exc.__cause__ if isinstance(exc.__cause__, ssl.SSLError) else None
    if ssl_error is not None:
        text = f"TLS handshake failed: {ssl_error.reason or ssl_error}"
    elif isinstance(exc, aiohttp.ServerDisconnectedError):
        text = "connection closed by the server"
    else:
        text = str(exc) or type(exc).__name__
    if tls and cert is None:
        if "CERTIFICATE" in text.upper():
            text += " (etcd wants a client certificate: --store-cert and --store-key)"
        elif isinstance(exc, aiohttp.ClientConnectionError):
            # The server's alert can be lost in the race with its close.
            text += " (if etcd runs with --client-cert-auth: --store-cert and --store-key)"
    return text
