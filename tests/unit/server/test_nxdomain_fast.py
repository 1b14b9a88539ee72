"""The random-name path (PlainPath.untrusted) against the full lookup.

For names no zone lists (NXDOMAIN, below a delegation, outside our zones), the fast path
must send what the full path sends: rcode, flags, the SOA and its negative TTL or the
referral's NS and glue, the question in the query's own case, and the OPT (payload, DO,
NSID, ECS echoed with scope 0, EDE). And a flood of random names may neither
grow the answer caches past their bounds nor evict a cached answer for a real name.
"""

from __future__ import annotations

import random
import string

import dns.edns
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
from hypothesis import given, settings
from hypothesis import strategies as st

from geodns.server import answer as answer_module
from geodns.server.answer import TCP, UDP, Answerer, Peer, ServerOptions
from geodns.server.stats import ReplyKey
from geodns.zones.loader import load_zones
from tests.conftest import ROOT

ZONES = load_zones([ROOT / "zones", ROOT / "tests" / "data" / "zones"])
OPTIONS = ServerOptions(server_id="ns-test")


def full_path_answerer() -> Answerer:
    """The reference: every query takes the full lookup and dnspython's encoder."""
    answerer = Answerer(ZONES, OPTIONS)
    index = answerer._wire_index
    index.nxdomain_body = lambda qname: None  # type: ignore[method-assign]
    index.referral_cut = lambda qname: None  # type: ignore[method-assign]
    index.outside = lambda qname: False  # type: ignore[method-assign]
    return answerer


FAST = Answerer(ZONES, OPTIONS)
SLOW = full_path_answerer()

# Under each suffix: plain NXDOMAIN (example.com, other.example, example.org), below a
# delegation (sub.example.com, deleg.test.example), a wildcard zone (test.example), an
# empty non-terminal's children (_tcp.example.com), a service (inference.example.com),
# and no zone of ours (example.net).
SUFFIXES = [
    "example.com",
    "other.example",
    "example.org",
    "sub.example.com",
    "_tcp.example.com",
    "inference.example.com",
    "test.example",
    "deleg.test.example",
    "example.net",
]
label = st.text(alphabet=string.ascii_letters + string.digits + "-_", min_size=1, max_size=20)
qtypes = st.sampled_from(["A", "AAAA", "TXT", "NS", "SOA", "MX", "ANY", "CNAME", "SRV", "TYPE999"])
ecs = st.sampled_from(
    [None, ("192.0.2.0", 24), ("198.51.100.7", 32), ("2001:db8::", 56), ("0.0.0.0", 0)]
)


def make_query(
    name: str,
    rdtype: str,
    qid: int,
    rd: bool,
    cd: bool,
    edns: int | None,
    do: bool,
    nsid: bool,
    subnet: tuple[str, int] | None,
) -> bytes:
    options: list[dns.edns.Option] = []
    if nsid:
        options.append(dns.edns.NSIDOption(b""))
    if subnet is not None:
        options.append(dns.edns.ECSOption(*subnet))
    query = dns.message.make_query(
        name,
        rdtype,
        use_edns=edns is not None and 0,
        payload=edns or 1232,
        want_dnssec=do and edns is not None,
        options=options if edns is not None else None,
    )
    query.id = qid
    query.flags = (dns.flags.RD if rd else 0) | (dns.flags.CD if cd else 0)
    return query.to_wire()


def assert_same(wire: bytes, transport: str = UDP) -> dns.message.Message:
    peer = Peer("192.0.2.53", 5353, transport)
    fast_wire = FAST.answer(wire, peer)
    slow_wire = SLOW.answer(wire, peer)
    assert fast_wire is not None and slow_wire is not None
    fast = dns.message.from_wire(fast_wire)
    slow = dns.message.from_wire(slow_wire)
    assert fast.id == slow.id
    assert fast.flags == slow.flags
    assert fast.rcode() == slow.rcode()
    assert fast.question == slow.question
    # The question as sent, byte for byte: its case is the query's.
    question_end = 12 + len(dns.message.from_wire(wire).question[0].name.to_wire()) + 4
    assert fast_wire[12:question_end] == wire[12:question_end]
    for mine, theirs in ((fast.answer, slow.answer), (fast.authority, slow.authority)):
        assert mine == theirs
        assert [r.ttl for r in mine] == [r.ttl for r in theirs]
    assert fast.additional == slow.additional
    assert fast.edns == slow.edns
    assert fast.payload == slow.payload
    assert fast.ednsflags == slow.ednsflags
    assert sorted(o.to_text() for o in fast.options) == sorted(o.to_text() for o in slow.options)
    return fast


@settings(max_examples=600, deadline=None)
@given(
    st.lists(label, min_size=1, max_size=3),
    st.sampled_from(SUFFIXES),
    qtypes,
    st.integers(0, 0xFFFF),
    st.booleans(),
    st.booleans(),
    st.sampled_from([None, 512, 1232, 4096]),
    st.booleans(),
    st.booleans(),
    ecs,
    st.sampled_from([UDP, TCP]),
)
def test_random_names_get_what_the_full_lookup_gives(
    labels: list[str],
    suffix: str,
    rdtype: str,
    qid: int,
    rd: bool,
    cd: bool,
    edns: int | None,
    do: bool,
    nsid: bool,
    subnet: tuple[str, int] | None,
    transport: str,
) -> None:
    name = ".".join([*labels, suffix])
    assert_same(make_query(name, rdtype, qid, rd, cd, edns, do, nsid, subnet), transport)


def test_the_fast_path_answers_a_random_name_and_counts_it_as_the_full_path() -> None:
    fast, slow = Answerer(ZONES, OPTIONS), full_path_answerer()
    wire = make_query("Zq9-x.Example.COM", "AAAA", 7, True, False, 1232, True, False, None)
    assert fast._plain.untrusted(wire, UDP) is not None
    for answerer in (fast, slow):
        reply = dns.message.from_wire(answerer.answer(wire, Peer("127.0.0.1", 53, UDP)))
        assert reply.rcode() == dns.rcode.NXDOMAIN
        soa = reply.authority[0]
        assert soa.rdtype == dns.rdatatype.SOA and soa.ttl == ZONES.find(soa.name).negative_ttl
        key = ReplyKey("example.com", dns.rdatatype.AAAA, dns.rcode.NXDOMAIN)
        assert answerer.stats.counts[UDP][answerer.stats.key_id(key)] == 1
    # Kept only where unlisted names are: the next one is a cache hit, counted the same.
    assert not fast._exact[UDP] and not fast._prepared_unlisted
    assert wire[2:] in fast._unlisted[UDP]
    again = fast.answer(b"\x12\x34" + wire[2:], Peer("127.0.0.1", 53, UDP))
    assert again is not None and again[:2] == b"\x12\x34"
    assert dns.message.from_wire(again).rcode() == dns.rcode.NXDOMAIN
    key = ReplyKey("example.com", dns.rdatatype.AAAA, dns.rcode.NXDOMAIN)
    assert fast.stats.counts[UDP][fast.stats.key_id(key)] == 2


def test_what_the_fast_path_declines_takes_the_full_path() -> None:
    cases = [
        make_query("www.example.com", "A", 1, True, False, None, False, False, None),  # exists
        make_query("ns1.sub.example.com", "A", 2, True, False, None, False, False, None),  # glue
        make_query("sub.example.com", "NS", 2, True, False, None, False, False, None),  # the cut
        make_query("x.wild.test.example", "A", 3, True, False, None, False, False, None),
        make_query("x.example.com", "AXFR", 5, False, False, None, False, False, None),
        make_query("x.example.net", "AXFR", 5, False, False, None, False, False, None),
    ]
    for wire in cases:
        assert FAST._plain.untrusted(wire, UDP) is None
        assert_same(wire)


def test_a_server_cookie_or_edns_version_1_takes_the_full_path() -> None:
    cookie = dns.message.make_query(
        "nosuch.example.com", "A", options=[dns.edns.CookieOption(b"clientck", b"")]
    )
    version1 = dns.message.make_query("nosuch.example.com", "A", use_edns=1)
    for query in (cookie, version1):
        wire = query.to_wire()
        assert FAST._plain.untrusted(wire, UDP) is None
        assert_same(wire)


def test_below_a_cut_and_outside_our_zones_the_fast_path_answers() -> None:
    for name, rcode in (
        ("x.Y.sub.example.com", dns.rcode.NOERROR),
        ("a.deleg.test.example", dns.rcode.NOERROR),
        ("x.example.net", dns.rcode.REFUSED),
    ):
        for edns in (None, 1232):
            wire = make_query(name, "A", 6, True, True, edns, False, True, ("192.0.2.0", 24))
            assert FAST._plain.untrusted(wire, UDP) is not None
            assert assert_same(wire).rcode() == rcode


def test_a_name_too_long_for_512_octets_is_truncated_as_before() -> None:
    name = ".".join(["a" * 63] * 3 + ["b" * 40, "example.com"])
    wire = make_query(name, "A", 9, True, False, None, False, False, None)
    reply = assert_same(wire)
    assert reply.rcode() == dns.rcode.NXDOMAIN


def flood_names(count: int, rng: random.Random) -> list[str]:
    """Plain NXDOMAIN, below a delegation, outside every zone (the fast path), and in a
    zone with a wildcard (the full path, whose replies enter the unlisted caches)."""
    letters = string.ascii_lowercase + string.digits
    names = []
    for i in range(count):
        suffix = ("example.com", "sub.example.com", "example.net", "test.example")[i % 4]
        names.append("".join(rng.choice(letters) for _ in range(12)) + "." + suffix)
    return names


def test_a_flood_of_50000_random_names_neither_evicts_real_answers_nor_grows_caches() -> None:
    answerer = Answerer(ZONES, OPTIONS)
    peer = Peer("192.0.2.53", 5353, UDP)
    real = dns.message.make_query("www.example.com", "A", use_edns=False)
    real_wire = real.to_wire()
    first = answerer.answer(real_wire, peer)
    assert real_wire[2:] in answerer._exact[UDP]
    prepared_before = dict(answerer._prepared)
    for name in flood_names(50_000, random.Random(13)):
        query = dns.message.make_query(name, "A", use_edns=False)
        assert answerer.answer(query.to_wire(), peer) is not None
    assert answerer._exact[UDP][real_wire[2:]][0] == first[2:]
    assert answerer._prepared == prepared_before
    assert len(answerer._exact[UDP]) == 1
    assert 0 < len(answerer._unlisted[UDP]) <= answer_module.UNLISTED_CACHE_SIZE
    assert 0 < len(answerer._prepared_unlisted) <= answer_module.UNLISTED_CACHE_SIZE
    assert answerer.answer(real_wire, peer) == first
