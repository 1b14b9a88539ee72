"""DNS COOKIE secrets on real servers: shared by a fleet, checked at start, and a valid
server cookie exempting its sender from response rate limiting."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import dns.edns
import dns.flags
import dns.message

from tests.conftest import EXAMPLE_ZONES, ServerProcess, running_server

SECRET = "e5e973e5a6b2a43f48e7dc849e37bfcf"
CLIENT = b"\x24\x64\xc9\x5a\x8f\x1b\x3d\x07"


def ask(srv: ServerProcess, server_cookie: bytes = b"") -> dns.message.Message:
    query = dns.message.make_query(
        "www.example.com", "A", use_edns=0, options=[dns.edns.CookieOption(CLIENT, server_cookie)]
    )
    return srv.udp(query)


def server_cookie(reply: dns.message.Message) -> bytes:
    (option,) = [o for o in reply.options if isinstance(o, dns.edns.CookieOption)]
    assert option.client == CLIENT
    return option.server


def test_a_fleet_sharing_a_secret_accepts_each_others_cookies(tmp_path: Path) -> None:
    secret = tmp_path / "cookie.secret"
    secret.write_text(SECRET + "\n")
    args = ("--cookie-secret-file", str(secret))
    with (
        running_server(EXAMPLE_ZONES, *args, listen=("127.0.0.1:0",)) as a,
        running_server(EXAMPLE_ZONES, *args, listen=("127.0.0.1:0",)) as b,
        running_server(EXAMPLE_ZONES, listen=("127.0.0.1:0",)) as other,
    ):
        cookie = server_cookie(ask(a))
        # RFC 9018 4.3: a valid young cookie comes back as it went; B can tell it is valid.
        assert server_cookie(ask(b, cookie)) == cookie
        assert server_cookie(ask(other, cookie)) != cookie  # not its secret: a fresh one


def test_a_bad_secret_file_stops_the_start(tmp_path: Path) -> None:
    secret = tmp_path / "cookie.secret"
    secret.write_text("not hex at all")
    serve = [sys.executable, "-m", "geodns", "serve", "--zones", str(EXAMPLE_ZONES)]
    done = subprocess.run(
        [*serve, "--listen", "127.0.0.1:0", "--http", "off", "--cookie-secret-file", str(secret)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert "expected 32 hex digits" in done.stderr


def test_a_valid_server_cookie_is_never_rate_limited() -> None:
    with running_server(EXAMPLE_ZONES, "--rrl-rate", "5", listen=("127.0.0.1:0",)) as srv:
        cookie = server_cookie(ask(srv))

        def burst(server_part: bytes) -> tuple[int, int]:
            """(full answers, truncated) to 100 queries sent at once from one socket."""
            query = dns.message.make_query(
                "www.example.com",
                "A",
                use_edns=0,
                options=[dns.edns.CookieOption(CLIENT, server_part)],
            ).to_wire()
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.settimeout(1.0)
            full = truncated = 0
            try:
                for _ in range(100):
                    sock.sendto(query, srv.addr)
                while True:
                    try:
                        reply = dns.message.from_wire(sock.recv(4096))
                    except TimeoutError:
                        break
                    if reply.flags & dns.flags.TC:
                        truncated += 1
                    else:
                        full += 1
            finally:
                sock.close()
            return full, truncated

        assert burst(cookie) == (100, 0)  # proven address: exempt
        full, truncated = burst(b"")  # a client cookie alone proves nothing
        assert full <= 10 and truncated > 0
