"""Malformed input over raw sockets: FORMERR, NOTIMP or silence, and the server keeps answering."""

from __future__ import annotations

import socket
import struct

import dns.edns
import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import ServerProcess

Rcode = dns.rcode.Rcode
# The session server is shared on purpose: every example must leave it answering.
FIXTURE_OK = [HealthCheck.function_scoped_fixture]
FUZZ_WAIT = 0.05  # loopback replies take well under a millisecond


def valid_query(qid: int = 0x1234, name: str = "www.example.com", edns: bool = False) -> bytes:
    query = dns.message.make_query(name, "A", use_edns=0 if edns else False)
    query.id = qid
    return query.to_wire()


def udp_exchange(server: ServerProcess, payload: bytes, timeout: float = 0.5) -> bytes | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(payload, server.addr)
        try:
            return sock.recv(65535)
        except TimeoutError:
            return None


def assert_still_answers(server: ServerProcess) -> None:
    reply = udp_exchange(server, valid_query(0x4242), timeout=2.0)
    assert reply is not None, "server stopped answering"
    msg = dns.message.from_wire(reply)
    assert msg.id == 0x4242 and msg.rcode() == Rcode.NOERROR


def header(
    qid: int = 0xBEEF, flags: int = 0, qd: int = 1, an: int = 0, ns: int = 0, ar: int = 0
) -> bytes:
    return struct.pack("!HHHHHH", qid, flags, qd, an, ns, ar)


EMPTY_OPT = b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00"
QUESTION = b"\x03www\x07example\x03com\x00\x00\x01\x00\x01"


def rcode_of(reply: bytes) -> int:
    return reply[3] & 0x0F


@pytest.mark.parametrize("payload", [b"", b"\x12", b"\x12\x34\x01\x00\x00\x01\x00\x00\x00"])
def test_shorter_than_a_header_is_dropped(server: ServerProcess, payload: bytes) -> None:
    assert udp_exchange(server, payload) is None
    assert_still_answers(server)


def test_responses_are_never_answered(server: ServerProcess) -> None:
    assert udp_exchange(server, header(flags=0x8000) + QUESTION) is None
    assert_still_answers(server)


@pytest.mark.parametrize("opcode", [1, 2, 4, 5, 15])
def test_other_opcodes_get_notimp(server: ServerProcess, opcode: int) -> None:
    reply = udp_exchange(server, header(flags=opcode << 11) + QUESTION)
    assert reply is not None
    assert reply[:2] == b"\xbe\xef"
    assert rcode_of(reply) == Rcode.NOTIMP
    assert (reply[2] >> 3) & 0xF == opcode  # opcode echoed


@pytest.mark.parametrize(
    ("name", "payload"),
    [
        ("qdcount 0", header(qd=0)),
        ("qdcount 2", header(qd=2) + QUESTION + QUESTION),
        ("truncated name", header() + b"\x03www\x07exam"),
        ("no type and class", header() + b"\x03www\x07example\x03com\x00\x00"),
        ("compressed qname", header() + b"\xc0\x0c\x00\x01\x00\x01"),
        ("extended label type", header() + b"\x43www\x00\x00\x01\x00\x01"),
        (
            "name over 255 octets",
            header() + b"\x3f" + b"a" * 63 + (b"\x3f" + b"a" * 63) * 4 + b"\x00\x00\x01\x00\x01",
        ),
        ("answer records in a query", header(an=1) + QUESTION),
        ("trailing junk", header() + QUESTION + b"junk"),
        ("arcount past the end", header(ar=1) + QUESTION),
        (
            "two OPT records",
            header(ar=2) + QUESTION + b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00" * 2,
        ),
        ("OPT owner not root", header(ar=1) + QUESTION + b"\x01a\x00\x00\x29\x04\xd0" + bytes(6)),
        (
            "option past the OPT",
            header(ar=1) + QUESTION + b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00"
            b"\x00\x04\x00\x0a\x00\x08",
        ),
        (
            "option header truncated",
            header(ar=1) + QUESTION + b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x02\x00\x0a",
        ),
    ],
)
def test_unparsable_queries_get_formerr(server: ServerProcess, name: str, payload: bytes) -> None:
    reply = udp_exchange(server, payload)
    assert reply is not None, name
    assert reply[:2] == b"\xbe\xef"
    assert reply[2] & 0x80  # QR
    assert rcode_of(reply) == Rcode.FORMERR, name
    assert_still_answers(server)


def test_two_opts_formerr_carries_no_opt(server: ServerProcess) -> None:
    opt = b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00"
    reply = dns.message.from_wire(udp_exchange(server, header(ar=2) + QUESTION + opt + opt))
    assert reply.rcode() == Rcode.FORMERR
    assert reply.edns == -1


def ecs_query(body: bytes) -> bytes:
    option = struct.pack("!HH", 8, len(body)) + body
    opt = b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00" + struct.pack("!H", len(option)) + option
    return header(ar=1) + QUESTION + opt


@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("IPv4 prefix longer than 32", b"\x00\x01\x21\x00" + bytes(5)),
        ("IPv6 prefix longer than 128", b"\x00\x02\x81\x00" + bytes(17)),
        ("address bits past the prefix", b"\x00\x01\x17\x00\x51\x02\x45"),
        ("more octets than the prefix needs", b"\x00\x01\x18\x00\x51\x02\x45\x00"),
        ("fewer octets than the prefix needs", b"\x00\x01\x18\x00\x51\x02"),
        ("unknown family", b"\x00\x03\x08\x00\x51"),
        ("truncated option", b"\x00\x01"),
        ("two ECS options", None),
    ],
)
def test_malformed_ecs_gets_formerr(server: ServerProcess, name: str, body: bytes | None) -> None:
    if body is None:
        good = b"\x00\x01\x18\x00\x51\x02\x45"
        option = (struct.pack("!HH", 8, len(good)) + good) * 2
        opt = b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00" + struct.pack("!H", len(option)) + option
        payload = header(ar=1) + QUESTION + opt
    else:
        payload = ecs_query(body)
    reply = udp_exchange(server, payload)
    assert reply is not None, name
    assert rcode_of(reply) == Rcode.FORMERR, name
    assert dns.message.from_wire(reply).edns == 0  # the OPT itself was fine
    assert_still_answers(server)


def test_bits_past_the_prefix_example(server: ServerProcess) -> None:
    # 81.2.69.1/24 with the host bits set: RFC 7871 6 says FORMERR.
    reply = udp_exchange(server, ecs_query(b"\x00\x01\x17\x00\x51\x02\x45"))
    assert rcode_of(reply) == Rcode.FORMERR
    # A well-formed /0 (the client opted out) is fine.
    reply = udp_exchange(server, ecs_query(b"\x00\x01\x00\x00"))
    assert rcode_of(reply) == Rcode.NOERROR


# --- TCP ---------------------------------------------------------------------------------


def tcp_connect(server: ServerProcess) -> socket.socket:
    sock = socket.create_connection(server.addr, timeout=3)
    return sock


def recv_frame(sock: socket.socket) -> bytes:
    def exactly(n: int) -> bytes:
        out = b""
        while len(out) < n:
            chunk = sock.recv(n - len(out))
            if not chunk:
                raise ConnectionError("closed")
            out += chunk
        return out

    (length,) = struct.unpack("!H", exactly(2))
    return exactly(length)


def frame(payload: bytes) -> bytes:
    return struct.pack("!H", len(payload)) + payload


def test_tcp_pipelined_queries(server: ServerProcess) -> None:
    with tcp_connect(server) as sock:
        sock.sendall(b"".join(frame(valid_query(i)) for i in (1, 2, 3)))
        ids = {dns.message.from_wire(recv_frame(sock)).id for _ in range(3)}
    assert ids == {1, 2, 3}


def test_tcp_query_split_across_segments(server: ServerProcess) -> None:
    with tcp_connect(server) as sock:
        data = frame(valid_query(7))
        for byte in data:
            sock.send(bytes([byte]))
        assert dns.message.from_wire(recv_frame(sock)).id == 7


def test_tcp_half_sent_query_does_not_block_others(server: ServerProcess) -> None:
    with tcp_connect(server) as stalled, tcp_connect(server) as other:
        stalled.sendall(frame(valid_query(8))[:5])
        other.sendall(frame(valid_query(9)))
        assert dns.message.from_wire(recv_frame(other)).id == 9
        stalled.sendall(frame(valid_query(8))[5:])
        assert dns.message.from_wire(recv_frame(stalled)).id == 8


def test_tcp_garbage_and_empty_frames(server: ServerProcess) -> None:
    with tcp_connect(server) as sock:
        sock.sendall(frame(b"") + frame(header() + b"\xff\xff") + frame(valid_query(10)))
        first = recv_frame(sock)
        assert rcode_of(first) == Rcode.FORMERR
        assert dns.message.from_wire(recv_frame(sock)).id == 10


def test_tcp_big_answer_is_whole(server: ServerProcess) -> None:
    query = dns.message.make_query("www.example.com", "A")
    reply = server.tcp(query)
    assert not reply.flags & dns.flags.TC


# --- random input ---------------------------------------------------------------------------


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.binary(min_size=0, max_size=600))
def test_random_bytes_never_stop_the_server(server: ServerProcess, payload: bytes) -> None:
    check_reply(payload, udp_exchange(server, payload, timeout=FUZZ_WAIT))


def _mutations() -> st.SearchStrategy[bytes]:
    base = [
        valid_query(1),
        valid_query(2, edns=True),
        dns.message.make_query(
            "inference.example.com",
            "AAAA",
            options=[dns.edns.ECSOption("81.2.69.0", 24), dns.edns.NSIDOption(b"")],
        ).to_wire(),
    ]

    @st.composite
    def mutate(draw: st.DrawFn) -> bytes:
        data = bytearray(draw(st.sampled_from(base)))
        for _ in range(draw(st.integers(1, 6))):
            action = draw(st.sampled_from(["flip", "set", "cut", "insert"]))
            pos = draw(st.integers(0, max(len(data) - 1, 0)))
            if action == "flip" and data:
                data[pos] ^= 1 << draw(st.integers(0, 7))
            elif action == "set" and data:
                data[pos] = draw(st.integers(0, 255))
            elif action == "cut":
                del data[pos:]
            else:
                data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        return bytes(data)

    return mutate()


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(_mutations())
def test_mutated_queries_never_stop_the_server(server: ServerProcess, payload: bytes) -> None:
    check_reply(payload, udp_exchange(server, payload, timeout=FUZZ_WAIT))


def check_reply(payload: bytes, reply: bytes | None) -> None:
    if reply is not None:
        assert len(payload) >= 12, "a reply to less than a header"
        assert reply[:2] == payload[:2], "the reply's ID is the query's"
        assert reply[2] & 0x80, "QR set"
        assert not payload[2] & 0x80, "a response was answered"
        if (reply[2] >> 3) & 0xF == dns.opcode.UPDATE:
            # dnspython reads an UPDATE's question as its zone section and refuses any
            # type there but SOA; our NOTIMP echoes whatever question was sent.
            assert reply[3] & 0xF == dns.rcode.NOTIMP
            return
        dns.message.from_wire(reply, ignore_trailing=False)


def test_still_answering_after_the_fuzzing(server: ServerProcess) -> None:
    assert_still_answers(server)
    assert "Traceback" not in server.log()
