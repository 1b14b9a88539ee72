"""The direct encoding of the plainest answer (prepared._plain_answer: one RRset of A, AAAA or
TXT records at the question's name) against dnspython's renderer, which encodes every
other reply: for random owners (any case), TTLs, classes and records, the Prepared is the
same, so that the reply bytes are too."""

from __future__ import annotations

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from hypothesis import given, settings
from hypothesis import strategies as st

from geodns.server import prepared
from geodns.server.prepared import encode_resolution
from geodns.zones.lookup import Resolution

labels = st.text(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-", min_size=1, max_size=20
)
names = st.lists(labels, min_size=1, max_size=4).map(lambda ls: ".".join(ls) + ".example.com.")
ipv4 = st.integers(0, (1 << 32) - 1).map(
    lambda v: ".".join(str(v >> s & 255) for s in (24, 16, 8, 0))
)
ipv6 = st.binary(min_size=16, max_size=16).map(
    lambda b: dns.rdata.from_wire(dns.rdataclass.IN, dns.rdatatype.AAAA, b, 0, 16).to_text()
)
txt = st.lists(st.binary(max_size=80), min_size=1, max_size=3).map(
    lambda parts: " ".join('"' + "".join(f"\\{c:03d}" for c in p) + '"' for p in parts)
)
records = st.one_of(
    st.tuples(st.just("A"), st.lists(ipv4, min_size=1, max_size=6)),
    st.tuples(st.just("AAAA"), st.lists(ipv6, min_size=1, max_size=6)),
    st.tuples(st.just("TXT"), st.lists(txt, min_size=1, max_size=4)),
)


def _case(name: str, flips: int) -> str:
    return "".join(c.swapcase() if flips >> (i % 60) & 1 else c for i, c in enumerate(name))


def _slow(qname, qtype, res):
    """encode_resolution with the direct encoding turned off: dnspython's renderer."""
    plain = prepared._plain_answer
    prepared._plain_answer = lambda *args: None
    try:
        return encode_resolution(qname, qtype, dns.rdataclass.IN, res)
    finally:
        prepared._plain_answer = plain


@settings(max_examples=400, deadline=None)
@given(
    names,
    st.integers(0, (1 << 60) - 1),
    st.integers(0, 2**31 - 1),
    records,
    st.booleans(),
    st.sampled_from(["same", "ANY"]),
)
def test_the_direct_encoding_is_dnspythons(name, flips, ttl, rdata, authoritative, asked):
    rdtype, texts = rdata
    owner = dns.name.from_text(_case(name, flips))
    rrset = dns.rrset.from_text_list(owner, ttl, "IN", rdtype, texts)
    qname = dns.name.from_text(name.lower())
    qtype = dns.rdatatype.from_text(rdtype if asked == "same" else "ANY")
    res = Resolution(dns.rcode.NOERROR, authoritative, answer=(rrset,))
    fast = encode_resolution(qname, qtype, dns.rdataclass.IN, res)
    assert prepared._plain_answer(qname, rrset) is not None
    assert fast == _slow(qname, qtype, res)


def test_other_shapes_are_left_to_dnspython() -> None:
    qname = dns.name.from_text("www.example.com.")
    cname = dns.rrset.from_text(qname, 60, "IN", "CNAME", "web.example.com.")
    other = dns.rrset.from_text("web.example.com.", 60, "IN", "A", "192.0.2.1")
    mx = dns.rrset.from_text(qname, 60, "IN", "MX", "10 mail.example.com.")
    assert prepared._plain_answer(qname, cname) is None  # a name in the RDATA
    assert prepared._plain_answer(qname, mx) is None
    assert prepared._plain_answer(qname, other) is None  # not the question's name
    res = Resolution(dns.rcode.NOERROR, True, answer=(cname, other))
    assert encode_resolution(qname, 1, 1, res) == _slow(qname, 1, res)
