"""A killed DNS worker is started again, with the zones and state the server has now."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.rcode

from tests.conftest import (
    EXAMPLE_ZONES,
    ServerProcess,
    child_pids,
    running_server,
    split_twins,
    wait_for,
)
from tests.e2e.test_reload import add_record


def workers(srv: ServerProcess) -> list[int]:
    """Workers 1..N-1: the children of the supervisor, process 0's child that is not its
    twin."""
    _, (supervisor,) = split_twins(child_pids(srv.proc.pid))
    return child_pids(supervisor)


def answers_from_many_ports(srv: ServerProcess, name: str, n: int = 40) -> list[str]:
    """One query from each of `n` fresh sockets (SO_REUSEPORT spreads their source ports
    over the workers); the answer each got, or "timeout"."""
    query = dns.message.make_query(name, "A")
    seen = []
    for _ in range(n):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(0.3)
            sock.sendto(query.to_wire(), srv.addr)
            try:
                reply = dns.message.from_wire(sock.recv(4096))
            except TimeoutError:
                seen.append("timeout")
                continue
        if reply.rcode() != dns.rcode.NOERROR:
            seen.append(dns.rcode.to_text(reply.rcode()))
        else:
            seen.append(",".join(sorted(r.address for rrset in reply.answer for r in rrset)))
    return seen


@contextlib.contextmanager
def stopped(pid: int) -> Iterator[None]:
    """The process paused (SIGSTOP): only the other workers answer meanwhile."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def test_a_killed_worker_is_restarted_with_the_current_zones(tmp_path: Path) -> None:
    zones = tmp_path / "zones"
    zones.mkdir()
    shutil.copy(EXAMPLE_ZONES / "example.com.yaml", zones / "example.com.yaml")
    with running_server(
        zones, "--workers", "2", "--watch-interval", "0.1", listen=("127.0.0.1:0",)
    ) as srv:
        wait_for(lambda: len(workers(srv)) == 1)
        (old,) = workers(srv)
        # A reload after the start: the zones the new worker must get are not the config's.
        add_record(zones / "example.com.yaml")
        wait_for(lambda: set(answers_from_many_ports(srv, "www2.example.com")) == {"192.0.2.222"})

        os.kill(old, signal.SIGKILL)
        wait_for(lambda: any("restarted" in line for line in srv.lines), timeout=10)
        (new,) = workers(srv)
        assert new != old
        assert any(
            f"DNS worker 1 (pid {old}) was killed by signal 9" in line for line in srv.lines
        ), srv.log()

        # Process 0 paused: what is answered now is answered by the new worker, with the
        # reloaded zones.
        with stopped(srv.proc.pid):
            seen = wait_for(lambda: answers_from_many_ports(srv, "www2.example.com", 20))
            answered = [s for s in seen if s != "timeout"]
        assert answered and set(answered) == {"192.0.2.222"}, seen
        # ... and process 0 still answers too.
        with stopped(new):
            seen = answers_from_many_ports(srv, "www2.example.com", 20)
        assert "192.0.2.222" in seen and "timeout" in seen
        assert set(answers_from_many_ports(srv, "www2.example.com")) == {"192.0.2.222"}

        # A worker that stops as asked is not restarted, and the server stops cleanly.
        srv.proc.send_signal(signal.SIGTERM)
        assert srv.proc.wait(10) == 0
    assert "Traceback" not in srv.log()
