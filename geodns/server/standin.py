"""What answers while a DNS worker reloads (a Relief), and the priority the reload runs at.

A reload's work (reading and building the zones, the new Answerer and its warming, a full
collection) blocks the worker's loop for about half a second of CPU. Meanwhile another
copy of the worker answers the UDP sockets from the old zones: its twin (geodns.server.twin,
forked when the worker started), or, without one, a StandIn forked for the reload. The two share
the server's core, so the work runs in a thread at the lowest scheduling priority
(`SCHED_IDLE`) while the loop's thread waits for it: the kernel gives the work only the
time the stand-in leaves, and a stand-in woken by a datagram takes the core from it at
once. Neither a nice value nor a plain thread does that: EEVDF lets a running task of any
nice value finish its slice (about 3 ms) before a woken one runs, which put a few ms on
every query answered during a reload, and the loop's thread competing for the GIL would
add the 5 ms switch interval.

The loop's own thread runs at SCHED_IDLE too while the stand-in answers: between the
heavy steps it does lighter ones itself (the health monitor's new regions, publishing the
state) and frees the replaced configuration by reference counting (8-10 ms of CPU for a
zone of 10,000 records), which at normal priority made the stand-in wait for the end of
its time slice: replies of 1-7 ms in bursts near the end of each reload.

A thread at SCHED_IDLE runs only on spare CPU, and the loop waits for it: so it is used
only where the process may bring it back to a fair share (CAP_SYS_NICE, or RLIMIT_NICE
20: systemd's LimitNICE=+0), which it does when the reload found no spare CPU for PATIENCE
seconds (the stand-in saturated, or other programs holding every core), after letting the
stand-in go. Elsewhere the work runs on the loop's thread at normal priority, as before.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import logging
import os
import select
import signal
import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from geodns.lifetime import die_with_parent
from geodns.server import heap, pktinfo
from geodns.server.answer import UDP
from geodns.server.udp import Handler, UDPServer

if TYPE_CHECKING:
    from geodns.server.run import DnsWorker

log = logging.getLogger("geodns.server")

STAND_IN_STOP = 2.0  # seconds for a stand-in to finish its datagram before it is killed
PATIENCE = 3.0  # seconds a reload waits for spare CPU before it takes the core

T = TypeVar("T")


def run_now(work: Callable[[], T]) -> T:
    """Run a reload's work where no stand-in answers: on the caller's thread."""
    return work()


class _SocketTransport:
    """What UDPServer sends through, in a stand-in on a specific address: the socket
    itself, no loop (a wildcard address's is pktinfo.PktinfoTransport)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def sendto(self, data: bytes, addr: tuple) -> None:
        with contextlib.suppress(OSError):  # a full buffer drops the reply, as a loop does
            self.sock.sendto(data, addr)


class Relief:
    """Another process answering a DNS worker's UDP sockets while the worker's loop is busy
    with a reload (a forked StandIn, or the worker's twin, geodns.server.twin), and the
    priority the reload's work runs at meanwhile: `run` the work, then `stop`."""

    def __init__(self) -> None:
        self._patient_until = time.monotonic() + PATIENCE
        self._gone = False
        # The caller's (the loop's) thread, at SCHED_IDLE while the copy answers, and what
        # brings it back to a fair share if the reload finds no spare CPU for PATIENCE.
        self._lowered: int | None = None
        self._watchdog: threading.Timer | None = None

    def _lower_caller(self) -> None:
        """The caller's thread to SCHED_IDLE until the copy stops reading (_release)."""
        if not can_leave_idle():
            return
        tid = threading.get_native_id()
        try:
            os.sched_setscheduler(tid, os.SCHED_IDLE, os.sched_param(0))
        except OSError:
            return
        self._lowered = tid
        self._watchdog = threading.Timer(PATIENCE, _normal_priority_of, args=(tid,))
        self._watchdog.daemon = True
        self._watchdog.start()

    def run(self, work: Callable[[], T]) -> T:
        """Run a reload's work at the lowest priority while the copy answers; the caller's
        thread (the loop's) waits for it, so nothing else competes for the GIL. Past
        PATIENCE since the start, the copy is let go and the work has the core."""
        if self._gone or not can_leave_idle():
            return work()
        outcome: list = []
        native: list[int] = []
        boosted = threading.Event()

        def body() -> None:
            native.append(threading.get_native_id())
            idle_priority()
            if boosted.is_set():  # let go before it got here: the boost below missed it
                normal_priority()
            try:
                outcome.append((True, work()))
            except BaseException as exc:  # handed to the caller, as a direct call would
                outcome.append((False, exc))

        thread = threading.Thread(target=body, name="geodns-reload", daemon=True)
        thread.start()
        thread.join(max(0.0, self._patient_until - time.monotonic()))
        if thread.is_alive():
            log.warning(
                "reload: no spare CPU beside the copy answering for %.0f s: it stops, and the "
                "reload blocks answering until it is done",
                PATIENCE,
            )
            self._release()
            # Back to a fair share: other programs may be what holds the CPU, and the
            # loop waits for this work.
            boosted.set()
            with contextlib.suppress(OSError, IndexError):  # IndexError: not begun yet
                os.sched_setscheduler(native[0], os.SCHED_OTHER, os.sched_param(0))
            thread.join()
        ok, value = outcome[0]
        if not ok:
            raise value
        return value

    def stop(self) -> None:
        """settle(), then release(): where the caller has no loop to let run in between."""
        self.settle()
        self.release()

    def settle(self) -> None:
        """While the copy still answers, freeze the new configuration's objects
        (geodns.server.heap): a full collection would otherwise walk them (60-100 ms for a
        zone of 10,000 records) a moment after the worker's loop took the sockets back.
        Once in a while (the frozen heap grown by a quarter) a full collection runs there
        first, which frees what reference cycles were garbage when the heap was frozen."""
        self.run(heap.settle)

    def release(self) -> None:
        """Let the copy finish the datagram in hand and stop reading; return once it has.
        The loop's thread is back at a fair share then: the loop answers again."""
        self._release()

    def _release(self) -> None:
        if self._gone:
            return
        self._gone = True
        try:
            self._let_go()
        finally:
            if self._watchdog is not None:
                self._watchdog.cancel()
            if self._lowered is not None:
                _normal_priority_of(self._lowered)  # the loop answers again

    def _let_go(self) -> None:
        """Tell the copy to stop reading; return once it reads no more."""
        raise NotImplementedError


class StandIn(Relief):
    """A forked copy of a DNS worker that answers its UDP sockets while the worker's
    loop is busy with a reload, as NSD's old server process answers while a new one
    loads. The copy shares the sockets, so whichever process reads a datagram answers
    it: while the worker is blocked, the copy reads them all, from the zones it was
    forked with (nothing is half applied). It runs no event loop (a fork must not use
    the parent's), only select() and the Answerer's handler, and exits when the worker
    closes its end of a pipe. TCP connections wait in the listen queue meanwhile, and
    what the copy answers is not counted in the worker's figures. A worker with a twin
    (geodns.server.twin) forks one only when its twin is lost."""

    def __init__(self, pid: int, stop_fd: int, done_fd: int) -> None:
        super().__init__()
        self.pid = pid
        self._stop_fd = stop_fd
        self._done_fd = done_fd

    @classmethod
    def start(cls, worker: DnsWorker) -> StandIn:
        handler = worker.answerer.handler(UDP)
        stop_r, stop_w = os.pipe()
        done_r, done_w = os.pipe()
        parent = os.getpid()
        # Everything since the last freeze out of the collector's sight too (see
        # geodns.server.heap): a full collection in either process would walk (and write
        # to) every object, copying every page the two share, for nothing; the first
        # reload stalled about 1 s on it.
        gc.freeze()
        try:
            pid = os.fork()
        except OSError:
            for fd in (stop_r, stop_w, done_r, done_w):
                os.close(fd)
            raise
        if pid == 0:
            code = 1
            try:
                os.close(stop_w)
                os.close(done_r)
                forked_copy(parent)
                answer_until(stop_r, *udp_protocols(handler, worker))
                code = 0
            finally:
                # Done reading: the worker may take the sockets back now, without waiting
                # for this copy to tear down its address space (5-10 ms for a server's
                # heap, time in which nobody would answer), which it does last in line.
                idle_priority()
                with contextlib.suppress(OSError):
                    os.write(done_w, b".")
                os._exit(code)
        os.close(stop_r)
        os.close(done_w)
        stand_in = cls(pid, stop_w, done_r)
        stand_in._lower_caller()
        return stand_in

    def _let_go(self) -> None:
        """Stop the copy and wait until it reads no more; it is reaped in the background."""
        os.close(self._stop_fd)
        try:
            # Its byte, or the pipe's end when it died: either way it reads no more.
            done, _, _ = select.select([self._done_fd], [], [], STAND_IN_STOP)
            if not done:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
        finally:
            os.close(self._done_fd)
        reap_later(self.pid)


def forked_copy(parent: int) -> None:
    """What a forked copy of a worker (a stand-in, a twin) sets up first: the default
    action for SIGTERM and SIGINT, SIGHUP ignored, no wakeup fd, death with the worker."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.set_wakeup_fd(-1)  # the parent loop's: not ours to write to
    die_with_parent(parent)


def reap_later(pid: int) -> None:
    """Wait for a child that was told to exit, in a thread: the loop does not wait."""
    threading.Thread(target=_reap, args=(pid,), name="geodns-reap", daemon=True).start()


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def idle_priority() -> None:
    """SCHED_IDLE for the calling thread (or, where refused, the highest nice value)."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        with contextlib.suppress(AttributeError, OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)


def normal_priority() -> None:
    _normal_priority_of(0)


def _normal_priority_of(tid: int) -> None:
    """SCHED_OTHER for the thread `tid` (0: the calling thread)."""
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setscheduler(tid, os.SCHED_OTHER, os.sched_param(0))


@functools.cache
def can_leave_idle() -> bool:
    """Whether a thread of this process may go from SCHED_IDLE back to SCHED_OTHER: with
    CAP_SYS_NICE, or RLIMIT_NICE at 20 (systemd's LimitNICE=+0). Without it, a reload's
    work at the lowest priority could be starved for as long as other programs keep every
    core busy, with the loop waiting for it; such a process reloads at normal priority."""
    allowed: list[bool] = []

    def probe() -> None:
        try:
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
        except (AttributeError, OSError):
            allowed.append(False)
        else:
            allowed.append(True)

    thread = threading.Thread(target=probe, name="geodns-priority-probe", daemon=True)
    thread.start()
    thread.join()
    if not allowed[0]:
        log.info(
            "reloads run at normal priority beside their stand-in: a thread may not return "
            "from SCHED_IDLE here (give CAP_SYS_NICE, or LimitNICE=+0 in systemd; docs/reload.md)"
        )
    return allowed[0]


Receivers = dict[int, Callable[[], tuple[bytes, tuple]]]


def udp_protocols(handler: Handler, worker: DnsWorker) -> tuple[Receivers, dict[int, UDPServer]]:
    """In a forked copy: a protocol for each of the worker's UDP sockets, answering with
    `handler`, and what reads each socket, by file descriptor."""
    protocols: dict[int, UDPServer] = {}
    receivers: Receivers = {}
    for fd in worker.udp_fds:
        sock = socket.socket(fileno=os.dup(fd))
        sock.setblocking(False)
        protocol = UDPServer(handler, worker.limiter, udp_size=worker.config.options.udp_size)
        if pktinfo.enabled(sock):  # a wildcard address: reply from each query's destination
            transport = pktinfo.PktinfoTransport(sock)
            receivers[sock.fileno()] = transport.receive
            protocol.connection_made(transport)  # type: ignore[arg-type]
        else:
            receivers[sock.fileno()] = functools.partial(sock.recvfrom, 65535)
            protocol.connection_made(_SocketTransport(sock))  # type: ignore[arg-type]
        protocols[sock.fileno()] = protocol
    return receivers, protocols


def answer_until(stop_fd: int, receivers: Receivers, protocols: dict[int, UDPServer]) -> None:
    """Answer the sockets until `stop_fd` is readable (what is there is left to read)."""
    while True:
        ready, _, _ = select.select([stop_fd, *receivers], [], [])
        if stop_fd in ready:
            return
        for fd in ready:
            receive, protocol = receivers[fd], protocols[fd]
            for _ in range(64):  # then look at the stop pipe again
                try:
                    data, addr = receive()
                except OSError:  # BlockingIOError: none left
                    break
                # The loop's protocol would log a failure; a copy drops that datagram.
                with contextlib.suppress(Exception):
                    protocol.datagram_received(data, addr)
