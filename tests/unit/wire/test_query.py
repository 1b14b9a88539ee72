"""Parsing untrusted query bytes: each malformed shape raises one MalformedQuery family."""

from __future__ import annotations

import struct

import dns.edns
import dns.message
import pytest

from geodns.errors import BadECS, BadEDNS, BadQuestion, MalformedQuery, ShortHeader, TrailingJunk
from geodns.wire.edns import ClientSubnet, build_opt, parse_ecs_untrusted
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
