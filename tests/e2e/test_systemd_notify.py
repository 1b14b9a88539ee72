"""systemd's readiness protocol against the real server: READY=1 only after the first health
round, RELOADING=1 then READY=1 around a SIGHUP reload (refused or not), STOPPING=1 at the end.

The test owns the $NOTIFY_SOCKET datagram socket, as systemd would, and holds the region's
first health check open to see that the server does not claim readiness meanwhile.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dns.message
import dns.rcode

from tests.conftest import running_server, wait_for


class NotifySocket:
    """A unix datagram socket collecting notifications as (arrival, {key: value})."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.received: list[tuple[float, dict[str, str]]] = []
        self._thread = threading.Thread(target=self._collect, daemon=True)
        self._thread.start()

    def _collect(self) -> None:
        while True:
            try:
                data = self.sock.recv(4096)
            except OSError:
                return
            fields = dict(line.split("=", 1) for line in data.decode().splitlines())
            self.received.append((time.monotonic(), fields))

    def with_key(self, key: str) -> list[tuple[float, dict[str, str]]]:
        return [(t, f) for t, f in self.received if key in f]

    def close(self) -> None:
        self.sock.close()


class HeldRegion:
    """A region whose first GET /healthz is held until `release` is set."""

    def __init__(self) -> None:
        self.asked = threading.Event()
        self.release = threading.Event()
        region = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if not region.asked.is_set():
                    region.asked.set()
                    region.release.wait(30)
                body = json.dumps({"ready": True}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/healthz"

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def notify_socket() -> Iterator[NotifySocket]:
    # A short path: sun_path holds 108 bytes, pytest's tmp_path can be longer.
    with tempfile.TemporaryDirectory(prefix="geodns-notify-") as tmp:
        sock = NotifySocket(str(Path(tmp) / "notify"))
        try:
            yield sock
        finally:
            sock.close()


def server_pid(zones: Path) -> int:
    """The pid of this test's `geodns serve` child (process 0), found by its zones path."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if str(zones).encode() in args and parent == os.getpid():
            return int(entry.name)
    raise AssertionError(f"no geodns serve child with {zones}")


def zone_text(health_url: str, bad: bool = False) -> str:
    address = "999.0.2.1" if bad else "192.0.2.1"
    return f"""zone: example.com
soa: {{mname: ns1, rname: hostmaster}}
ns: [ns1]
records:
  ns1: {{A: 192.0.2.53}}
services:
  inference:
    regions:
      one:
        addresses: [{address}]
        health: {{url: "{health_url}", interval: 20, timeout: 15}}
"""


def test_ready_after_the_first_health_round_and_around_reloads(tmp_path: Path) -> None:
    region = HeldRegion()
    zones = tmp_path / "zones"
    zones.mkdir()
    zone = zones / "example.com.yaml"
    zone.write_text(zone_text(region.url))
    released_at: list[float] = []

    with notify_socket() as notify:

        def hold_first_check() -> None:
            # While the first probe is open the server must not say it is ready; let the
            # probe answer only after half a second of that silence. A SIGHUP meanwhile
            # (an early `systemctl reload`, `docker kill -s HUP`) must not kill it.
            try:
                if region.asked.wait(20):
                    os.kill(server_pid(zones), signal.SIGHUP)
                    deadline = time.monotonic() + 0.5
                    while time.monotonic() < deadline and not notify.received:
                        time.sleep(0.01)
                    released_at.append(time.monotonic())
            finally:
                region.release.set()

        holder = threading.Thread(target=hold_first_check, daemon=True)
        holder.start()
        try:
            with running_server(
                zones,
                "--workers",
                "2",
                "--watch-interval",
                "0",
                env={"NOTIFY_SOCKET": notify.path},
                startup_timeout=30,
            ) as srv:
                holder.join(5)
                assert released_at, "the server never checked the region's health"
                wait_for(lambda: notify.with_key("READY"), timeout=5)
                arrived, fields = notify.received[0]
                assert fields["READY"] == "1", notify.received
                assert arrived > released_at[0], "READY=1 came before the first health round"
                assert fields["STATUS"].startswith("answering 1 zone on 127.0.0.1:")
                reply = srv.udp(dns.message.make_query("ns1.example.com", "A"))
                assert reply.rcode() == dns.rcode.NOERROR and reply.answer

                # A reload: RELOADING=1 with the time it began, then READY=1 again.
                before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
                srv.proc.send_signal(signal.SIGHUP)
                wait_for(lambda: len(notify.with_key("READY")) == 2, timeout=10)
                (_, reloading), (_, again) = notify.received[1:3]
                assert reloading["RELOADING"] == "1", notify.received
                after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
                assert before <= int(reloading["MONOTONIC_USEC"]) <= after
                assert again["READY"] == "1" and again["STATUS"] == "config version 2"

                # A refused reload still ends in READY=1: the old zones keep serving.
                zone.write_text(zone_text(region.url, bad=True))
                srv.proc.send_signal(signal.SIGHUP)
                wait_for(lambda: len(notify.with_key("READY")) == 3, timeout=10)
                (_, reloading), (_, again) = notify.received[3:5]
                assert reloading["RELOADING"] == "1"
                assert again["READY"] == "1"
                assert "config version 2; the last reload was refused" in again["STATUS"]
                count = len(notify.received)
            wait_for(lambda: notify.with_key("STOPPING"), timeout=5)
            assert [f for _, f in notify.received[count:]] == [
                {"STOPPING": "1", "STATUS": "shutting down"}
            ]
            # One process told systemd it was ready, once per start or reload: not the
            # forked workers too.
            assert len(notify.with_key("READY")) == 3
        finally:
            region.close()
