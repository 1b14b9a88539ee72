"""Run the server: bind, fork workers sharing the port, serve until SIGINT/SIGTERM.

    geodns serve (process 0: control plane + DNS worker 0)
      worker supervisor (forked before any event loop; restarts a killed worker)
        DNS worker 1 .. N-1 (each with a channel to process 0)

The supervisor, not process 0, forks the workers: process 0 runs an event loop (and the
admin side's threads), which a fork must not copy. A worker killed by a signal or dying
of an error is forked again from the supervisor; the supervisor hands process 0 the new
worker's end of a channel, and process 0 replays the current zones, scopes and state to it.

While a worker takes in new zones (a reload: seconds of blocking work), its twin (a copy
forked when it started and kept current, geodns.server.twin) answers its UDP sockets from
the old zones; without a twin, a copy forked for that reload, its StandIn (docs/reload.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from geodns import sdnotify
from geodns.errors import GeodnsError
from geodns.geo.geoip import GeoIPDatabase
from geodns.geo.scopes import ScopeFiles, ScopeRuns
from geodns.health.state import ALL_UP, StateSnapshot
from geodns.lifetime import die_with_parent
from geodns.server import heap, pktinfo
from geodns.server.answer import EXACT_CACHE_SIZE, TCP, UDP, Answerer, ServerOptions
from geodns.server.channel import Channel, WorkerLink
from geodns.server.querylog import QueryLog
from geodns.server.rrl import Exemption, ResponseRateLimiter, RRLConfig
from geodns.server.sockets import LISTEN_BACKLOG, ListenAddress, SocketSet, bind_all
from geodns.server.standin import Relief, StandIn, run_now
from geodns.server.stats import QueryStats
from geodns.server.tcp import TCPConnection, TCPState
from geodns.server.twin import Twin
from geodns.server.udp import UDPServer
from geodns.zones.model import ZoneSet

log = logging.getLogger("geodns.server")

SHUTDOWN_GRACE = 2.0  # seconds for open TCP connections to flush their replies
RESTART_PAUSE = 1.0  # seconds before restarting a worker that died within this of starting
STATS_INTERVAL = 1.0  # seconds between a worker's reports of its counts
# Seconds the loop runs after a reload, at the lowest priority, before its relief stops
# answering: what the reload held up (timers, the channel, the admin side) is done then,
# not in front of the first datagrams the loop reads again (5 ms of late replies).
CATCH_UP = 0.02
TWIN_FEED_INTERVAL = 0.5  # seconds between the queries newly cached sent to the twin
TWIN_FEED_BATCH = 2000  # queries at most per message: its pickling must not hold the loop


@dataclass
class ServeConfig:
    # The zones to start with. A worker that takes in new ones puts them here too (see
    # DnsWorker.apply_zones); every other field stays as given.
    zones: ZoneSet
    listen: list[ListenAddress]
    workers: int = 1
    options: ServerOptions = field(default_factory=ServerOptions)
    tcp_idle_timeout: float = 10.0
    tcp_max_connections: int = 1000
    state: StateSnapshot = ALL_UP
    geoip: GeoIPDatabase | None = None
    geoip_reload_interval: float = 10.0  # seconds between looks at the .mmdb file
    rrl: RRLConfig = field(default_factory=RRLConfig)
    # A query that proves its source address (a valid server cookie) is never limited.
    rrl_exempt: Exemption | None = None
    # The sampled query log's records a second, for the whole server; None: off.
    query_log_rate: float | None = None
    # Whether each DNS worker keeps a twin to answer during reloads (geodns.server.twin).
    twins: bool = True


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
        # One sampler per worker, kept across reloads; the rate is shared out between the
        # workers so that the server as a whole logs at most the rate asked for.
        self.query_log = (
            None
            if config.query_log_rate is None
            else QueryLog(config.query_log_rate / config.workers)
        )
        self.answerer = Answerer(
            config.zones, config.options, config.state, config.geoip, self.stats, self.query_log
        )
        self.scopes: tuple[str, dict[str, ScopeRuns]] | None = None
        self.zones = config.zones  # the zones served now
        self.reloaded = False  # whether they are other than the ones this process started with
        self.scope_files: ScopeFiles | None = None  # the last scopes the control plane sent
        self.udp: list[UDPServer] = []
        self.udp_fds: list[int] = []  # their sockets, for a twin or a stand-in
        self.twin: Twin | None = None  # told everything applied here, in the same order
        self._twinned = False  # whether this worker keeps one (a lost one is forked again)
        self._twin_start: asyncio.Future | None = None  # a lost one's successor, forking
        self._relief: Relief | None = None  # while a ("stand-in") awaits its ("zones")
        # The queries the Answerer newly cached, until the twin is sent them (feed_twin).
        self._fresh: deque[bytes] | None = None
        self.addresses: tuple[str, ...] = ()  # where it answers, ports as bound
        # One table for every UDP socket of the worker, kept across reloads.
        self.limiter = (
            ResponseRateLimiter(config.rrl, config.rrl_exempt, self.stats)
            if config.rrl.enabled
            else None
        )
        self.tcp_state = TCPState(
            self.answerer.handler(TCP), config.tcp_idle_timeout, config.tcp_max_connections
        )

    def apply_zones(
        self, zones: ZoneSet, run: Callable[[Callable[[], Answerer]], Answerer] = run_now
    ) -> None:
        """Swap in a new configuration; queries in flight finish on the old one, since
        answering is synchronous. Building the Answerer (0.04 s for a zone of 10,000
        records) and warming its caches with the queries the old one answered last (up to
        WARM_BUDGET, 0.2 s) block the loop: a reload runs them under stand_in(), through
        its StandIn.run."""
        old = self.answerer

        def build() -> Answerer:
            answerer = Answerer(
                zones, self.config.options, old.state, self.config.geoip, self.stats, old.query_log
            )
            if self.scopes is not None:
                answerer.geo.set_scopes(*self.scopes)
            answerer.warm_from(old)
            return answerer

        answerer = run(build)
        # The texts, where there are any: pickling the ZoneSet would cost this process
        # 0.12 s of CPU per 10,000 records (the twin builds the zones from them again).
        self._tell_twin(("zones", zones) if zones.texts is None else ("zone-texts", zones.texts))
        self.zones = zones
        self.reloaded = True
        # The settings follow: they are held by the frames of the serve command for the
        # process's life, and would otherwise keep the first configuration beside each new
        # one (one more copy of every record, for good). A forked worker's supervisor has
        # its own copy of them, and a restarted worker gets the current zones replayed.
        self.config.zones = zones
        answerer.fresh = self._fresh
        self.answerer = answerer
        for protocol in self.udp:
            protocol.set_handler(answerer.handler(UDP))
        self.tcp_state.handler = answerer.handler(TCP)

    async def start_twin(self) -> None:
        """Fork this worker's twin (geodns.server.twin), where it can have one."""
        if not self.config.twins:
            return
        self.twin = await Twin.start(self)
        if self.twin is not None:
            self._twinned = True
            self._fresh = self.answerer.fresh = deque(maxlen=EXACT_CACHE_SIZE)

    def forget_twin(self) -> None:
        """In the twin itself: what it applies goes no further, and it records nothing."""
        self.twin = None
        self._fresh = self.answerer.fresh = None

    def feed_twin(self) -> None:
        """Send the twin what the Answerer newly cached, at most TWIN_FEED_BATCH queries:
        it answers them into its own caches, so that it answers from warm ones when a
        reload hands it the sockets (cold, its first queries for each name cost it about
        45 us each, 20 ms of lateness at the first reload of a 10,000-name zone)."""
        fresh = self._fresh
        if self.twin is None or not fresh or self.twin.behind():
            return  # (fresh is bounded: the oldest queries fall out first)
        batch = [fresh.popleft() for _ in range(min(len(fresh), TWIN_FEED_BATCH))]
        self.twin.send(("warm", batch))

    async def relief(self) -> Relief | None:
        """Whatever answers the UDP sockets while this process's loop is busy (a reload)
        from the current configuration: its twin, else a stand-in forked now. The reload
        runs its work through the Relief's run(), then hands it to end_relief(). None
        where there is nothing to answer for, or fork fails."""
        if self.twin is not None:
            relief = await self.twin.relieve()
            if relief is not None:
                return relief
        return self.stand_in()

    async def end_relief(self, relief: Relief) -> None:
        """Stop the relief (the loop answers again), after letting the loop catch up on
        what the reload held up for CATCH_UP, at the lowest priority; fork a new twin if
        the old one was lost."""
        relief.settle()
        await asyncio.sleep(CATCH_UP)
        relief.release()
        if self._twinned and (self.twin is None or self.twin.gone):
            self.twin = None
            self._twin_start = asyncio.ensure_future(self.start_twin())

    def stand_in(self) -> StandIn | None:
        """Fork a copy of this worker that answers its UDP sockets with the current
        Answerer while this process's loop is busy (a reload); stop() it once the loop
        answers again. None where there is nothing to stand in for, or fork fails."""
        if not self.udp_fds:
            return None
        try:
            return StandIn.start(self)
        except OSError as exc:
            log.warning("reload: no stand-in to answer meanwhile (%s): answers wait", exc)
            return None

    def _tell_twin(self, message: tuple) -> None:
        if self.twin is not None:
            self.twin.send(message)

    def apply_state(self, state: StateSnapshot) -> None:
        self.answerer.set_state(state)
        self._tell_twin(("state", state))

    def reload_geoip(self) -> bool:
        """Read the GeoIP file again if it was replaced (geoipupdate renames a new one in);
        whether it was. Raises GeodnsError for a file it cannot read (the old one stays)."""
        db = self.config.geoip
        if db is None or not db.maybe_reload():
            return False
        self.answerer.drop_decisions()
        self._tell_twin(("geoip", None))
        return True

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
        self.scope_files = scopes
        self.answerer.geo.set_scopes(*self.scopes)
        self.answerer.drop_decisions()
        self._tell_twin(("scopes", scopes))

    async def receive(self, message: tuple) -> None:
        """A message from the control plane: ("stand-in", None) when a reload's zones
        follow (their relief answers meanwhile), or what apply() takes."""
        kind, value = message
        if kind == "stand-in":
            if self._relief is None:
                self._relief = await self.relief()
        elif kind == "zones" and self._relief is not None:
            relief, self._relief = self._relief, None
            try:
                self.apply_zones(value, relief.run)
            finally:
                await self.end_relief(relief)
        else:
            self.apply(message)

    def apply(self, message: tuple) -> None:
        """A message from the control plane: ("zones", ZoneSet), ("state", snapshot),
        ("scopes", ScopeFiles), or ("counts", export) to count on from (a replaced
        worker's)."""
        kind, value = message
        if kind == "zones":
            self.apply_zones(value)
        elif kind == "state":
            self.apply_state(value)
        elif kind == "scopes":
            self.apply_scopes(value)
        elif kind == "counts":
            self.stats.add(value)

    def replay(self, last_stats: dict | None) -> list[tuple]:
        """What makes a new worker current, as messages; ends with the state, which is
        what a starting worker waits for before it answers."""
        messages: list[tuple] = []
        if last_stats is not None:
            messages.append(("counts", last_stats))
        if self.reloaded:
            messages.append(("zones", self.zones))
        if self.scope_files is not None:
            messages.append(("scopes", self.scope_files))
        messages.append(("state", self.answerer.state))
        return messages


def run(config: ServeConfig, control: Control | None = None) -> int:
    """Serve until stopped; returns the process exit code."""
    # Until each worker's loop takes over, SIGTERM stops it like Ctrl-C: cleanly, exit 0.
    signal.signal(signal.SIGTERM, _interrupt)
    # SIGHUP means "reload" once the control plane listens for it; until then (the first
    # health round can take seconds) and in the workers it must not kill the process.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    sets = bind_all(config.listen, config.workers)
    links: list[WorkerLink] = []
    supervisor: tuple[int, socket.socket] | None = None
    if config.workers > 1:
        child_ends: dict[int, socket.socket] = {}
        for index in range(1, config.workers):
            parent_end, child_end = socket.socketpair()
            links.append(WorkerLink(parent_end))
            child_ends[index] = child_end
        supervisor = _start_supervisor(config, sets, child_ends, links)
    for s in sets[1:]:
        s.close()
    try:
        return _serve_worker(
            config,
            sets[0],
            0,
            control=control,
            children=links,
            supervisor=None if supervisor is None else supervisor[1],
        )
    finally:
        if supervisor is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(supervisor[0], signal.SIGTERM)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(supervisor[0], 0)


class _Stop(Exception):
    """SIGTERM or SIGINT in the supervisor."""

    # Control flow only: raised by the signal handler to unwind the supervisor's wait, caught
    # there; never seen outside this module.


def _raise_stop(signum: int, frame: object) -> None:
    raise _Stop


def _start_supervisor(
    config: ServeConfig,
    sets: list[SocketSet],
    child_ends: dict[int, socket.socket],
    links: list[WorkerLink],
) -> tuple[int, socket.socket]:
    """Fork the process that forks (and re-forks) workers 1..N-1; returns its pid and
    process 0's end of the link on which it hands over new workers' channels."""
    # SEQPACKET: one handover per message, its descriptor with it.
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            die_with_parent(parent)  # the supervisor, and so its workers, go with process 0
            ours.close()
            for link in links:
                link.sock.close()
            sets[0].close()
            code = _supervise(config, sets, child_ends, theirs)
        finally:
            os._exit(code)
    theirs.close()
    for end in child_ends.values():
        end.close()
    return pid, ours


def _fork_worker(
    config: ServeConfig, sets: list[SocketSet], index: int, end: socket.socket, close: list
) -> int:
    supervisor = os.getpid()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            die_with_parent(supervisor)  # a worker must not outlive the supervisor
            signal.signal(signal.SIGTERM, _interrupt)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            for item in close:
                item.close()
            for i, s in enumerate(sets):
                if i != index:
                    s.close()
            code = _serve_worker(config, sets[index], index, Channel(end))
        finally:
            os._exit(code)
    return pid


def _supervise(
    config: ServeConfig,
    sets: list[SocketSet],
    child_ends: dict[int, socket.socket],
    link: socket.socket,
) -> int:
    """Start the workers; start a worker again when one is killed or crashes."""
    signal.signal(signal.SIGTERM, _raise_stop)
    signal.signal(signal.SIGINT, _raise_stop)
    workers: dict[int, tuple[int, float]] = {}  # pid -> (index, started)
    try:
        for index, end in child_ends.items():
            others = [e for i, e in child_ends.items() if i != index]
            workers[_fork_worker(config, sets, index, end, [link, *others])] = (
                index,
                time.monotonic(),
            )
        for end in child_ends.values():
            end.close()
        while workers:
            pid, status = os.wait()
            found = workers.pop(pid, None)
            if found is None:
                continue
            index, started = found
            if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
                continue  # it stopped as asked (SIGTERM to it, or process 0 gone)
            how = (
                f"was killed by signal {os.WTERMSIG(status)}"
                if os.WIFSIGNALED(status)
                else f"exited with status {os.WEXITSTATUS(status)}"
            )
            log.warning("DNS worker %d (pid %d) %s: starting a new one", index, pid, how)
            if time.monotonic() - started < RESTART_PAUSE:
                time.sleep(RESTART_PAUSE)  # a worker that dies at start must not spin
            ours, theirs = socket.socketpair()
            try:
                socket.send_fds(link, [index.to_bytes(4, "big")], [ours.fileno()])
            except OSError:
                break  # process 0 is gone: so is the server
            finally:
                ours.close()
            new = _fork_worker(config, sets, index, theirs, [link])
            theirs.close()
            workers[new] = (index, time.monotonic())
            log.info("DNS worker %d restarted (pid %d)", index, new)
    except _Stop:
        pass
    for pid in workers:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    for pid in workers:
        with contextlib.suppress(ChildProcessError, _Stop):
            os.waitpid(pid, 0)
    return 0


def _adopt_workers(
    supervisor: socket.socket, links: list[WorkerLink], worker: DnsWorker
) -> Callable[[], None]:
    """Process 0's side of a restart: take the new worker's channel from the supervisor,
    point the worker's link at it, and replay what makes the new worker current.
    Returns what stops listening."""
    loop = asyncio.get_running_loop()
    supervisor.setblocking(False)
    fd = supervisor.fileno()
    pending: set[asyncio.Future] = set()

    async def adopt(index: int, sock: socket.socket) -> None:
        link = links[index - 1]
        await link.replace(sock)
        for message in worker.replay(link.last_stats):
            link.send(message)

    def readable() -> None:
        try:
            data, fds, _, _ = socket.recv_fds(supervisor, 16, 4)
        except BlockingIOError:
            return
        except OSError:
            data, fds = b"", []
        if not data:
            loop.remove_reader(fd)
            log.error("the worker supervisor is gone: workers killed now are not restarted")
            return
        index = int.from_bytes(data[:4], "big")
        if not fds or not 1 <= index <= len(links):
            for extra in fds:
                os.close(extra)
            return
        for extra in fds[1:]:
            os.close(extra)
        task = asyncio.ensure_future(adopt(index, socket.socket(fileno=fds[0])))
        pending.add(task)
        task.add_done_callback(pending.discard)

    loop.add_reader(fd, readable)
    return lambda: loop.remove_reader(fd)


async def _watch_geoip(db: GeoIPDatabase, worker: DnsWorker, interval: float) -> None:
    """Reload the GeoIP database when its file is replaced (geoipupdate renames a new one in)."""
    while True:
        await asyncio.sleep(interval)
        try:
            swapped = worker.reload_geoip()
        except GeodnsError as exc:
            log.error("GeoIP: keeping the loaded database: %s", exc)
            continue
        if swapped:
            log.info("GeoIP: reloaded %s (built %s)", db.path, db.build_date.date())


async def _feed_twin(worker: DnsWorker) -> None:
    while True:
        await asyncio.sleep(TWIN_FEED_INTERVAL)
        worker.feed_twin()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _serve_worker(
    config: ServeConfig,
    sockets: SocketSet,
    index: int,
    channel: Channel | None = None,
    control: Control | None = None,
    children: list[WorkerLink] | None = None,
    supervisor: socket.socket | None = None,
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
                supervisor=supervisor,
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
    children: list[WorkerLink] | None = None,
    supervisor: socket.socket | None = None,
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
        # Answer nothing before the control plane's state (a restarted worker is first
        # sent its counts, the zones and scopes if they changed, then the state).
        while True:
            message = await channel.receive()
            await worker.receive(message)
            if message[0] == "state":
                break
        background.append(asyncio.ensure_future(_follow(channel, worker, stop)))
    for link in children or []:
        await link.open()
    stop_adopting = (
        _adopt_workers(supervisor, children or [], worker) if supervisor is not None else None
    )
    worker.addresses = tuple(str(ListenAddress(*s.getsockname()[:2])) for s in sockets.udp)
    if control is not None:
        await control.start(worker, children or [])
    else:
        for link in children or []:
            link.send(("state", config.state))
    # The configuration's objects out of the collector's sight before the first answer: a
    # full collection would otherwise walk them all, now and then, with the loop stopped.
    heap.settle(full=True)
    worker.udp_fds = [sock.fileno() for sock in sockets.udp]
    # Forked before this process answers, with the heap just frozen: the two share it
    # until either replaces its configuration.
    await worker.start_twin()
    transports: list = []
    servers = []
    for sock in sockets.udp:
        protocol = UDPServer(
            worker.answerer.handler(UDP), worker.limiter, udp_size=config.options.udp_size
        )
        worker.udp.append(protocol)
        if pktinfo.enabled(sock):  # a wildcard address: reply from each query's destination
            transport = pktinfo.PktinfoTransport(sock)
            transport.attach(loop, protocol)
        else:
            transport, _ = await loop.create_datagram_endpoint(lambda p=protocol: p, sock=sock)
        transports.append(transport)
    # The first state may have come with a new answerer; the TCP side takes the current one.
    worker.tcp_state.handler = worker.answerer.handler(TCP)
    for sock in sockets.tcp:
        server = await loop.create_server(
            lambda: TCPConnection(worker.tcp_state), sock=sock, backlog=LISTEN_BACKLOG
        )
        servers.append(server)
    if announce:
        workers = f" with {config.workers} workers" if config.workers > 1 else ""
        for udp in sockets.udp:
            host, port = udp.getsockname()[:2]
            log.info("listening on %s (udp, tcp)%s", ListenAddress(host, port), workers)
        # Under systemd (Type=notify): started only now, after the first health round, so
        # that units ordered After=geodns.service start against a server that answers.
        zones = f"{len(worker.zones.zones)} zone{'s' * (len(worker.zones.zones) != 1)}"
        sdnotify.ready(f"answering {zones} on {', '.join(worker.addresses)}")
    if config.geoip is not None:
        background.append(
            asyncio.ensure_future(_watch_geoip(config.geoip, worker, config.geoip_reload_interval))
        )
    if worker.twin is not None:  # a worker without one at start never has one
        background.append(asyncio.ensure_future(_feed_twin(worker)))
    await stop.wait()
    log.info("shutting down")
    if announce:
        sdnotify.stopping()
    if stop_adopting is not None:
        stop_adopting()
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
    for conn in list(worker.tcp_state.connections):
        conn.abort("shutting down with replies unsent")  # a client that is not reading
    if worker.twin is not None:
        worker.twin.close()


async def _follow(channel: Channel, worker: DnsWorker, stop: asyncio.Event) -> None:
    """Apply the control plane's messages; report this worker's counts once a second."""

    async def report() -> None:
        while True:
            await asyncio.sleep(STATS_INTERVAL)
            channel.send(("stats", worker.stats.export()))

    reporter = asyncio.ensure_future(report())
    try:
        while True:
            await worker.receive(await channel.receive())
    except (asyncio.IncompleteReadError, ConnectionError):
        stop.set()  # the control plane is gone: so is the server
    finally:
        reporter.cancel()
