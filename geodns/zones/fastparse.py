"""Cheap ways to the dnspython objects a zone is made of, for the shapes most records have.

A zone of 10,000 records spent most of its build in dnspython's general text parsers:
`dns.rdata.from_text` runs a tokenizer and validates class and type for every A record
(14 us), `dns.name.from_text` scans every character of every owner name, and
`dns.rrset.from_rdata_list` hashes every rdata twice. The text shortcuts here (ipv4_text,
relative_name) take only the common, plainly valid text and decline anything else (an
escape, a non-ASCII name, a name too long, an address not written canonically), which the
loader then gives to dnspython as before: what is built, and every error message, are
dnspython's either way. The others build from values already parsed and validated (an
address's bytes, a target Name, a list of rdata of one type), or fall back to dnspython's
function where they would differ (singleton types, signatures).
`tests/unit/zones/test_fastparse.py` holds each of them to the general path it replaces,
for random valid and invalid input, and the loader with them to the loader without them.

The rdata and names are made without their constructors, which would validate again what
was just validated; they are the same objects (same class, same slots) as dnspython makes,
so equality, hashing, wire form and pickling are unchanged.
"""

from __future__ import annotations

import re

import dns.ipv6
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.IN.A
import dns.rdtypes.IN.AAAA
import dns.rrset

IN = dns.rdataclass.IN
RT = dns.rdatatype.RdataType

_set = object.__setattr__  # dnspython's objects refuse attribute writes outside __init__
_A = dns.rdtypes.IN.A.A
_AAAA = dns.rdtypes.IN.AAAA.AAAA
_Name = dns.name.Name

# A dotted quad exactly as ipaddress and dnspython print it: no leading zeros, 0-255.
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")
# Labels of letters, digits, `_`, `-` and `*`: text that dnspython's name parser keeps
# byte for byte (no escapes, no IDNA), 1 to 63 characters each (RFC 1035 2.3.4).
_LABELS = re.compile(r"[A-Za-z0-9_*-]{1,63}(?:\.[A-Za-z0-9_*-]{1,63})*")


def ipv4_text(text: str) -> bool:
    """True when `text` is an IPv4 address in the canonical form ipaddress prints."""
    return _IPV4.fullmatch(text) is not None


def a_rdata(address: str) -> dns.rdata.Rdata:
    """The A rdata of a canonical dotted quad (see ipv4_text): dns.rdata.from_text's."""
    rd = _A.__new__(_A)
    _set(rd, "rdclass", IN)
    _set(rd, "rdtype", RT.A)
    _set(rd, "rdcomment", None)
    _set(rd, "address", address)
    return rd


def aaaa_rdata(packed: bytes) -> dns.rdata.Rdata:
    """The AAAA rdata of 16 address bytes, written as dnspython writes it."""
    rd = _AAAA.__new__(_AAAA)
    _set(rd, "rdclass", IN)
    _set(rd, "rdtype", RT.AAAA)
    _set(rd, "rdcomment", None)
    _set(rd, "address", dns.ipv6.inet_ntoa(packed))
    return rd


def relative_name(text: str, origin: dns.name.Name, canonical: bool) -> dns.name.Name | None:
    """A name written without a trailing dot, as the zone loader reads it: absolute when it
    already ends in the origin (`www.example.com` in example.com), else under the origin;
    lowercased when `canonical`. None when the text is not plain labels (escapes, non-ASCII,
    `@`, a trailing dot) or the name would be too long: the caller parses it in full."""
    if _LABELS.fullmatch(text) is None:
        return None
    if canonical:
        text = text.lower()
    labels = tuple(text.encode("ascii").split(b"."))
    suffix = origin.labels[:-1]  # the origin without its root label
    n = len(suffix)
    if n and len(labels) >= n and _lower(labels[-n:]) == _lower(suffix):
        labels = (*labels, b"")
    else:
        labels = labels + origin.labels
    # RFC 1035 2.3.4: 255 octets on the wire, a length octet before each label.
    if sum(map(len, labels)) + len(labels) > 255:
        return None
    name = _Name.__new__(_Name)
    _set(name, "labels", labels)
    return name


def _lower(labels: tuple[bytes, ...]) -> tuple[bytes, ...]:
    return tuple(label.lower() for label in labels)


def rrset(owner: dns.name.Name, ttl: int, rdatas: list[dns.rdata.Rdata]) -> dns.rrset.RRset:
    """dns.rrset.from_rdata_list(owner, ttl, rdatas), hashing each rdata once."""
    first = rdatas[0]
    rdtype = first.rdtype
    if (
        dns.rdatatype.is_singleton(rdtype)
        or rdtype in (RT.RRSIG, RT.SIG)
        or any(rd.rdtype != rdtype or rd.rdclass != first.rdclass for rd in rdatas)
    ):
        return dns.rrset.from_rdata_list(owner, ttl, rdatas)
    out = dns.rrset.RRset(owner, first.rdclass, rdtype)
    out.ttl = ttl
    out.items = dict.fromkeys(rdatas)  # a dns.set.Set is its dict's keys, in order
    return out


def parent(name: dns.name.Name) -> dns.name.Name:
    """name.parent(), without validating again the labels of a valid name."""
    labels = name.labels
    if len(labels) <= 1:
        return name.parent()  # the root or the empty name: dnspython's NoParent
    out = _Name.__new__(_Name)
    _set(out, "labels", labels[1:])
    return out


def name_rdata(rdtype: RT, target: dns.name.Name) -> dns.rdata.Rdata:
    """dns.rdata.from_text(IN, rdtype, target.to_text()) for a type whose data is one name
    (CNAME, NS, PTR, DNAME): the text would only be parsed back into the same labels."""
    cls = dns.rdata.get_rdata_class(IN, rdtype)
    return cls(IN, rdtype, target)
