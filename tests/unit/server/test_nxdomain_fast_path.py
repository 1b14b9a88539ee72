"""The byte-level NXDOMAIN shortcut must answer exactly what the full lookup answers."""

from __future__ import annotations

import dns.message
import dns.name
from hypothesis import given, settings
from hypothesis import strategies as st

from geodns.server.answer import UDP, Answerer, Peer
from geodns.zones.loader import load_zones
from tests.conftest import ROOT

ZONES = load_zones([ROOT / "zones", ROOT / "tests" / "data" / "zones"])
PEER = Peer("127.0.0.1", 5353, UDP)


def full_lookup_answerer() -> Answerer:
    answerer = Answerer(ZONES)
    answerer._wire_index.nxdomain_body = lambda qname: None  # type: ignore[method-assign]
    return answerer


FAST = Answerer(ZONES)
SLOW = full_lookup_answerer()

KNOWN = [
    "www.example.com",
    "example.com",
    "_tcp.example.com",
    "inference.example.com",
    "sub.example.com",
    "x.sub.example.com",
    "ns1.sub.example.com",
    "c.test.example",
    "b.c.test.example",
    "x.wild.test.example",
    "deleg.test.example",
    "a.deleg.test.example",
    "other.example",
    "example.org",
    "nosuch.example.com",
    "a.b.nosuch.example.com",
]

labels = st.sampled_from(
    [
        "www",
        "x",
        "sub",
        "c",
        "b",
        "a",
        "wild",
        "deleg",
        "ns1",
        "_tcp",
        "*",
        "inference",
        "nosuch",
        "WWW",
        "Sub",
    ]
)
suffixes = st.sampled_from(["example.com", "test.example", "other.example", "example.org"])


def both(name: str, rdtype: str = "A") -> tuple[dns.message.Message, dns.message.Message]:
    wire = dns.message.make_query(name, rdtype).to_wire()
    return (
        dns.message.from_wire(FAST.answer(wire, PEER)),
        dns.message.from_wire(SLOW.answer(wire, PEER)),
    )


def assert_same(name: str, rdtype: str = "A") -> None:
    fast, slow = both(name, rdtype)
    assert fast.rcode() == slow.rcode(), name
    assert fast.flags == slow.flags, name
    assert fast.answer == slow.answer, name
    assert fast.authority == slow.authority, name
    for a, b in zip(fast.authority, slow.authority, strict=True):
        assert a.ttl == b.ttl
    assert fast.additional == slow.additional, name


def test_known_names() -> None:
    for name in KNOWN:
        assert_same(name)


@settings(max_examples=300, deadline=None)
@given(st.lists(labels, min_size=0, max_size=4), suffixes, st.sampled_from(["A", "TXT", "NS"]))
def test_any_name_near_the_zones(prefix: list[str], suffix: str, rdtype: str) -> None:
    assert_same(".".join([*prefix, suffix]), rdtype)
