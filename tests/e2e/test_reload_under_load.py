"""Reloading a 10,000-record zone while queries arrive at a steady rate loses none.

The zone is read, validated and built beside the answering loop, not on it: before
that, each reload stopped answering for about two seconds, and at 2,000 q/s the
socket's receive buffer overflowed within a fraction of one. A behaviour test, not a
benchmark (bench/reload.py measures latency): every query gets its reply, and after
each reload the new zone is the one served.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import threading
import time
from pathlib import Path

import dns.message
import dns.rcode

from tests.conftest import EXAMPLE_ZONES, ServerProcess, running_server, wait_for

RECORDS = 10000
RATE = 2000  # queries per second
REPLY_WAIT = 3.0  # seconds after the last query for the last replies


def write_zone(directory: Path, h0: str) -> Path:
    base = (EXAMPLE_ZONES / "example.com.yaml").read_text()
    lines = [f"  h{i}: {{A: 10.0.{i >> 8}.{i & 255}}}" for i in range(1, RECORDS)]
    lines.insert(0, f"  h0: {{A: {h0}}}")
    text = base.replace("\nrecords:\n", "\nrecords:\n" + "\n".join(lines) + "\n", 1)
    zone = directory / "example.com.yaml"
    tmp = directory / ".example.com.yaml.tmp"
    tmp.write_text(text)
    os.replace(tmp, zone)
    return zone


class SteadyLoad:
    """Sends A queries for h<n> at RATE from one socket; matches replies by ID."""

    def __init__(self, server: ServerProcess) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
        self.sock.connect(server.addr)
        self.sock.settimeout(0.2)
        self.sent: dict[int, float] = {}  # ID -> when sent
        self.latency: dict[int, float] = {}  # ID -> seconds to its reply
        self.bad: list[str] = []
        self._stop = threading.Event()
        self._sent_all = threading.Event()  # the sender has returned: `sent` is final
        self._sending = threading.Thread(target=self._send, daemon=True)
        self._receiving = threading.Thread(target=self._receive, daemon=True)

    def __enter__(self) -> SteadyLoad:
        self._receiving.start()
        self._sending.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._sending.join()
        deadline = time.monotonic() + REPLY_WAIT
        while len(self.latency) < len(self.sent) and time.monotonic() < deadline:
            time.sleep(0.05)
        self._receiving.join(1.0)
        self.sock.close()

    def _send(self) -> None:
        try:
            self._send_all()
        finally:
            self._sent_all.set()

    def _send_all(self) -> None:
        start = time.monotonic()
        n = 0
        while not self._stop.is_set() and n < 65536:
            due = start + n / RATE
            now = time.monotonic()
            if due > now:
                time.sleep(due - now)
            query = dns.message.make_query(f"h{n % RECORDS}.example.com", "A", use_edns=False)
            query.id = n
            wire = query.to_wire()
            self.sent[n] = time.monotonic()  # before sending: the reply may be quicker
            try:
                self.sock.send(wire)
            except OSError as exc:  # this side's failure, not a lost query: say so
                del self.sent[n]
                self.bad.append(f"query {n} not sent: {exc!r}")
                return
            n += 1

    def _receive(self) -> None:
        # Until the sender is done and every query it sent is answered: a sender woken from
        # its pacing sleep after the stop still sends one more.
        while not (self._sent_all.is_set() and len(self.latency) >= len(self.sent)):
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            reply = dns.message.from_wire(data)
            if reply.id in self.sent:
                self.latency[reply.id] = time.monotonic() - self.sent[reply.id]
            if reply.rcode() != dns.rcode.NOERROR or not reply.answer:
                self.bad.append(f"{reply.question[0].name}: {dns.rcode.to_text(reply.rcode())}")

    @property
    def unanswered(self) -> list[int]:
        return sorted(set(self.sent) - set(self.latency))


def h0(server: ServerProcess) -> list[str]:
    reply = server.udp(dns.message.make_query("h0.example.com", "A"))
    return sorted(r.address for rrset in reply.answer for r in rrset)


def test_reloads_lose_no_query(tmp_path: Path) -> None:
    zones = tmp_path / "zones"
    zones.mkdir()
    write_zone(zones, "192.0.2.1")
    shutil.copy(EXAMPLE_ZONES / "example.com.yaml", tmp_path / "unused.yaml")  # not served
    with running_server(
        zones, "--watch-interval", "0", "--rrl-rate", "0", listen=("127.0.0.1:0",)
    ) as srv:
        assert h0(srv) == ["192.0.2.1"]
        with SteadyLoad(srv) as load:
            time.sleep(1.0)
            for version, address in ((2, "192.0.2.2"), (3, "192.0.2.3")):
                write_zone(zones, address)
                os.kill(srv.proc.pid, signal.SIGHUP)
                wait_for(lambda v=version: f"config version {v}," in srv.log(), timeout=15)
                assert h0(srv) == [address]
            time.sleep(1.0)
        assert not [b for b in load.bad if "not sent" in b], load.bad[:5]
        assert load.sent and len(load.sent) > RATE * 2
        slowest = max(load.latency.values(), default=0.0)
        assert not load.unanswered, (
            f"{len(load.unanswered)} of {len(load.sent)} queries unanswered "
            f"(slowest reply {slowest:.3f} s)"
        )
        assert not load.bad, load.bad[:5]
