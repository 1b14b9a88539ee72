"""The server as a process: TCP limits, workers, signals, listen addresses."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time

import dns.message
import dns.query
import dns.rcode
import pytest

from tests.conftest import EXAMPLE_ZONES, ROOT, child_pids, running_server, split_twins, wait_for
from tests.e2e.test_malformed import frame, recv_frame, valid_query


def closed_by_peer(sock: socket.socket, timeout: float) -> bool:
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except (TimeoutError, ConnectionResetError):
        return False


def test_idle_tcp_connections_are_closed() -> None:
    with running_server(EXAMPLE_ZONES, "--tcp-idle-timeout", "0.5") as srv:
        with socket.create_connection(srv.addr) as idle:
            started = time.monotonic()
            assert closed_by_peer(idle, timeout=5)
            assert time.monotonic() - started >= 0.4
        # A stalled half-sent query is idle too.
        with socket.create_connection(srv.addr) as stalled:
            stalled.sendall(frame(valid_query(1))[:4])
            assert closed_by_peer(stalled, timeout=5)
        # Activity keeps a connection open past the timeout.
        with socket.create_connection(srv.addr) as busy:
            for i in range(4):
                busy.sendall(frame(valid_query(i)))
                assert dns.message.from_wire(recv_frame(busy)).id == i
                time.sleep(0.25)


def test_tcp_connection_cap_closes_the_longest_idle_connection() -> None:
    with running_server(EXAMPLE_ZONES, "--tcp-max-connections", "2") as srv:
        first = socket.create_connection(srv.addr)
        second = socket.create_connection(srv.addr)
        try:
            for sock in (first, second):  # both accepted and answering
                sock.sendall(frame(valid_query(5)))
                assert dns.message.from_wire(recv_frame(sock)).id == 5
            second.sendall(frame(valid_query(6)))  # second is now the more recently useful
            assert dns.message.from_wire(recv_frame(second)).id == 6
            # At the cap, a new connection is served and the longest-idle one makes room.
            with socket.create_connection(srv.addr) as third:
                third.sendall(frame(valid_query(7)))
                assert dns.message.from_wire(recv_frame(third)).id == 7
                assert closed_by_peer(first, timeout=5)
                second.sendall(frame(valid_query(8)))
                assert dns.message.from_wire(recv_frame(second)).id == 8
            # UDP is not affected by the TCP cap.
            reply = srv.udp(dns.message.make_query("www.example.com", "A"))
            assert reply.rcode() == dns.rcode.NOERROR
        finally:
            first.close()
            second.close()
        assert sum("TCP connection cap (2) reached" in line for line in srv.lines) == 1


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signals_stop_the_server_cleanly(sig: signal.Signals) -> None:
    with running_server(EXAMPLE_ZONES) as srv:
        srv.proc.send_signal(sig)
        assert srv.proc.wait(10) == 0
        wait_for(lambda: any("shutting down" in line for line in srv.lines))
        assert "Traceback" not in srv.log()


def test_two_workers_share_the_port() -> None:
    with running_server(EXAMPLE_ZONES, "--workers", "2", listen=("127.0.0.1:0",)) as srv:
        # Distinct source ports spread over both workers (SO_REUSEPORT hashes the 4-tuple).
        for i in range(40):
            reply = srv.udp(dns.message.make_query(f"www{i % 3}.example.com", "A"))
            assert reply.rcode() in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN)
        assert srv.tcp(dns.message.make_query("www.example.com", "A")).answer
        # The parent serves as worker 0; its children: its twin, and the supervisor of
        # worker 1, whose only child has a twin of its own.
        twins, others = split_twins(child_pids(srv.proc.pid))
        assert len(twins) == 1 and len(others) == 1
        (worker,) = child_pids(others[0])
        assert split_twins(child_pids(worker)) == ([child_pids(worker)[0]], [])
        srv.proc.send_signal(signal.SIGTERM)
        assert srv.proc.wait(10) == 0
        wait_for(lambda: not child_pids(srv.proc.pid))


def test_busy_port_is_a_clear_error() -> None:
    with running_server(EXAMPLE_ZONES, listen=("127.0.0.1:0",)) as srv:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "geodns",
                "serve",
                "--http",
                "off",
                "--listen",
                f"127.0.0.1:{srv.port}",
            ],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=20,
        )
    assert result.returncode == 2
    assert "cannot listen" in result.stderr and "Address already in use" in result.stderr


@pytest.mark.parametrize("bad", ["localhost:53", "127.0.0.1:99999", "[::1:53", "1.2.3.4:x"])
def test_bad_listen_address(bad: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "geodns", "serve", "--http", "off", "--listen", bad],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=20,
    )
    assert result.returncode == 2
    assert bad in result.stderr


def test_serve_defaults_to_the_embedded_zone_without_a_zones_dir(tmp_path) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "geodns",
            "serve",
            "--http",
            "127.0.0.1:0",
            "--listen",
            "127.0.0.1:0",
        ],
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = []
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            if "listening on" in line:
                break
        port = int(lines[-1].rsplit(":", 1)[1].split()[0])
        reply = dns.query.udp(
            dns.message.make_query("www.example.com", "A"), "127.0.0.1", port=port, timeout=2
        )
        assert reply.answer
        assert any("embedded example zone" in line for line in lines)
    finally:
        proc.terminate()
        proc.wait(10)


def test_one_twin_by_default_and_none_with_no_twins() -> None:
    # Only where a thread may leave SCHED_IDLE again (root here, or LimitNICE=+0).
    from geodns.server.standin import can_leave_idle

    if not can_leave_idle():
        pytest.skip("no CAP_SYS_NICE or RLIMIT_NICE 20: never a twin")
    with running_server(EXAMPLE_ZONES) as srv:
        assert srv.udp(dns.message.make_query("www.example.com", "A")).answer
        twins = wait_for(lambda: split_twins(child_pids(srv.proc.pid))[0])
        assert len(twins) == 1
    with running_server(EXAMPLE_ZONES, "--no-twins") as srv:
        assert srv.udp(dns.message.make_query("www.example.com", "A")).answer
        assert child_pids(srv.proc.pid) == []
