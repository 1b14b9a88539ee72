"""A DNS worker's twin (geodns.server.twin): forked once, told everything the worker
applies, in order; it answers the worker's UDP socket only between the worker's relief()
and end_relief(), from what it was told, and waits at SCHED_IDLE otherwise. A twin that
is gone or silent is let go: that reload forks a stand-in, and a new twin follows.

Nothing here runs a loop protocol on the socket: whatever answers it is the twin (or a
stand-in), a separate process."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.query
import pytest

from geodns.health.state import Health, RegionState
from geodns.server import twin as twin_module
from geodns.server.answer import UDP, Answerer
from geodns.server.run import TWIN_FEED_BATCH, DnsWorker, ServeConfig
from geodns.server.standin import StandIn, can_leave_idle
from geodns.server.twin import Twin
from geodns.zones.loader import load_zones
from tests.conftest import EXAMPLE_ZONES, wait_for
from tests.unit.server.test_standin import ZONE as STAND_IN_ZONE

pytestmark = pytest.mark.skipif(
    not can_leave_idle(), reason="no CAP_SYS_NICE or RLIMIT_NICE 20: no twin, stand-ins only"
)

ZONE = STAND_IN_ZONE.replace("192.0.2.80", "%s")  # www's address to fill in


class Served:
    """A DnsWorker on a bound UDP socket that no loop reads, and its zone file."""

    def __init__(self, tmp_path: Path) -> None:
        self.zones = tmp_path / "zones"
        self.zones.mkdir()
        self.file = self.zones / "example.com.yaml"
        self.file.write_text(ZONE % "192.0.2.80")
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.worker = DnsWorker(ServeConfig(zones=load_zones([self.zones]), listen=[]))
        self.worker.udp_fds = [self.sock.fileno()]

    def ask(self, name: str = "www.example.com", timeout: float = 3.0) -> list[str] | None:
        """The addresses answered, or None if nobody answered within `timeout`."""
        query = dns.message.make_query(name, "A")
        try:
            host, port = self.sock.getsockname()
            reply = dns.query.udp(query, host, port=port, timeout=timeout)
        except dns.exception.Timeout:
            return None
        return sorted(r.address for rrset in reply.answer for r in rrset)

    async def ask_async(self, *args: object) -> list[str] | None:
        # From another thread: the test's loop keeps writing to the twin meanwhile.
        return await asyncio.get_running_loop().run_in_executor(None, self.ask, *args)

    def close(self) -> None:
        if self.worker.twin is not None:
            self.worker.twin.close()
        self.sock.close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    s = Served(tmp_path)
    yield s
    s.close()


def policy(pid: int) -> int:
    return os.sched_getscheduler(pid)


def test_the_twin_answers_only_while_the_worker_is_relieved_from_what_it_was_told(
    served: Served,
) -> None:
    async def body() -> None:
        worker = served.worker
        await worker.start_twin()
        twin = worker.twin
        assert twin is not None
        # Waiting, it takes only spare CPU (it lowers itself first thing after the fork).
        await wait_for_async(lambda: policy(twin.pid) == os.SCHED_IDLE)
        assert await served.ask_async("www.example.com", 0.3) is None  # nobody reads yet

        # New zones, applied by the worker after the fork: the twin builds them from the
        # texts the worker loaded, not from the file, which has changed again since.
        served.file.write_text(ZONE % "192.0.2.81")
        worker.apply_zones(load_zones([served.zones]))
        served.file.write_text(ZONE % "192.0.2.99")

        relief = await worker.relief()
        assert relief is not None and not isinstance(relief, StandIn)
        try:
            assert policy(twin.pid) == os.SCHED_OTHER  # answering, at a fair share
            assert await served.ask_async() == ["192.0.2.81"]
        finally:
            await worker.end_relief(relief)
        assert worker.twin is twin and not twin.gone
        assert policy(twin.pid) == os.SCHED_IDLE
        assert await served.ask_async("www.example.com", 0.3) is None  # quiet again

    asyncio.run(body())


def test_the_twin_answers_from_the_state_the_worker_applied_last(served: Served) -> None:
    served.worker = DnsWorker(ServeConfig(zones=load_zones([EXAMPLE_ZONES]), listen=[]))
    served.worker.udp_fds = [served.sock.fileno()]

    async def body() -> None:
        worker = served.worker
        await worker.start_twin()
        service = "inference.example.com"
        before = _answer(worker.answerer, service)
        first_region = regions_of(worker, service)[0]
        state = worker.answerer.state
        worker.apply_state(state.with_region(service, first_region, RegionState(Health.DOWN)))
        after = _answer(worker.answerer, service)
        assert after != before  # the state moved the answer
        relief = await worker.relief()
        assert relief is not None
        try:
            assert await served.ask_async(service) == after
        finally:
            await worker.end_relief(relief)

    asyncio.run(body())


def regions_of(worker: DnsWorker, service: str) -> list[str]:
    (svc,) = [s for s in worker.zones.services() if s.key == service]
    return [r.name for r in svc.regions]


def _answer(answerer: Answerer, name: str) -> list[str]:
    query = dns.message.make_query(name, "A")
    reply = dns.message.from_wire(answerer.handler(UDP)(query.to_wire(), ("127.0.0.1", 5353)))
    return sorted(r.address for rrset in reply.answer for r in rrset)


def test_a_lost_twin_gives_way_to_a_stand_in_and_a_new_twin(served: Served) -> None:
    async def body() -> None:
        worker = served.worker
        await worker.start_twin()
        lost = worker.twin
        assert lost is not None
        os.kill(lost.pid, signal.SIGKILL)
        started = time.monotonic()
        relief = await worker.relief()
        assert time.monotonic() - started < 2  # its end of the pipe said so at once
        assert isinstance(relief, StandIn)
        try:
            assert await served.ask_async() == ["192.0.2.80"]  # the stand-in answers
        finally:
            await worker.end_relief(relief)
        await wait_for_async(lambda: worker.twin is not None)
        assert worker.twin is not None and worker.twin.pid != lost.pid
        relief = await worker.relief()
        assert relief is not None and not isinstance(relief, StandIn)
        await worker.end_relief(relief)

    asyncio.run(body())


def test_a_twin_silent_for_twin_ready_is_let_go(
    served: Served, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(twin_module, "TWIN_READY", 0.3)

    async def body() -> None:
        worker = served.worker
        await worker.start_twin()
        silent = worker.twin
        assert silent is not None
        os.kill(silent.pid, signal.SIGSTOP)  # busy, as with no spare CPU to catch up on
        with caplog.at_level(logging.WARNING, logger="geodns.server"):
            relief = await worker.relief()
        assert isinstance(relief, StandIn)
        assert "did not answer" in caplog.text
        assert silent.gone
        await worker.end_relief(relief)
        await wait_for_async(lambda: _reaped(silent.pid))

    asyncio.run(body())


def test_the_twin_exits_when_the_worker_lets_it_go(served: Served) -> None:
    async def body() -> int:
        await served.worker.start_twin()
        assert served.worker.twin is not None
        pid = served.worker.twin.pid
        served.worker.twin.close()
        return pid

    pid = asyncio.run(body())
    wait_for(lambda: _reaped(pid))


def test_no_twin_where_a_thread_may_not_leave_sched_idle(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(twin_module, "can_leave_idle", lambda: False)
    reloads_fork_a_stand_in(served)


def reloads_fork_a_stand_in(served: Served) -> None:
    """The worker starts no twin, and its reloads fork a stand-in, as before twins."""

    async def body() -> None:
        await served.worker.start_twin()
        assert served.worker.twin is None
        relief = await served.worker.relief()
        assert isinstance(relief, StandIn)
        await served.worker.end_relief(relief)

    asyncio.run(body())


def test_queries_newly_cached_are_what_a_twin_is_sent_to_warm_its_own_caches() -> None:
    zones = load_zones([EXAMPLE_ZONES])
    worker_side, twin_side = Answerer(zones), Answerer(zones)
    worker_side.fresh = fresh = deque()
    handle = worker_side.handler(UDP)
    wire = dns.message.make_query("www.example.com", "A").to_wire()
    for _ in range(3):
        handle(wire, ("127.0.0.1", 5353))
    assert list(fresh) == [wire[2:]]  # once: the next two were cache hits
    assert twin_side.warm(fresh) == 1
    # Warmed: the twin's first reply for it comes from its cache, and is the same.
    assert twin_side.handler(UDP)(wire, ("127.0.0.1", 5353)) == handle(wire, ("127.0.0.1", 5353))
    assert wire[2:] in twin_side._exact[UDP]


async def wait_for_async(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


def _reaped(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_the_twin_is_named_for_ps(served: Served) -> None:
    async def body() -> Twin | None:
        await served.worker.start_twin()
        return served.worker.twin

    twin = asyncio.run(body())
    assert twin is not None
    # ps, top and the tests tell it from the worker by its name (set right after the fork).
    wait_for(lambda: Path(f"/proc/{twin.pid}/comm").read_text().strip() == twin_module.TWIN_NAME)


def test_no_twin_when_the_operator_says_so(served: Served) -> None:
    # geodns serve --no-twins: memory before reload latency.
    from geodns.cli import build_parser

    args = build_parser().parse_args(["serve", "--no-twins"])
    assert args.twins is False and build_parser().parse_args(["serve"]).twins is True
    served.worker.config.twins = args.twins
    reloads_fork_a_stand_in(served)


def test_a_forked_worker_s_reload_is_answered_by_its_twin(served: Served) -> None:
    # Workers 1..N-1 hear of a reload as ("stand-in", None), then ("zones", ZoneSet).
    async def body() -> None:
        worker = served.worker
        await worker.start_twin()
        twin = worker.twin
        assert twin is not None
        await worker.receive(("stand-in", None))
        assert await served.ask_async() == ["192.0.2.80"]  # the twin, from the old zones
        served.file.write_text(ZONE % "192.0.2.82")
        await worker.receive(("zones", load_zones([served.zones])))
        assert worker.twin is twin and policy(twin.pid) == os.SCHED_IDLE
        assert await served.ask_async("www.example.com", 0.3) is None  # quiet again
        # The next reload's twin answers from the zones the last one applied.
        await worker.receive(("stand-in", None))
        assert await served.ask_async() == ["192.0.2.82"]
        await worker.receive(("zones", load_zones([served.zones])))

    asyncio.run(body())


def test_a_twin_that_reads_nothing_is_fed_no_further_than_the_backlog(served: Served) -> None:
    # A saturated core gives the twin no CPU to read with: what would only warm its caches
    # must not pile up in the worker's memory.
    async def body() -> None:
        worker = served.worker
        await worker.start_twin()
        twin = worker.twin
        assert twin is not None and worker.answerer.fresh is not None
        os.kill(twin.pid, signal.SIGSTOP)
        tail = dns.message.make_query("www.example.com", "A").to_wire()[2:]
        sent = []
        batch = TWIN_FEED_BATCH
        for n in range(200):  # distinct bytes: pickle writes a repeated object once
            worker.answerer.fresh.extend(tail + (n * batch + i).to_bytes(4) for i in range(batch))
            worker.feed_twin()
            await asyncio.sleep(0)
            sent.append(twin._channel.unsent())
        assert twin.behind()
        assert twin_module.FEED_BACKLOG <= max(sent) < 2 * twin_module.FEED_BACKLOG
        twin.close()

    asyncio.run(body())


def test_a_connection_the_worker_closes_is_closed_though_its_twin_was_forked_with_it(
    served: Served,
) -> None:
    # The store's and the health checks' connections, open when the twin is forked.
    listener = socket.create_server(("127.0.0.1", 0))
    held = socket.create_connection(listener.getsockname())
    peer, _ = listener.accept()
    peer.settimeout(3)

    async def body() -> int:
        await served.worker.start_twin()
        twin = served.worker.twin
        assert twin is not None
        number = held.fileno()
        await wait_for_async(lambda: os.readlink(f"/proc/{twin.pid}/fd/{number}") == os.devnull)
        # ... and the sockets it answers on are still its own.
        assert os.readlink(f"/proc/{twin.pid}/fd/{served.sock.fileno()}").startswith("socket:")
        return number

    try:
        asyncio.run(body())
        held.close()
        assert peer.recv(1) == b""  # the FIN came: no copy of the socket is left open
    finally:
        for s in (held, peer, listener):
            s.close()
