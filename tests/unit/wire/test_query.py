"""Parsing untrusted query bytes: each malformed shape raises one MalformedQuery family."""

from __future__ import annotations

import struct

import dns.edns
import dns.message
import dns.rrset
import dns.tsigkeyring
import pytest

from geodns.errors import (
    BadCookie,
    BadECS,
    BadEDNS,
    BadQuestion,
    BadTSIG,
    MalformedQuery,
    ShortHeader,
    TrailingJunk,
)
from geodns.wire.edns import ClientSubnet, build_opt, ede_option, parse_ecs_untrusted
from geodns.wire.query import QueryError, parse_query_untrusted


def test_parses_header_question_and_edns() -> None:
    msg = dns.message.make_query(
        "WWW.example.com",
        "AAAA",
        want_dnssec=True,
        payload=4096,
        options=[dns.edns.ECSOption("81.2.69.0", 24), dns.edns.NSIDOption(b"")],
    )
    msg.id = 77
    query = parse_query_untrusted(msg.to_wire())
    assert query.id == 77
    assert query.qname == b"\x03WWW\x07example\x03com\x00"
    assert (query.qtype, query.qclass, query.opcode) == (28, 1, 0)
    assert query.edns is not None
    assert (query.edns.payload, query.edns.version, query.edns.do, query.edns.nsid) == (
        4096,
        0,
        True,
        True,
    )
    assert query.edns.ecs == ClientSubnet(1, 24, 0, bytes([81, 2, 69]))


def test_short_header() -> None:
    with pytest.raises(ShortHeader):
        parse_query_untrusted(b"\x00" * 11)


@pytest.mark.parametrize(
    ("payload", "cause"),
    [
        (struct.pack("!6H", 1, 0, 1, 0, 0, 0) + b"\x03www", BadQuestion),
        (struct.pack("!6H", 1, 0, 1, 0, 0, 0) + b"\xc0\x0c\x00\x01\x00\x01", BadQuestion),
        (struct.pack("!6H", 1, 0, 1, 0, 0, 0) + b"\x00\x00\x01\x00\x01junk", TrailingJunk),
        (
            struct.pack("!6H", 1, 0, 1, 0, 0, 2)
            + b"\x00\x00\x01\x00\x01"
            + b"\x00\x00\x29\x02\x00"
            + bytes(6)
            + b"\x00\x00\x29\x02\x00"
            + bytes(6),
            BadEDNS,
        ),
    ],
)
def test_malformed_queries_keep_what_could_be_read(payload: bytes, cause: type) -> None:
    with pytest.raises(QueryError) as info:
        parse_query_untrusted(payload)
    assert isinstance(info.value.cause, cause)
    assert isinstance(info.value, MalformedQuery)


def test_question_end_is_known_for_errors_after_the_question() -> None:
    payload = struct.pack("!6H", 1, 0, 1, 0, 0, 0) + b"\x00\x00\x01\x00\x01junk"
    with pytest.raises(QueryError) as info:
        parse_query_untrusted(payload)
    assert info.value.question_end == 17


@pytest.mark.parametrize(
    "body",
    [
        b"\x00\x01\x21\x00" + bytes(5),  # /33 for IPv4
        b"\x00\x01\x18\x00\x51\x02",  # /24 needs 3 octets
        b"\x00\x01\x18\x00\x51\x02\x45\x00",  # /24 with 4 octets
        b"\x00\x01\x17\x00\x51\x02\x45",  # a bit set past /23
        b"\x00\x07\x08\x00\x51",  # family 7
        b"\x00\x01\x18",  # truncated
    ],
)
def test_bad_ecs(body: bytes) -> None:
    with pytest.raises(BadECS):
        parse_ecs_untrusted(body)


def test_ecs_zero_prefix_has_no_address() -> None:
    assert parse_ecs_untrusted(b"\x00\x02\x00\x00") == ClientSubnet(2, 0, 0, b"")


def test_reply_opt_layout() -> None:
    opt = build_opt(1232, do=True, ext_rcode=1)
    assert opt == b"\x00\x00\x29\x04\xd0\x01\x00\x80\x00\x00\x00"


# --- the whole message is walked, so that FORMERR replies can carry the OPT ------------------

HEADER = struct.Struct("!6H")
QUESTION = b"\x03www\x07example\x03com\x00\x00\x01\x00\x01"
OPT = b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00"
SOA = (
    b"\xc0\x0c\x00\x06\x00\x01\x00\x00\x00\x00\x00\x16"
    + b"\x00\x00"
    + struct.pack("!5I", 2024010100, 0, 0, 0, 0)
)


def with_counts(qd: int, an: int, ns: int, ar: int, body: bytes) -> bytes:
    return HEADER.pack(0xBEEF, 0, qd, an, ns, ar) + body


@pytest.mark.parametrize(
    ("name", "payload", "question_end"),
    [
        ("qdcount 0 with OPT", with_counts(0, 0, 0, 1, OPT), 0),
        ("qdcount 2 with OPT", with_counts(2, 0, 0, 1, QUESTION + QUESTION + OPT), 0),
        ("answer record with OPT", with_counts(1, 1, 0, 1, QUESTION + SOA + OPT), 33),
        ("authority record in an A query", with_counts(1, 0, 1, 1, QUESTION + SOA + OPT), 33),
    ],
)
def test_formerr_after_the_question_still_finds_the_opt(
    name: str, payload: bytes, question_end: int
) -> None:
    with pytest.raises(QueryError) as info:
        parse_query_untrusted(payload)
    assert info.value.edns is not None, name
    assert info.value.question_end == question_end


def test_qdcount_0_with_a_cookie_asks_for_a_server_cookie() -> None:
    # RFC 7873 5.4: no question, an OPT with a client cookie.
    option = struct.pack("!HH", 10, 8) + b"\x01" * 8
    opt = b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00" + struct.pack("!H", len(option)) + option
    query = parse_query_untrusted(with_counts(0, 0, 0, 1, opt))
    assert not query.has_question
    assert query.edns is not None and query.edns.cookie == b"\x01" * 8
    # Any other question-less query stays malformed.
    for payload in (with_counts(0, 0, 0, 0, b""), with_counts(0, 0, 0, 1, OPT)):
        with pytest.raises(QueryError):
            parse_query_untrusted(payload)


def test_ixfr_query_with_the_clients_soa_in_authority_parses() -> None:
    # RFC 1995 3: what `dig example.com IXFR=2024010100` sends.
    msg = dns.message.make_query("example.com", "IXFR", use_edns=0)
    msg.authority.append(
        dns.rrset.from_text("example.com.", 0, "IN", "SOA", ". . 2024010100 0 0 0 0")
    )
    query = parse_query_untrusted(msg.to_wire())
    assert query.qtype == 251 and query.edns is not None and query.has_question


def signed_query(keyname: str = "unknown-key.", edns: bool = False) -> dns.message.Message:
    msg = dns.message.make_query("www.example.com", "A", use_edns=0 if edns else False)
    msg.id = 0xBEEF
    msg.use_tsig(dns.tsigkeyring.from_text({keyname: "c2VjcmV0c2VjcmV0"}), keyname)
    return msg


def test_tsig_is_read() -> None:
    msg = signed_query(edns=True)
    query = parse_query_untrusted(msg.to_wire())
    assert query.tsig is not None
    assert query.tsig.key_name == b"\x0bunknown-key\x00"
    assert query.tsig.algorithm == b"\x0bhmac-sha256\x00"
    assert query.tsig.time_signed == msg.tsig[0].time_signed
    assert (query.tsig.fudge, query.tsig.original_id) == (300, 0xBEEF)
    assert query.edns is not None


def append_record(wire: bytes, record: bytes) -> bytes:
    data = bytearray(wire)
    struct.pack_into("!H", data, 10, struct.unpack_from("!H", data, 10)[0] + 1)
    return bytes(data) + record


def test_tsig_not_last_is_formerr_that_keeps_a_later_opt() -> None:
    wire = append_record(signed_query().to_wire(), OPT)
    with pytest.raises(QueryError) as info:
        parse_query_untrusted(wire)
    assert isinstance(info.value.cause, BadTSIG)
    assert info.value.edns is not None  # RFC 6891 7: the FORMERR carries an OPT


def test_two_tsigs_are_formerr() -> None:
    wire = signed_query().to_wire()
    tsig = wire[wire.index(b"\x0bunknown-key") :]
    with pytest.raises(QueryError) as info:
        parse_query_untrusted(append_record(wire, tsig))
    assert isinstance(info.value.cause, BadTSIG)


@pytest.mark.parametrize(
    ("name", "mutate"),
    [
        ("class IN", lambda rr: rr[:15] + b"\x00\x01" + rr[17:]),
        ("TTL not 0", lambda rr: rr[:17] + b"\x00\x00\x00\x01" + rr[21:]),
        ("rdata cut short", lambda rr: rr[:21] + struct.pack("!H", 20) + rr[23:43]),
        ("MAC longer than the record", lambda rr: rr[:44] + b"\xff\xff" + rr[46:]),
    ],
)
def test_malformed_tsig_is_formerr(name: str, mutate) -> None:
    wire = signed_query().to_wire()
    at = wire.index(b"\x0bunknown-key")
    with pytest.raises(QueryError) as info:
        parse_query_untrusted(wire[:at] + mutate(wire[at:]))
    assert isinstance(info.value.cause, BadTSIG), name


def test_compressed_tsig_owner_is_read_whole() -> None:
    # Owner "key.www.example.com." written as the label "key" and a pointer to the qname.
    msg = signed_query()
    wire = msg.to_wire()
    at = wire.index(b"\x0bunknown-key")
    rr = wire[at + len(b"\x0bunknown-key\x00") :]
    query = parse_query_untrusted(wire[:at] + b"\x03key\xc0\x0c" + rr)
    assert query.tsig is not None
    assert query.tsig.key_name == b"\x03key\x03www\x07example\x03com\x00"


def test_tsig_name_pointer_loop_is_formerr() -> None:
    wire = signed_query().to_wire()
    at = wire.index(b"\x0bunknown-key")
    rr = wire[at + len(b"\x0bunknown-key\x00") :]
    looped = wire[:at] + struct.pack("!H", 0xC000 | at) + rr  # points at itself
    with pytest.raises(QueryError):
        parse_query_untrusted(looped)


@pytest.mark.parametrize("length", [0, 1, 7, 9, 15, 41, 64])
def test_cookie_of_a_bad_length_is_formerr_keeping_the_opt(length: int) -> None:
    # RFC 7873 5.2.2: shorter than a client cookie, between 9 and 15, or over 40 octets.
    option = struct.pack("!HH", 10, length) + b"\x07" * length
    opt = b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00" + struct.pack("!H", len(option)) + option
    with pytest.raises(QueryError) as info:
        parse_query_untrusted(with_counts(1, 0, 0, 1, QUESTION + opt))
    assert isinstance(info.value.cause, BadCookie)
    assert info.value.edns is not None


@pytest.mark.parametrize("length", [8, 16, 24, 40])
def test_cookie_of_a_valid_length_is_kept(length: int) -> None:
    option = struct.pack("!HH", 10, length) + b"\x07" * length
    opt = b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00" + struct.pack("!H", len(option)) + option
    query = parse_query_untrusted(with_counts(1, 0, 0, 1, QUESTION + opt))
    assert query.edns is not None and query.edns.cookie == b"\x07" * length


def test_ede_option_layout() -> None:
    assert ede_option(18, "no") == b"\x00\x0f\x00\x04\x00\x12no"
    assert ede_option(20) == b"\x00\x0f\x00\x02\x00\x14"
