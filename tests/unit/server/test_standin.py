"""A reload's work runs at the lowest priority while the stand-in answers (StandIn.run):
in another thread, at SCHED_IDLE, with its result or its error handed back; the stand-in,
a forked copy, answers the worker's UDP socket meanwhile; a reload that gets no CPU for
PATIENCE seconds lets the stand-in go and finishes at a fair share. A process that could
not bring the thread back from SCHED_IDLE runs the work directly instead."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import dns.message
import dns.query
import pytest

from geodns.errors import ConfigError, ConfigErrors
from geodns.server import standin
from geodns.server.answer import Answerer, ServerOptions
from geodns.server.sockets import ListenAddress, bind_all
from geodns.server.standin import StandIn, can_leave_idle
from geodns.zones.loader import load_zones

ZONE = """\
zone: example.com
soa: {mname: ns1.example.com., rname: hostmaster.example.com.}
ns: [ns1.example.com.]
records:
  ns1: {A: 192.0.2.53}
  www: {A: 192.0.2.80}
"""


@pytest.fixture
def worker(tmp_path: Path):
    """What StandIn.start reads of a DnsWorker: its Answerer and its UDP sockets."""
    path = tmp_path / "example.com.yaml"
    path.write_text(ZONE)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    options = ServerOptions()
    yield SimpleNamespace(
        answerer=Answerer(load_zones([path]), options),
        udp_fds=[sock.fileno()],
        limiter=None,
        config=SimpleNamespace(options=options),
        address=sock.getsockname(),
    )
    sock.close()


@pytest.fixture
def wildcard_worker(tmp_path: Path):
    """A worker whose UDP socket is bound to 0.0.0.0, as the server binds it."""
    path = tmp_path / "example.com.yaml"
    path.write_text(ZONE)
    (sockets,) = bind_all([ListenAddress("0.0.0.0", 0)], 1)
    options = ServerOptions()
    yield SimpleNamespace(
        answerer=Answerer(load_zones([path]), options),
        udp_fds=[sockets.udp[0].fileno()],
        limiter=None,
        config=SimpleNamespace(options=options),
        port=sockets.udp[0].getsockname()[1],
    )
    sockets.close()


def _gone(pid: int, within: float = 5.0) -> bool:
    """Whether the process has exited and been reaped (StandIn reaps in the background)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.01)
    return False


needs_idle = pytest.mark.skipif(
    not can_leave_idle(), reason="no CAP_SYS_NICE or RLIMIT_NICE 20: reloads run directly"
)


@needs_idle
def test_the_work_runs_in_another_thread_at_the_lowest_priority(worker) -> None:
    stand_in = StandIn.start(worker)
    try:
        seen = stand_in.run(
            lambda: (threading.get_ident(), os.sched_getscheduler(0)),
        )
    finally:
        stand_in.stop()
    ident, policy = seen
    assert ident != threading.get_ident()
    assert policy == os.SCHED_IDLE
    assert os.sched_getscheduler(0) == os.SCHED_OTHER  # the caller's, back to a fair share
    assert _gone(stand_in.pid)


@needs_idle
def test_the_callers_thread_waits_at_the_lowest_priority_while_the_stand_in_answers(
    worker,
) -> None:
    # The loop's thread does light steps of a reload itself and frees the old
    # configuration: at normal priority that made the answering copy wait a time slice.
    stand_in = StandIn.start(worker)
    try:
        during = os.sched_getscheduler(0)
    finally:
        stand_in.stop()
    assert during == os.SCHED_IDLE
    assert os.sched_getscheduler(0) == os.SCHED_OTHER


@needs_idle
def test_a_caller_with_no_spare_cpu_is_given_a_fair_share_after_patience(
    worker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(standin, "PATIENCE", 0.2)
    stand_in = StandIn.start(worker)
    try:
        assert os.sched_getscheduler(0) == os.SCHED_IDLE
        deadline = time.monotonic() + 5
        while os.sched_getscheduler(0) != os.SCHED_OTHER and time.monotonic() < deadline:
            time.sleep(0.02)
        assert os.sched_getscheduler(0) == os.SCHED_OTHER
        os.kill(stand_in.pid, 0)  # the copy still answers meanwhile
    finally:
        stand_in.stop()


def test_an_error_in_the_work_reaches_the_caller(worker) -> None:
    def broken() -> None:
        raise ConfigErrors([ConfigError("zone.yaml", 3, "records: not a mapping")])

    stand_in = StandIn.start(worker)
    try:
        with pytest.raises(ConfigErrors) as caught:
            stand_in.run(broken)
    finally:
        stand_in.stop()
    assert "records: not a mapping" in str(caught.value.errors[0])


def test_the_stand_in_answers_while_the_work_runs(worker) -> None:
    def ask() -> dns.message.Message:
        query = dns.message.make_query("www.example.com", "A")
        return dns.query.udp(query, worker.address[0], port=worker.address[1], timeout=3)

    stand_in = StandIn.start(worker)
    try:
        # The work itself asks: the caller's thread (the loop's) is blocked meanwhile, so
        # only the forked copy can answer.
        reply = stand_in.run(ask)
        os.kill(stand_in.pid, 0)  # still there: the reply came from it
    finally:
        stand_in.stop()
    assert [str(r) for rrset in reply.answer for r in rrset] == ["192.0.2.80"]


@needs_idle
def test_a_reload_without_spare_cpu_lets_the_stand_in_go(
    worker, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(standin, "PATIENCE", 0.2)
    stand_in = StandIn.start(worker)

    def long_work() -> int:
        deadline = time.monotonic() + 0.6
        while time.monotonic() < deadline:
            time.sleep(0.01)
        return os.sched_getscheduler(0)

    with caplog.at_level(logging.WARNING, logger="geodns.server"):
        # Given back a fair share once the stand-in was let go.
        assert stand_in.run(long_work) == os.SCHED_OTHER
    # Let go before the work ended: the next steps of the reload run directly.
    assert _gone(stand_in.pid)
    assert "no spare CPU" in caplog.text
    assert stand_in.run(lambda: threading.get_ident()) == threading.get_ident()
    stand_in.stop()  # once gone, stopping again is harmless


def test_where_the_thread_could_not_leave_sched_idle_the_work_runs_directly(
    worker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(standin, "can_leave_idle", lambda: False)
    stand_in = StandIn.start(worker)
    try:
        seen = stand_in.run(lambda: (threading.get_ident(), os.sched_getscheduler(0)))
    finally:
        stand_in.stop()
    assert seen == (threading.get_ident(), os.SCHED_OTHER)
    assert _gone(stand_in.pid)


def test_on_a_wildcard_address_the_stand_in_replies_from_the_address_asked(
    wildcard_worker,
) -> None:
    def ask(host: str) -> dns.message.Message:
        # Connected: the kernel drops a reply from any other address, as a resolver does.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(3)
            sock.connect((host, wildcard_worker.port))
            sock.send(dns.message.make_query("www.example.com", "A").to_wire())
            return dns.message.from_wire(sock.recv(65535))

    stand_in = StandIn.start(wildcard_worker)
    try:
        # Asked from the work: the caller's thread is blocked, so the copy answers.
        replies = stand_in.run(lambda: [ask("127.0.0.2"), ask("127.0.0.3")])
        os.kill(stand_in.pid, 0)
    finally:
        stand_in.stop()
    assert [[str(r) for rrset in m.answer for r in rrset] for m in replies] == [
        ["192.0.2.80"],
        ["192.0.2.80"],
    ]
