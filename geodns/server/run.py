"""Run the server: bind, fork workers sharing the port, serve until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import sys
from dataclasses import dataclass, field

from geodns.errors import GeodnsError
from geodns.geo.geoip import GeoIPDatabase
from geodns.health.state import ALL_UP, StateSnapshot
from geodns.server.answer import TCP, UDP, Answerer, ServerOptions
from geodns.server.sockets import ListenAddress, SocketSet, bind_all
from geodns.server.tcp import TCPConnection, TCPState
from geodns.server.udp import UDPServer
from geodns.zones.model import ZoneSet

log = logging.getLogger("geodns.server")

SHUTDOWN_GRACE = 2.0  # seconds for open TCP connections to flush their replies


@dataclass(frozen=True)
class ServeConfig:
    zones: ZoneSet
    listen: list[ListenAddress]
    workers: int = 1
    options: ServerOptions = field(default_factory=ServerOptions)
    tcp_idle_timeout: float = 10.0
    tcp_max_connections: int = 1000
    state: StateSnapshot = ALL_UP
    geoip: GeoIPDatabase | None = None
    geoip_reload_interval: float = 10.0  # seconds between looks at the .mmdb file


def install_event_loop() -> str:
    """uvloop when installed: about five times the datagrams per second of asyncio's loop."""
    try:
        import uvloop
    except ImportError:
        return "asyncio"
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return "uvloop"


def run(config: ServeConfig) -> int:
    """Serve until stopped; returns the process exit code."""
    # Until each worker's loop takes over, SIGTERM stops it like Ctrl-C: cleanly, exit 0.
    signal.signal(signal.SIGTERM, _interrupt)
    sets = bind_all(config.listen, config.workers)
    children: list[int] = []
    for index in range(1, config.workers):
        pid = os.fork()
        if pid == 0:
            _die_with_parent()
            for i, s in enumerate(sets):
                if i != index:
                    s.close()
            code = 1
            try:
                code = _serve_worker(config, sets[index], index)
            finally:
                os._exit(code)
        children.append(pid)
    for s in sets[1:]:
        s.close()
    try:
        return _serve_worker(config, sets[0], 0)
    finally:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        for pid in children:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)


async def _watch_geoip(db: GeoIPDatabase, answerer: Answerer, interval: float) -> None:
    """Reload the GeoIP database when its file is replaced (geoipupdate renames a new one in)."""
    while True:
        await asyncio.sleep(interval)
        try:
            swapped = db.maybe_reload()
        except GeodnsError as exc:
            log.error("GeoIP: keeping the loaded database: %s", exc)
            continue
        if swapped:
            log.info("GeoIP: reloaded %s (built %s)", db.path, db.build_date.date())
            answerer.drop_decisions()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _die_with_parent() -> None:
    # A worker must not outlive the parent (kill -9 of the parent included).
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _serve_worker(config: ServeConfig, sockets: SocketSet, index: int) -> int:
    loop_name = install_event_loop()
    if index == 0:
        log.info("event loop: %s", loop_name)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(config, sockets, announce=index == 0))
    return 0


async def serve(
    config: ServeConfig,
    sockets: SocketSet,
    stop: asyncio.Event | None = None,
    announce: bool = True,
) -> None:
    """Serve `sockets` until `stop` is set or SIGINT/SIGTERM arrives."""
    loop = asyncio.get_running_loop()
    stop = stop or asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
    answerer = Answerer(config.zones, config.options, config.state, config.geoip)
    udp_handler = answerer.handler(UDP)
    tcp_state = TCPState(answerer.handler(TCP), config.tcp_idle_timeout, config.tcp_max_connections)
    transports = []
    servers = []
    for sock in sockets.udp:
        transport, _ = await loop.create_datagram_endpoint(
            lambda: UDPServer(udp_handler), sock=sock
        )
        transports.append(transport)
    for sock in sockets.tcp:
        server = await loop.create_server(lambda: TCPConnection(tcp_state), sock=sock)
        servers.append(server)
    if announce:
        workers = f" with {config.workers} workers" if config.workers > 1 else ""
        for udp in sockets.udp:
            host, port = udp.getsockname()[:2]
            log.info("listening on %s (udp, tcp)%s", ListenAddress(host, port), workers)
    watcher = None
    if config.geoip is not None:
        watcher = asyncio.ensure_future(
            _watch_geoip(config.geoip, answerer, config.geoip_reload_interval)
        )
    await stop.wait()
    log.info("shutting down")
    if watcher is not None:
        watcher.cancel()
    for server in servers:
        server.close()
    for transport in transports:
        transport.close()
    for conn in list(tcp_state.connections):
        conn.shutdown()
    deadline = loop.time() + SHUTDOWN_GRACE
    while tcp_state.connections and loop.time() < deadline:
        await asyncio.sleep(0.05)
