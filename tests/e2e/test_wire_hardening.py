"""A hardened wire, against the real server: TSIG, OPT in every reply, transfers, opcodes, cookies.

Each probe is one that NSD and Knot answer right (issue 11 items 8, 9, 10 and 13); the
expected answers are theirs (docs/wire.md has the table).
"""

from __future__ import annotations

import re
import socket
import struct
import subprocess

import dns.edns
import dns.flags
import dns.message
import dns.rcode
import dns.tsigkeyring
import pytest

from tests.conftest import ServerProcess, require_tool

Rcode = dns.rcode.Rcode
QUESTION = b"\x03www\x07example\x03com\x00\x00\x01\x00\x01"
OPT = b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00"
TRANSPORTS = ["udp", "tcp"]


def header(qid: int = 0xBEEF, flags: int = 0, qd: int = 1, an: int = 0, ns: int = 0, ar: int = 0):
    return struct.pack("!6H", qid, flags, qd, an, ns, ar)


def exchange(
    server: ServerProcess, payload: bytes, transport: str = "udp", source: str = "127.0.0.1"
) -> bytes:
    if transport == "udp":
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(2)
            sock.bind((source, 0))
            sock.sendto(payload, server.addr)
            return sock.recv(65535)
    with socket.create_connection(server.addr, timeout=2) as sock:
        sock.sendall(struct.pack("!H", len(payload)) + payload)
        data = b""
        while len(data) < 2 or len(data) < 2 + struct.unpack_from("!H", data)[0]:
            chunk = sock.recv(65535)
            assert chunk, "connection closed before the reply"
            data += chunk
        return data[2:]


def parse(reply: bytes) -> dns.message.Message:
    # keyring=False: read a TSIG RR without checking it (we sign nothing).
    return dns.message.from_wire(reply, keyring=False)


def ede_of(msg: dns.message.Message) -> list[int]:
    return [o.code for o in msg.options if o.otype == dns.edns.EDE]


def cookie_of(msg: dns.message.Message) -> bytes | None:
    found = [o for o in msg.options if o.otype == dns.edns.COOKIE]
    return found[0].client + found[0].server if found else None


# --- TSIG (RFC 8945 5.2) -------------------------------------------------------------------


def signed(edns: bool) -> dns.message.Message:
    query = dns.message.make_query("www.example.com", "A", use_edns=0 if edns else False)
    query.id = 0xBEEF
    keyring = dns.tsigkeyring.from_text({"unknown-key.": "c2VjcmV0c2VjcmV0c2VjcmV0"})
    query.use_tsig(keyring, "unknown-key.", fudge=300)
    return query


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("edns", [False, True])
def test_unknown_tsig_key_is_notauth_badkey(
    server: ServerProcess, transport: str, edns: bool
) -> None:
    query = signed(edns)
    reply = parse(exchange(server, query.to_wire(), transport))
    assert reply.id == 0xBEEF
    assert reply.rcode() == Rcode.NOTAUTH
    assert not reply.answer and not reply.flags & dns.flags.AA
    assert (reply.edns == 0) is edns  # an OPT exactly when the query had one
    assert reply.tsig is not None, "the TSIG RR is last in the reply"
    rdata, sent = reply.tsig[0], query.tsig[0]
    assert reply.tsig.name == query.keyname
    assert (rdata.error, rdata.mac, rdata.original_id) == (17, b"", 0xBEEF)  # BADKEY, unsigned
    assert (rdata.algorithm, rdata.time_signed, rdata.fudge) == (
        sent.algorithm,
        sent.time_signed,
        sent.fudge,
    )


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_tsig_not_last_is_formerr_with_opt(server: ServerProcess, transport: str) -> None:
    wire = bytearray(signed(edns=False).to_wire())
    struct.pack_into("!H", wire, 10, 2)  # one more additional record: an OPT after the TSIG
    reply = parse(exchange(server, bytes(wire) + OPT, transport))
    assert reply.rcode() == Rcode.FORMERR
    assert reply.edns == 0 and reply.tsig is None


# --- OPT in every reply to an EDNS query (RFC 6891 7) ---------------------------------------


@pytest.mark.parametrize(
    ("name", "payload"),
    [
        ("qdcount 0", header(qd=0, ar=1) + OPT),
        ("qdcount 2", header(qd=2, ar=1) + QUESTION + QUESTION + OPT),
        (
            "an authority record",
            header(ns=1, ar=1) + QUESTION + b"\x00\x00\x02\x00\x01" + bytes(6) + OPT,
        ),
    ],
)
def test_formerr_to_an_edns_query_carries_an_opt(
    server: ServerProcess, name: str, payload: bytes
) -> None:
    reply = parse(exchange(server, payload))
    assert reply.rcode() == Rcode.FORMERR, name
    assert reply.edns == 0, name


@pytest.mark.parametrize("opcode", [1, 2, 15])
def test_notimp_copies_rd_not_cd_and_keeps_the_opt(server: ServerProcess, opcode: int) -> None:
    flags = (opcode << 11) | 0x0100 | 0x0010  # RD and CD
    reply = exchange(server, header(flags=flags, ar=1) + QUESTION + OPT)
    (got,) = struct.unpack_from("!H", reply, 2)
    assert got & 0xF == Rcode.NOTIMP
    assert (got >> 11) & 0xF == opcode
    assert got & 0x0100, "RD is copied (RFC 1035 4.1.1)"
    assert not got & 0x0010, "CD is not: an unknown opcode's bits mean nothing to us"
    assert struct.unpack_from("!H", reply, 10)[0] == 1  # the OPT


# --- zone transfers, as NSD answers them without provide-xfr ---------------------------------


def dig_query_bytes(*args: str) -> bytes:
    """The exact query `dig` sends for `args`, caught on a socket of ours."""
    dig = require_tool("dig")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink:
        sink.bind(("127.0.0.1", 0))
        sink.settimeout(10)
        port = str(sink.getsockname()[1])
        cmd = [dig, "@127.0.0.1", "-p", port, *args, "+notcp", "+tries=1", "+timeout=2"]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            return sink.recvfrom(65535)[0]
        finally:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_digs_ixfr_query_is_refused_with_ede_18(server: ServerProcess, transport: str) -> None:
    query = dig_query_bytes("example.com", "IXFR=2024010100")
    assert struct.unpack_from("!H", query, 8)[0] == 1  # dig sends the SOA in authority
    reply = parse(exchange(server, query, transport))
    assert reply.rcode() == Rcode.REFUSED
    assert reply.edns == 0 and ede_of(reply) == [18]  # Prohibited (RFC 8914 4.19)


@pytest.mark.parametrize(
    ("qtype", "transport", "rcode"),
    [
        ("IXFR=2024010100", "udp", "REFUSED"),
        ("IXFR=2024010100", "tcp", "REFUSED"),
        ("AXFR", "udp", "REFUSED"),  # NSD and Knot: NOTIMP (docs/wire.md says why not)
        ("AXFR", "tcp", "REFUSED"),
    ],
)
def test_kdig_transfers(server: ServerProcess, qtype: str, transport: str, rcode: str) -> None:
    kdig = require_tool("kdig")
    cmd = [kdig, "@127.0.0.1", "-p", str(server.port), "example.com", qtype, "+time=2"]
    if transport == "udp":
        cmd.append("+notcp")
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
    assert f"server replied with error '{rcode}'" in out.stdout + out.stderr


def test_axfr_of_a_name_that_is_no_zone_is_notauth(server: ServerProcess) -> None:
    query = dns.message.make_query("www.example.com", "AXFR")
    assert parse(exchange(server, query.to_wire(), "tcp")).rcode() == Rcode.NOTAUTH


def test_refused_outside_our_zones_says_not_authoritative(server: ServerProcess) -> None:
    reply = server.udp(dns.message.make_query("www.example.org", "A", use_edns=0))
    assert reply.rcode() == Rcode.REFUSED and ede_of(reply) == [20]


# --- DNS COOKIE (RFC 7873, RFC 9018) ---------------------------------------------------------


def cookie_query(client: bytes, server_cookie: bytes = b"") -> bytes:
    query = dns.message.make_query(
        "www.example.com", "A", options=[dns.edns.CookieOption(client, server_cookie)]
    )
    query.id = 0xBEEF
    return query.to_wire()


def test_dig_cookie_is_answered_and_echoed_back_on_the_next_query(server: ServerProcess) -> None:
    dig = require_tool("dig")
    base = [dig, "@127.0.0.1", "-p", str(server.port), "www.example.com", "A"]
    out = subprocess.run([*base, "+cookie"], capture_output=True, text=True, timeout=20).stdout
    found = re.search(r"COOKIE: ([0-9a-f]{48}) \(good\)", out)
    assert found, out
    cookie = found.group(1)
    assert cookie[16:18] == "01"  # RFC 9018 version 1
    out = subprocess.run(
        [*base, f"+cookie={cookie}"], capture_output=True, text=True, timeout=20
    ).stdout
    assert "status: NOERROR" in out, out
    # RFC 9018 4.3: a valid cookie less than half an hour old comes back as it went.
    assert f"COOKIE: {cookie} (good)" in out, out


def test_kdig_cookie(server: ServerProcess) -> None:
    kdig = require_tool("kdig")
    base = [kdig, "@127.0.0.1", "-p", str(server.port), "www.example.com", "A"]
    out = subprocess.run([*base, "+cookie"], capture_output=True, text=True, timeout=20).stdout
    found = re.search(r"COOKIE: ([0-9A-Fa-f]{48})", out)
    assert found and "NOERROR" in out, out
    again = subprocess.run(
        [*base, f"+cookie={found.group(1)}"], capture_output=True, text=True, timeout=20
    ).stdout
    assert "NOERROR" in again and re.search(r"COOKIE: [0-9A-Fa-f]{48}", again), again


@pytest.mark.parametrize("length", [0, 7, 9, 15, 41])
def test_malformed_cookie_lengths_are_formerr(server: ServerProcess, length: int) -> None:
    option = struct.pack("!HH", 10, length) + b"\x05" * length
    opt = b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00" + struct.pack("!H", len(option)) + option
    reply = parse(exchange(server, header(ar=1) + QUESTION + opt))
    assert reply.rcode() == Rcode.FORMERR  # RFC 7873 5.2.2
    assert reply.edns == 0 and cookie_of(reply) is None


def test_a_stale_server_cookie_is_answered_with_a_fresh_one(server: ServerProcess) -> None:
    reply = parse(exchange(server, cookie_query(b"\x01" * 8, b"\x01" + bytes(15))))
    assert reply.rcode() == Rcode.NOERROR and reply.answer  # no BADCOOKIE
    cookie = cookie_of(reply)
    assert cookie is not None and cookie[:8] == b"\x01" * 8 and cookie[8] == 1


def test_cookie_only_query_gets_a_server_cookie(server: ServerProcess) -> None:
    option = struct.pack("!HH", 10, 8) + b"\x02" * 8
    opt = b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00" + struct.pack("!H", len(option)) + option
    reply = parse(exchange(server, header(qd=0, ar=1) + opt))
    assert reply.rcode() == Rcode.NOERROR and not reply.question  # RFC 7873 5.4
    assert cookie_of(reply)[:8] == b"\x02" * 8


@pytest.mark.parametrize("name", ["www.example.com", "inference.example.com"])
def test_two_clients_never_get_each_others_server_cookie(server: ServerProcess, name: str) -> None:
    # The very same query bytes from two addresses: a reply cached by its query bytes would
    # hand the first client's cookie to the second.
    query = dns.message.make_query(name, "A", options=[dns.edns.CookieOption(b"\x03" * 8, b"")])
    wire = query.to_wire()
    seen: dict[str, set[bytes]] = {"127.0.0.1": set(), "127.0.0.2": set()}
    for _ in range(3):
        for source in seen:
            reply = parse(exchange(server, wire, source=source))
            assert reply.rcode() == Rcode.NOERROR and reply.answer
            seen[source].add(cookie_of(reply)[8:])
    assert not seen["127.0.0.1"] & seen["127.0.0.2"]
