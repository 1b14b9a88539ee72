"""A DNS worker's twin: a copy of it that stays current and answers while it reloads.

A stand-in forked at each reload (geodns.server.standin) cost a burst of late replies at
every reload: in the fork itself the worker copies the page tables of its heap and nobody
answers (3-7 ms for a server of 100 MB), and then both processes take copy-on-write faults
on the pages they share. So each worker forks one copy of itself when it starts, before it
answers, and keeps it: the twin. It is told everything the worker applies (the zones, the
state, the merged scopes, a new GeoIP file), in order, over a channel, and applies it
itself at the lowest CPU priority (SCHED_IDLE), taking only the CPU the worker leaves. A
new configuration costs it what it costs the worker (0.25 s for a zone of 10,000 records),
just after the worker swapped it in: the worker sends the texts the zones were loaded from
(ZoneTexts), not the zones, whose pickling would cost it 0.12 s. Every half second it is
also sent the queries the worker newly cached, and answers them into its own caches: a
twin that had answered nothing yet took 45 us for each name's first query, which made a
20 ms pile-up at the first reload of a 10,000-name zone.

At a reload the worker asks its twin to answer ("answer", sent after everything before it,
so the twin is current) and waits for it on its loop, still answering; the twin goes back
to normal priority, says so on a pipe, and reads the UDP sockets beside the worker. The
reload then runs as beside a stand-in (a Relief: the work at SCHED_IDLE, the loop's thread
waiting at SCHED_IDLE too). At its end, the loop first runs for CATCH_UP (still at the
lowest priority) what the reload held up, then writes a byte to the twin's "quiet" pipe:
the twin finishes the datagram in hand, returns to SCHED_IDLE, says so, and only then
catches up with what the worker told it meanwhile. No fork, and no page shared by the two
once either has replaced the configuration it was forked with.

The price is memory: a second copy of each worker's configuration and caches (the GeoIP
file is mapped by both from the same file). Where a thread may not leave SCHED_IDLE again
(no CAP_SYS_NICE and no RLIMIT_NICE 20) there is no twin: its catching up would compete
with the worker at normal priority, so reloads fork a stand-in as before. A twin that is
gone, or silent for TWIN_READY (still catching up, with no spare CPU to do it), is let go:
that reload forks a stand-in, and a new twin is forked after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import select
import signal
import socket
import stat
import time
from typing import TYPE_CHECKING, Any

from geodns.lifetime import name_process
from geodns.server import heap
from geodns.server.answer import UDP
from geodns.server.channel import Channel, read_message_blocking
from geodns.server.standin import (
    PATIENCE,
    STAND_IN_STOP,
    Relief,
    answer_until,
    can_leave_idle,
    forked_copy,
    idle_priority,
    normal_priority,
    reap_later,
    udp_protocols,
)
from geodns.zones.loader import load_zone_texts

if TYPE_CHECKING:
    from geodns.server.run import DnsWorker

log = logging.getLogger("geodns.server")

TWIN_NAME = "geodns-twin"  # its name in ps -o comm, top and /proc/PID/comm
TWIN_READY = PATIENCE  # seconds a reload waits for the twin to answer before it forks instead
# Seconds the twin stays off the CPU after it stops answering. The worker's loop thread has
# just come back from SCHED_IDLE, where EEVDF weighs a thread's runtime 341 times (weight 3
# against 1024): it returns with the negative lag that earned, and while another task is
# runnable on the core (this twin, building the new zones at the lowest priority) the
# scheduler held it back for a few ms: 2-5 ms of late replies right after every reload.
# Alone on the core for a moment, it sleeps between datagrams with its lag back to zero.
STEP_ASIDE = 0.05
FEED_BACKLOG = 1 << 20  # bytes unread by the twin past which no queries are sent to warm it
_ANSWERING = b"a"
_QUIET = b"q"


class Twin:
    """The worker's end of its twin: the channel it tells the twin on, the pipe that
    quiets it and the pipe it hears back on."""

    def __init__(self, pid: int, channel: Channel, quiet_fd: int, ack_fd: int) -> None:
        self.pid = pid
        self._channel = channel
        self._quiet_fd = quiet_fd
        self._ack_fd = ack_fd
        self.gone = False

    @classmethod
    async def start(cls, worker: DnsWorker) -> Twin | None:
        """Fork the worker's twin; None where there is none to have (see the module's
        docstring) or the fork failed."""
        if not worker.udp_fds or not can_leave_idle():
            return None
        ours, theirs = socket.socketpair()
        quiet_r, quiet_w = os.pipe()
        ack_r, ack_w = os.pipe()
        parent = os.getpid()
        gc.freeze()  # as for a stand-in: no collection walks (and copies) the shared heap
        try:
            pid = os.fork()
        except OSError as exc:
            for end in (ours, theirs):
                end.close()
            for fd in (quiet_r, quiet_w, ack_r, ack_w):
                os.close(fd)
            log.warning("no twin to answer during reloads (%s): each forks a stand-in", exc)
            return None
        if pid == 0:
            code = 1
            try:
                ours.close()
                os.close(quiet_w)
                os.close(ack_r)
                forked_copy(parent)
                name_process(TWIN_NAME)
                # The worker logs what matters; the same lines twice would only confuse.
                logging.disable(logging.CRITICAL)
                _let_go_of_inherited({0, 1, 2, *worker.udp_fds, theirs.fileno(), quiet_r, ack_w})
                _twin(worker, theirs, quiet_r, ack_w)
                code = 0
            finally:
                os._exit(code)
        theirs.close()
        os.close(quiet_r)
        os.close(ack_w)
        channel = Channel(ours)
        await channel.open()
        log.debug("DNS worker's twin started (pid %d)", pid)
        return cls(pid, channel, quiet_w, ack_r)

    def send(self, message: tuple[str, Any]) -> None:
        """Something the worker applied, for the twin to apply in the same order."""
        if not self.gone:
            self._channel.send(message)

    def behind(self) -> bool:
        """Whether the twin has not read what it was sent (FEED_BACKLOG bytes or more): a
        saturated core leaves it no CPU to read with, and what only warms it can wait."""
        return self._channel.unsent() >= FEED_BACKLOG

    async def relieve(self) -> Relief | None:
        """Have the twin answer beside the loop; once it does, the Relief that the reload
        runs under. None if it is gone or silent for TWIN_READY: it is let go then."""
        if self.gone:
            return None
        self.send(("answer", None))
        loop = asyncio.get_running_loop()
        heard: asyncio.Future[bytes] = loop.create_future()

        def readable() -> None:
            try:
                data = os.read(self._ack_fd, 1)
            except OSError:
                data = b""
            if not heard.done():
                heard.set_result(data)

        loop.add_reader(self._ack_fd, readable)
        try:
            said: bytes | None = await asyncio.wait_for(heard, TWIN_READY)
        except TimeoutError:
            said = None
        finally:
            loop.remove_reader(self._ack_fd)
        if said != _ANSWERING:
            why = f"did not answer within {TWIN_READY:g} s" if said is None else "is gone"
            log.warning(
                "reload: the DNS worker's twin (pid %d) %s: a stand-in is forked instead, "
                "and a new twin after the reload",
                self.pid,
                why,
            )
            self.close()
            return None
        return _TwinRelief(self)

    def quiet(self) -> None:
        """Have the twin stop reading; return once it says it has (STAND_IN_STOP at most:
        then it is let go)."""
        try:
            os.write(self._quiet_fd, _QUIET)
            ready, _, _ = select.select([self._ack_fd], [], [], STAND_IN_STOP)
            said = os.read(self._ack_fd, 1) if ready else b""
        except OSError:
            said = b""
        if said != _QUIET:
            log.warning("reload: the twin did not stop answering: a new one is forked")
            self.close()

    def close(self) -> None:
        """Let the twin go: it exits at the end of its channel; killed, it is reaped."""
        if self.gone:
            return
        self.gone = True
        with contextlib.suppress(RuntimeError):  # its loop closed already: the socket is
            self._channel.close()
        self._channel.sock.close()
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        for fd in (self._quiet_fd, self._ack_fd):
            with contextlib.suppress(OSError):
                os.close(fd)
        reap_later(self.pid)


class _TwinRelief(Relief):
    """A reload under the twin's answering: the work at the lowest priority, as beside a
    stand-in; letting go is quieting the twin, which stays."""

    def __init__(self, twin: Twin) -> None:
        super().__init__()
        self._twin = twin
        self._lower_caller()

    def _let_go(self) -> None:
        self._twin.quiet()


def _let_go_of_inherited(keep: set[int]) -> None:
    """Let go of the worker's other sockets and pipes: the TCP and admin listeners, the
    store's and the health checks' connections, the other workers' channels, a child's
    pipes. A twin lives as long as its worker: holding them, it would keep open each
    connection the worker closes (no FIN, the peer's side left half open) and each pipe.
    Each number is pointed at /dev/null rather than closed, so that nothing in the copied
    heap that still names it can close a number this process opens again later."""
    try:
        numbers = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:  # no /proc: keep them, as a stand-in does for its short life
        return
    null = os.open(os.devnull, os.O_RDWR)
    try:
        for fd in numbers:
            if fd in keep or fd == null:
                continue
            try:
                mode = os.fstat(fd).st_mode
            except OSError:  # the directory listing's own, closed since
                continue
            if stat.S_ISSOCK(mode) or stat.S_ISFIFO(mode):
                os.dup2(null, fd)
    finally:
        os.close(null)


def _twin(worker: DnsWorker, channel: socket.socket, quiet_fd: int, ack_fd: int) -> None:
    """The twin's life: apply what the worker sends, at SCHED_IDLE; answer when told,
    at normal priority, until the quiet pipe has a byte."""
    worker.forget_twin()
    idle_priority()
    receivers, protocols = udp_protocols(worker.answerer.handler(UDP), worker)
    while True:
        message = read_message_blocking(channel)
        if message is None:  # the worker is gone, or let this twin go
            return
        kind, value = message
        if kind == "answer":
            handler = worker.answerer.handler(UDP)
            for protocol in protocols.values():
                protocol.set_handler(handler)
            normal_priority()
            os.write(ack_fd, _ANSWERING)
            answer_until(quiet_fd, receivers, protocols)
            os.read(quiet_fd, 1)
            idle_priority()
            os.write(ack_fd, _QUIET)
            time.sleep(STEP_ASIDE)
        elif kind == "zone-texts":
            worker.apply_zones(load_zone_texts(value))
            heap.settle()
        elif kind == "zones":
            worker.apply_zones(value)
            heap.settle()
        elif kind == "warm":
            worker.answerer.warm(value)
        elif kind == "geoip":
            worker.reload_geoip()
        else:
            worker.apply(message)
