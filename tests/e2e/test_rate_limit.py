"""Response rate limiting on a real server: one source flooding over UDP from loopback."""

from __future__ import annotations

import math
import socket
import time
from dataclasses import dataclass

import dns.flags
import dns.message
import dns.rcode

from tests.conftest import EXAMPLE_ZONES, ServerProcess, running_server, wait_for
from tests.e2e.test_admin import metrics

NAME = "_inference._tcp.example.com"  # the probe: an SRV RRset, 7x the query's size


@dataclass
class Flood:
    sent: int = 0
    bytes_in: int = 0  # query bytes we sent (the server's bytes in)
    answers: int = 0  # full replies
    truncated: int = 0  # TC=1 replies with no answer
    bytes_out: int = 0  # reply bytes we got (the server's bytes out)
    tcp_answers: int = 0

    @property
    def amplification(self) -> float:
        return self.bytes_out / self.bytes_in


def flood(
    srv: ServerProcess, rate: float, seconds: float, tcp_every: int = 0, rdtype: str = "SRV"
) -> Flood:
    """Send `rate` queries a second from one UDP socket for `seconds`, then collect the
    replies; every `tcp_every` queries, ask the same over TCP too."""
    query = dns.message.make_query(NAME, rdtype, use_edns=0)
    wire = query.to_wire()
    result = Flood()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * 1024 * 1024)
    sock.setblocking(False)

    def drain() -> None:
        while True:
            try:
                data = sock.recv(65535)
            except BlockingIOError:
                return
            result.bytes_out += len(data)
            reply = dns.message.from_wire(data)
            if reply.flags & dns.flags.TC:
                assert not reply.answer and reply.question[0].name == query.question[0].name
                result.truncated += 1
            else:
                assert reply.rcode() == dns.rcode.NOERROR and reply.answer
                result.answers += 1

    start = time.monotonic()
    try:
        while (now := time.monotonic()) - start < seconds:
            due = int((now - start) * rate) + 1
            while result.sent < due:
                sock.sendto(wire, srv.addr)
                result.sent += 1
                result.bytes_in += len(wire)
                if tcp_every and result.sent % tcp_every == 0:
                    assert srv.tcp(dns.message.make_query(NAME, rdtype)).answer
                    result.tcp_answers += 1
            drain()
            time.sleep(0.001)
        end = time.monotonic() + 0.5
        while time.monotonic() < end:
            drain()
            time.sleep(0.01)
    finally:
        sock.close()
    return result


def rrl_counts(srv: ServerProcess) -> dict[str, float]:
    found = metrics(srv).get("geodns_rrl_replies_total", {})
    return {dict(labels)["action"]: value for labels, value in found.items()}


def test_one_source_above_the_limit_gets_about_the_rate_then_slips_and_drops() -> None:
    rate, seconds = 50, 3.0
    with running_server(EXAMPLE_ZONES, "--rrl-rate", str(rate), listen=("127.0.0.1:0",)) as srv:
        # 1,000 q/s against 50/s: 20 times the limit, TCP queries in between.
        result = flood(srv, 1000, seconds, tcp_every=200)
        windows = math.ceil(seconds) + 1  # one-second windows the flood may touch
        assert rate * int(seconds) <= result.answers <= rate * windows, result
        limited = result.sent - result.answers
        # slip 2: every other limited reply goes out truncated, the rest are dropped
        assert abs(result.truncated - limited / 2) <= windows, result
        # TCP proves the address: never limited
        assert result.tcp_answers == result.sent // 200
        # Fewer bytes out than in: the flood is no longer amplified.
        assert result.amplification < 1.0, result.amplification
        wait_for(
            lambda: (
                rrl_counts(srv)
                == {"slipped": result.truncated, "dropped": limited - result.truncated}
            ),
            timeout=5,
        )


def test_an_exempt_network_and_a_zero_rate_are_never_limited() -> None:
    for args in (("--rrl-rate", "20", "--rrl-exempt", "127.0.0.0/8"), ("--rrl-rate", "0")):
        with running_server(EXAMPLE_ZONES, *args, listen=("127.0.0.1:0",)) as srv:
            result = flood(srv, 500, 1.0)
            assert result.answers == result.sent and result.truncated == 0, (args, result)
            assert result.amplification > 5  # what RRL is for: 7x without it
            assert rrl_counts(srv) == {"slipped": 0, "dropped": 0}


def test_rate_limiting_is_on_by_default() -> None:
    with running_server(EXAMPLE_ZONES, listen=("127.0.0.1:0",)) as srv:
        result = flood(srv, 2000, 1.5)
        # 200 a second: a 1.5 s flood touches three one-second windows at most
        assert 200 <= result.answers <= 600, result
        assert result.truncated > 0
