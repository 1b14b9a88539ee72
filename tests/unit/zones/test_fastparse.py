"""The zone loader's shortcuts build exactly what dnspython's general parsers build.

Each shortcut in geodns.zones.fastparse either declines (None / False: the loader then
takes dnspython's path, errors included) or gives the object the general path gives:
same class, same slot values, same wire form, same hash. Random valid and invalid input.
"""

from __future__ import annotations

import ipaddress
import pickle

import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geodns.errors import ConfigErrors
from geodns.yamlsource import load_yaml
from geodns.zones import fastparse
from geodns.zones.loader import build_zone
from geodns.zones.services import parse_address

IN = dns.rdataclass.IN
RT = dns.rdatatype.RdataType


def slots(obj: object) -> dict[str, object]:
    names = [s for cls in type(obj).__mro__ for s in getattr(cls, "__slots__", ())]
    return {name: getattr(obj, name) for name in names}


def assert_same_rdata(fast: dns.rdata.Rdata, slow: dns.rdata.Rdata) -> None:
    assert type(fast) is type(slow)
    assert slots(fast) == slots(slow)
    assert {k: type(v) for k, v in slots(fast).items()} == {
        k: type(v) for k, v in slots(slow).items()
    }
    assert fast == slow and hash(fast) == hash(slow)
    assert fast.to_wire() == slow.to_wire() and fast.to_text() == slow.to_text()
    assert pickle.loads(pickle.dumps(fast)) == slow


octet = st.integers(0, 255)
ipv4_like = st.one_of(
    st.ip_addresses(v=4).map(str),
    st.tuples(octet, octet, octet, octet).map(lambda t: ".".join(map(str, t))),
    # leading zeros, out of range, wrong counts, spaces, other characters
    st.lists(st.integers(0, 999).map(lambda n: st_format(n)), min_size=1, max_size=6).map(".".join),
    st.text(alphabet="0123456789. x:-/%", max_size=20),
)


def st_format(n: int) -> str:
    return f"{n:03d}" if n % 7 == 0 else str(n)


@given(ipv4_like)
@settings(max_examples=1000, deadline=None)
def test_ipv4_shortcut_takes_exactly_the_canonical_addresses(text: str) -> None:
    ip = parse_address(text)
    canonical = ip is not None and ip.version == 4 and str(ip) == text
    assert fastparse.ipv4_text(text) == canonical
    if canonical:
        assert_same_rdata(fastparse.a_rdata(text), dns.rdata.from_text(IN, RT.A, text))


@given(st.ip_addresses(v=6))
@settings(max_examples=500, deadline=None)
def test_aaaa_from_bytes_is_from_text(ip: ipaddress.IPv6Address) -> None:
    assert_same_rdata(fastparse.aaaa_rdata(ip.packed), dns.rdata.from_text(IN, RT.AAAA, str(ip)))


ORIGINS = [dns.name.from_text(t) for t in ("example.com.", ".", "a.b-c.d.", "Sub.Example.COM.")]
plain_label = st.text(alphabet="abcXYZ019_-*", min_size=1, max_size=10)
label_text = st.text(alphabet="abcXYZ019_-*.\\é @", min_size=0, max_size=12)
name_text = st.one_of(
    st.lists(label_text, min_size=1, max_size=5).map(".".join),
    st.tuples(label_text, st.sampled_from(["example.com", "EXAMPLE.Com", "b-c.d", "com", "."])).map(
        lambda t: f"{t[0]}.{t[1]}"
    ),
    # plain labels, ending in an origin (any case) or a part of one
    st.tuples(
        st.lists(plain_label, min_size=0, max_size=3),
        st.sampled_from(["example.com", "EXAMPLE.Com", "a.B-c.d", "b-c.d", "sub.example.com", "d"]),
    ).map(lambda t: ".".join([*t[0], t[1]])),
    # labels near 63 octets and names near 255
    st.tuples(st.integers(1, 70), st.integers(1, 8)).map(lambda t: ".".join(["x" * t[0]] * t[1])),
)


def reference_name(text: str, origin: dns.name.Name, canonical: bool) -> dns.name.Name:
    """What the loader made of a name without a trailing dot before the shortcut."""
    name = dns.name.from_text(text, origin=None)
    if name.is_subdomain(origin.relativize(dns.name.root)):
        name = name.derelativize(dns.name.root)
    else:
        name = name.derelativize(origin)
    return name.canonicalize() if canonical else name


@given(name_text, st.sampled_from(ORIGINS), st.booleans())
@settings(max_examples=2000, deadline=None)
def test_relative_name_shortcut_is_dnspythons_name(
    text: str, origin: dns.name.Name, canonical: bool
) -> None:
    origin = origin.canonicalize()  # as the loader holds it
    fast = fastparse.relative_name(text, origin, canonical)
    try:
        slow = reference_name(text, origin, canonical)
    except dns.exception.DNSException:
        assert fast is None  # the loader reports dnspython's error
        return
    if fast is not None:
        assert type(fast) is dns.name.Name
        assert fast.labels == slow.labels  # exactly, case included (Name == ignores case)
        assert hash(fast) == hash(slow) and fast.is_subdomain(origin)
        assert pickle.loads(pickle.dumps(fast)).labels == slow.labels


def test_relative_name_shortcut_declines_what_it_cannot_read() -> None:
    origin = dns.name.from_text("example.com.")
    for text in ("@", "www.", "a\\.b", "bücher", "a..b", "", " www", "x" * 64):
        assert fastparse.relative_name(text, origin, canonical=True) is None
    name = fastparse.relative_name("WWW", origin, canonical=False)
    assert name is not None and name.labels == (b"WWW", b"example", b"com", b"")


absolute_names = st.lists(
    st.binary(min_size=1, max_size=20)
    | st.text(alphabet='abcXYZ019_-*.\\@() "', min_size=1, max_size=20).map(str.encode),
    min_size=0,
    max_size=4,
).map(lambda labels: dns.name.Name([*labels, b""]))


@given(absolute_names, st.sampled_from([RT.CNAME, RT.NS, RT.PTR, RT.DNAME]))
@settings(max_examples=1000, deadline=None)
def test_name_rdata_is_from_text(target: dns.name.Name, rdtype: RT) -> None:
    fast = fastparse.name_rdata(rdtype, target)
    assert_same_rdata(fast, dns.rdata.from_text(IN, rdtype, target.to_text()))
    assert fast.target.labels == target.labels  # type: ignore[attr-defined]


rdata_lists = st.lists(
    st.one_of(
        st.sampled_from(["192.0.2.1", "192.0.2.2", "10.0.0.1"]).map(
            lambda t: dns.rdata.from_text(IN, RT.A, t)
        ),
        st.sampled_from(["a.example.", "b.example."]).map(
            lambda t: dns.rdata.from_text(IN, RT.CNAME, t)
        ),
        st.sampled_from(['"x"', '"y" "z"']).map(lambda t: dns.rdata.from_text(IN, RT.TXT, t)),
    ),
    min_size=1,
    max_size=6,
)


@given(rdata_lists, st.integers(0, 2**31 - 1))
@settings(max_examples=500, deadline=None)
def test_rrset_is_from_rdata_list(rdatas: list[dns.rdata.Rdata], ttl: int) -> None:
    owner = dns.name.from_text("www.example.com.")
    try:
        slow = dns.rrset.from_rdata_list(owner, ttl, rdatas)
    except Exception as exc:  # mixed types: the same exception from both
        with pytest.raises(type(exc)):
            fastparse.rrset(owner, ttl, rdatas)
        return
    fast = fastparse.rrset(owner, ttl, rdatas)
    assert type(fast) is type(slow) and fast == slow
    assert list(fast) == list(slow) and fast.ttl == slow.ttl
    assert (fast.name, fast.rdclass, fast.rdtype, fast.covers, fast.deleting) == (
        slow.name,
        slow.rdclass,
        slow.rdtype,
        slow.covers,
        slow.deleting,
    )
    assert type(fast.items) is type(slow.items)
    assert fast.to_text() == slow.to_text()


@given(name_text)
@settings(max_examples=500, deadline=None)
def test_parent_is_dnspythons_parent(text: str) -> None:
    try:
        name = dns.name.from_text(text)
    except dns.exception.DNSException:
        return
    while True:
        try:
            slow = name.parent()
        except dns.name.NoParent:
            with pytest.raises(dns.name.NoParent):
                fastparse.parent(name)
            return
        fast = fastparse.parent(name)
        assert type(fast) is dns.name.Name and fast.labels == slow.labels
        name = fast


# --- the loader with and without the shortcuts ----------------------------------------------

OWNERS = [
    "www", "WWW", "h1", "a.b", "A.B", "x.example.com", "X.Example.COM", "www.example.com.",
    "y.example.org.", "'@'", "'*'", "'*.w'", "bücher", "a\\.b", "_srv._tcp", "sub", "ns1.sub",
    "deep.ns1.sub", "x" * 64, ".".join(["abcdefghij" * 6] * 5), "a..b", "Sub", "inference",
    "us-east-1.inference", "h-9", "1", "NO",
]  # fmt: skip
VALUES = {
    "A": ["192.0.2.1", "192.0.2.01", "' 10.0.0.1 '", "1.2.3", "256.1.1.1", "2001:db8::1",
          "0.0.0.0", "1", "[192.0.2.1, 192.0.2.2]", "[192.0.2.1, 192.0.2.1]", "[]"],
    "AAAA": ['"2001:db8::1"', '"::ffff:1.2.3.4"', "192.0.2.1", '"2001:DB8::A"', '"fe80::1%eth0"'],
    "CNAME": ["www", "www.example.com.", "'@'", "Other.Example.COM", "a\\.b", '""', "[a, b]"],
    "NS": ["ns1.sub", "[ns1.sub, ns2.sub]", "ns.example.net."],
    "PTR": ["host", "Host.Example.Com."],
    "MX": ['"10 mail"', "{preference: 5, exchange: MAIL}", '"x mail"'],
    "TXT": ["hello", "[a, b]"],
    "a": ["192.0.2.9"],
    "BOGUS": ["x"],
    "ttl": ["60", "-1"],
}  # fmt: skip

owner_lines = st.lists(
    st.tuples(
        st.sampled_from(OWNERS),
        st.lists(
            st.sampled_from(sorted(VALUES)).flatmap(
                lambda t: st.sampled_from(VALUES[t]).map(lambda v: f"{t}: {v}")
            ),
            min_size=1,
            max_size=3,
            unique_by=lambda s: s.split(":")[0],
        ),
    ),
    min_size=1,
    max_size=10,
    unique_by=lambda t: t[0],
)


def zone_text(owners: list[tuple[str, list[str]]], service: bool) -> str:
    lines = ["zone: example.com", "soa: {mname: ns1, rname: hostmaster}", "ns: [ns1]", "records:"]
    lines += [f"  {owner}: {{{', '.join(rrsets)}}}" for owner, rrsets in owners]
    if service:
        lines += [
            "services:",
            "  inference:",
            "    regions:",
            "      r1: {addresses: [192.0.2.10]}",
        ]
    return "\n".join(lines) + "\n"


def outcome(text: str) -> object:
    """Everything a load gives: the zone's records and names, or its error messages."""
    try:
        zone = build_zone(load_yaml(text, "z.yaml"))
    except ConfigErrors as exc:
        return [str(e) for e in exc.errors]
    records = [
        (
            owner.labels,
            rdtype,
            rrset.ttl,
            [(type(r), r.to_text(), r.to_digestable()) for r in rrset],
        )
        for owner, node in zone.nodes.items()
        for rdtype, rrset in node.items()
    ]
    names = sorted(n.labels for n in zone.existing), sorted(n.labels for n in zone.delegations)
    return records, names


DECLINING = {
    "relative_name": lambda text, origin, canonical: None,
    "ipv4_text": lambda text: False,
    "aaaa_rdata": lambda packed: dns.rdata.from_text(
        IN, RT.AAAA, str(ipaddress.IPv6Address(packed))
    ),
    "name_rdata": lambda rdtype, target: dns.rdata.from_text(IN, rdtype, target.to_text()),
    "rrset": dns.rrset.from_rdata_list,
    "parent": lambda name: name.parent(),
}


@given(owner_lines, st.booleans())
@settings(max_examples=300, deadline=None)
def test_the_loader_builds_and_reports_the_same_without_its_shortcuts(
    owners: list[tuple[str, list[str]]], service: bool
) -> None:
    text = zone_text(owners, service)
    fast = outcome(text)
    saved = {name: getattr(fastparse, name) for name in DECLINING}
    try:
        for name, general in DECLINING.items():
            setattr(fastparse, name, general)
        slow = outcome(text)
    finally:
        for name, shortcut in saved.items():
            setattr(fastparse, name, shortcut)
    assert fast == slow
