"""Run the server: bind, fork workers sharing the port, serve until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from dataclasses import dataclass, field
from typing import Protocol

from geodns.errors import GeodnsError
from geodns.geo.geoip import GeoIPDatabase
from geodns.geo.scopes import ScopeFiles, ScopeRuns
from geodns.health.state import ALL_UP, StateSnapshot
from geodns.lifetime import die_with_parent
from geodns.server.answer import TCP, UDP, Answerer, ServerOptions
from geodns.server.channel import Channel
from geodns.server.sockets import ListenAddress, SocketSet, bind_all
from geodns.server.stats import QueryStats
from geodns.server.tcp import TCPConnection, TCPState
from geodns.server.udp import UDPServer
from geodns.zones.model import ZoneSet

log = logging.getLogger("geodns.server")

SHUTDOWN_GRACE = 2.0  # seconds for open TCP connections to flush their replies
STATS_INTERVAL = 1.0  # seconds between a worker's reports of its counts


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


class Control(Protocol):
    """The once-per-server part (health checks, admin HTTP, reloads), run in the first
    process beside its DNS worker; the other workers hear from it through channels."""

    async def start(self, local: DnsWorker, children: list[Channel]) -> None:
        """Ready the first state (the first health-check round); DNS answers after this."""

    async def stop(self) -> None: ...


class DnsWorker:
    """One process's DNS side: the Answerer its listeners call, swapped on a new config."""

    def __init__(self, config: ServeConfig, stats: QueryStats | None = None) -> None:
        self.config = config
        self.stats = stats or QueryStats()
        self.answerer = Answerer(
            config.zones, config.options, config.state, config.geoip, self.stats
        )
        self.scopes: tuple[str, dict[str, ScopeRuns]] | None = None
        self.udp: list[UDPServer] = []
        self.tcp_state = TCPState(
            self.answerer.handler(TCP), config.tcp_idle_timeout, config.tcp_max_connections
        )

    def apply_zones(self, zones: ZoneSet) -> None:
        """Swap in a new configuration; queries in flight finish on the old one, since
        answering is synchronous."""
        answerer = Answerer(
            zones, self.config.options, self.answerer.state, self.config.geoip, self.stats
        )
        if self.scopes is not None:
            answerer.geo.set_scopes(*self.scopes)
        self.answerer = answerer
        for protocol in self.udp:
            protocol.set_handler(answerer.handler(UDP))
        self.tcp_state.handler = answerer.handler(TCP)

    def apply_state(self, state: StateSnapshot) -> None:
        self.answerer.set_state(state)

    def apply_scopes(self, scopes: ScopeFiles) -> None:
        """Merged ECS scopes for the GeoIP file version `scopes.file_key`."""
        # Runs already loaded for this file version stay (a reload changed another class).
        previous: dict[str, ScopeRuns] = {}
        if self.scopes is not None and self.scopes[0] == scopes.file_key:
            previous = self.scopes[1]
        loaded = {}
        for fingerprint, path in scopes.files.items():
            runs = previous.get(fingerprint)
            if runs is None:
                try:
                    runs = ScopeRuns.load(path)
                except Exception as exc:  # a damaged file: zipfile.BadZipFile and others
                    log.warning("ECS scopes: cannot read %s: %r", path, exc)
                    continue
            loaded[fingerprint] = runs
        self.scopes = (scopes.file_key, loaded)
        self.answerer.geo.set_scopes(*self.scopes)
        self.answerer.drop_decisions()

    def apply(self, message: tuple) -> None:
        """A message from the control plane: ("zones", ZoneSet), ("state", snapshot) or
        ("scopes", ScopeFiles)."""
        kind, value = message
        if kind == "zones":
            self.apply_zones(value)
        elif kind == "state":
            self.apply_state(value)
        elif kind == "scopes":
            self.apply_scopes(value)


def run(config: ServeConfig, control: Control | None = None) -> int:
    """Serve until stopped; returns the process exit code."""
    # Until each worker's loop takes over, SIGTERM stops it like Ctrl-C: cleanly, exit 0.
    signal.signal(signal.SIGTERM, _interrupt)
    sets = bind_all(config.listen, config.workers)
    children: list[int] = []
    links: list[Channel] = []
    for index in range(1, config.workers):
        parent_end, child_end = socket.socketpair()
        pid = os.fork()
        if pid == 0:
            die_with_parent()  # a worker must not outlive the parent
            parent_end.close()
            for link in links:
                link.sock.close()
            for i, s in enumerate(sets):
                if i != index:
                    s.close()
            code = 1
            try:
                code = _serve_worker(config, sets[index], index, Channel(child_end))
            finally:
                os._exit(code)
        child_end.close()
        links.append(Channel(parent_end))
        children.append(pid)
    for s in sets[1:]:
        s.close()
    try:
        return _serve_worker(config, sets[0], 0, control=control, children=links)
    finally:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        for pid in children:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)


async def _watch_geoip(db: GeoIPDatabase, worker: DnsWorker, interval: float) -> None:
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
            worker.answerer.drop_decisions()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _serve_worker(
    config: ServeConfig,
    sockets: SocketSet,
    index: int,
    channel: Channel | None = None,
    control: Control | None = None,
    children: list[Channel] | None = None,
) -> int:
    loop_name = install_event_loop()
    if index == 0:
        log.info("event loop: %s", loop_name)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            serve(
                config,
                sockets,
                announce=index == 0,
                channel=channel,
                control=control,
                children=children or [],
            )
        )
    return 0


async def serve(
    config: ServeConfig,
    sockets: SocketSet,
    stop: asyncio.Event | None = None,
    announce: bool = True,
    channel: Channel | None = None,
    control: Control | None = None,
    children: list[Channel] | None = None,
) -> None:
    """Serve `sockets` until `stop` is set or SIGINT/SIGTERM arrives.

    With `control`, its start (the first health-check round) comes before the first
    answer; a worker with a `channel` waits for the control plane's first state instead.
    """
    loop = asyncio.get_running_loop()
    stop = stop or asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
    worker = DnsWorker(config)
    background: list[asyncio.Future] = []
    if channel is not None:
        await channel.open()
        worker.apply(await channel.receive())
        background.append(asyncio.ensure_future(_follow(channel, worker, stop)))
    for link in children or []:
        await link.open()
    if control is not None:
        await control.start(worker, children or [])
    else:
        for link in children or []:
            link.send(("state", config.state))
    transports = []
    servers = []
    for sock in sockets.udp:
        protocol = UDPServer(worker.answerer.handler(UDP))
        worker.udp.append(protocol)
        transport, _ = await loop.create_datagram_endpoint(lambda p=protocol: p, sock=sock)
        transports.append(transport)
    # The first state may have come with a new answerer; the TCP side takes the current one.
    worker.tcp_state.handler = worker.answerer.handler(TCP)
    for sock in sockets.tcp:
        server = await loop.create_server(lambda: TCPConnection(worker.tcp_state), sock=sock)
        servers.append(server)
    if announce:
        workers = f" with {config.workers} workers" if config.workers > 1 else ""
        for udp in sockets.udp:
            host, port = udp.getsockname()[:2]
            log.info("listening on %s (udp, tcp)%s", ListenAddress(host, port), workers)
    if config.geoip is not None:
        background.append(
            asyncio.ensure_future(_watch_geoip(config.geoip, worker, config.geoip_reload_interval))
        )
    await stop.wait()
    log.info("shutting down")
    for task in background:
        task.cancel()
    if control is not None:
        await control.stop()
    for server in servers:
        server.close()
    for transport in transports:
        transport.close()
    for conn in list(worker.tcp_state.connections):
        conn.shutdown()
    deadline = loop.time() + SHUTDOWN_GRACE
    while worker.tcp_state.connections and loop.time() < deadline:
        await asyncio.sleep(0.05)


async def _follow(channel: Channel, worker: DnsWorker, stop: asyncio.Event) -> None:
    """Apply the control plane's messages; report this worker's counts once a second."""

    async def report() -> None:
        while True:
            await asyncio.sleep(STATS_INTERVAL)
            channel.send(("stats", worker.stats.export()))

    reporter = asyncio.ensure_future(report())
    try:
        while True:
            worker.apply(await channel.receive())
    except (asyncio.IncompleteReadError, ConnectionError):
        stop.set()  # the control plane is gone: so is the server
    finally:
        reporter.cancel()
