"""A server listening on a wildcard address (0.0.0.0, ::) replies from the address each
query was sent to: the client's socket is connected, so the kernel drops a reply from any
other address, as a resolver does. The whole of 127.0.0.0/8 is local on Linux, so
127.0.0.2 and 127.0.0.3 are further addresses of this host without any setup; for IPv6,
a second address must already be configured (::1 is the only one on loopback)."""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

import dns.message
import pytest

from tests.conftest import EXAMPLE_ZONES, ServerProcess, running_server, wait_for

QUERY = dns.message.make_query("www.example.com", "A")


def ask_connected(
    host: str, port: int, source: str | None = None, query: dns.message.Message = QUERY
) -> dns.message.Message:
    """One UDP query from a connected socket: only a reply from (host, port) gets in."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2.0)
        if source is not None:
            sock.bind((source, 0))
        sock.connect((host, port))
        sock.send(query.to_wire())
        try:
            reply = sock.recv(65535)
        except TimeoutError:
            raise AssertionError(f"no reply from {host} (sent from another address?)") from None
    return dns.message.from_wire(reply)


def addresses(reply: dns.message.Message) -> list[str]:
    return sorted(r.address for rrset in reply.answer for r in rrset)


def other_ipv6_addresses() -> list[str]:
    """This host's global IPv6 addresses other than ::1, from /proc/net/if_inet6."""
    found = []
    try:
        lines = Path("/proc/net/if_inet6").read_text().splitlines()
    except OSError:
        return []
    for line in lines:
        hexaddr, _index, _plen, scope, flags, _name = line.split()
        # scope 00 is global; flags 0x40 tentative, 0x08 failed duplicate detection
        if scope == "00" and not int(flags, 16) & 0x48:
            found.append(socket.inet_ntop(socket.AF_INET6, bytes.fromhex(hexaddr)))
    return found


@pytest.fixture(scope="module")
def wildcard() -> ServerProcess:
    with running_server(listen=("0.0.0.0:0", "[::]:0")) as srv:
        yield srv


@pytest.mark.parametrize("host", ["127.0.0.2", "127.0.0.3"])
def test_an_ipv4_reply_comes_from_the_address_asked(wildcard: ServerProcess, host: str) -> None:
    reply = ask_connected(host, wildcard.ports["0.0.0.0"])
    assert addresses(reply) == ["192.0.2.80", "192.0.2.81"]


def test_a_client_bound_to_another_address_gets_its_reply(wildcard: ServerProcess) -> None:
    # The reply goes to 127.0.0.3, for which routing would pick 127.0.0.1 as the source.
    reply = ask_connected("127.0.0.2", wildcard.ports["0.0.0.0"], source="127.0.0.3")
    assert addresses(reply) == ["192.0.2.80", "192.0.2.81"]


def test_an_ipv6_reply_comes_from_the_address_asked(wildcard: ServerProcess) -> None:
    port = wildcard.ports["::"]
    assert addresses(ask_connected("::1", port)) == ["192.0.2.80", "192.0.2.81"]
    others = other_ipv6_addresses()
    if not others:
        pytest.skip("no IPv6 address besides ::1 on this host")
    for host in others:
        # From ::1, so that routing would send the reply from ::1.
        assert addresses(ask_connected(host, port, source="::1")) == ["192.0.2.80", "192.0.2.81"]


def test_replies_come_from_the_address_asked_after_a_reload(tmp_path: Path) -> None:
    zones = tmp_path / "zones"
    zones.mkdir()
    zone = zones / "example.com.yaml"
    zone.write_text((EXAMPLE_ZONES / "example.com.yaml").read_text())
    asked = dns.message.make_query("www2.example.com", "A")
    with running_server(
        zones, "--watch-interval", "0", "--workers", "2", listen=("0.0.0.0:0",)
    ) as srv:
        port = srv.ports["0.0.0.0"]
        text = zone.read_text()
        zone.write_text(text.replace("\nrecords:\n", "\nrecords:\n  www2: {A: 192.0.2.222}\n", 1))
        os.kill(srv.proc.pid, signal.SIGHUP)
        wait_for(
            lambda: addresses(ask_connected("127.0.0.2", port, query=asked)) == ["192.0.2.222"],
            timeout=10,
            interval=0.05,
        )
