"""Answer one question from the zones: RFC 1034 4.3.2 for an authoritative server.

A pure function of (zones, qname, qtype). It says which RRsets go in which
section; encoding to wire and caching happen in `geodns.server.answer`.
"""

from __future__ import annotations

from dataclasses import dataclass

import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from geodns.zones.model import Zone, ZoneSet

RT = dns.rdatatype.RdataType
Rcode = dns.rcode.Rcode
RRset = dns.rrset.RRset
Node = dict[RT, RRset]

MAX_CNAME_CHAIN = 8  # as BIND and Knot do: enough for real chains, bounded for loops
# Targets of these types get their in-zone addresses in the additional section (RFC 1035 3.3).
_ADDITIONAL_TARGET = {RT.NS: "target", RT.MX: "exchange", RT.SRV: "target"}


@dataclass(frozen=True, slots=True)
class Resolution:
    """What to answer: an rcode, the AA bit, and the RRsets of each section."""

    rcode: Rcode
    authoritative: bool
    answer: tuple[RRset, ...] = ()
    authority: tuple[RRset, ...] = ()
    additional: tuple[RRset, ...] = ()
    # A referral's glue must not be dropped to fit a UDP size: truncate instead (RFC 9471).
    glue_required: bool = False
    # An Extended DNS Error (RFC 8914): (INFO-CODE, EXTRA-TEXT), sent when the query had EDNS.
    ede: tuple[int, str] | None = None


REFUSED = Resolution(Rcode.REFUSED, authoritative=False)


def resolve(zones: ZoneSet, qname: dns.name.Name, qtype: RT) -> Resolution:
    """The answer for (qname, IN, qtype): REFUSED when no zone holds qname."""
    zone = zones.find(qname)
    if zone is None:
        return REFUSED
    first = _in_zone(zone, qname, qtype)
    if first.cname_target is None:
        return first.resolution
    # Chase the CNAME through every zone we serve; stop at a zone we don't serve.
    answer = list(first.resolution.answer)
    seen = {qname}
    target = first.cname_target
    last = first
    while target is not None and target not in seen and len(seen) <= MAX_CNAME_CHAIN:
        seen.add(target)
        target_zone = zones.find(target)
        if target_zone is None:
            break
        last = _in_zone(target_zone, target, qtype)
        answer.extend(last.resolution.answer)
        target = last.cname_target
    if last is first:
        return first.resolution
    res = last.resolution
    return Resolution(
        rcode=res.rcode,  # RFC 6604: the rcode of the last name in the chain
        authoritative=first.resolution.authoritative,
        answer=tuple(answer),
        authority=res.authority,
        additional=res.additional,
        glue_required=res.glue_required,
    )


@dataclass(frozen=True, slots=True)
class _Step:
    resolution: Resolution
    cname_target: dns.name.Name | None = None


def _in_zone(zone: Zone, qname: dns.name.Name, qtype: RT) -> _Step:
    cut = _delegation(zone, qname, qtype)
    if cut is not None:
        return _Step(_referral(zone, cut))
    node = _node(zone, qname)
    if node is None:
        if qname in zone.existing:
            return _Step(negative(zone, Rcode.NOERROR))  # empty non-terminal: NODATA
        node = _wildcard(zone, qname)
        if node is None:
            return _Step(negative(zone, Rcode.NXDOMAIN))
    return _from_node(zone, node, qtype)


def resolve_owner(zone: Zone, qname: dns.name.Name, qtype: RT) -> Resolution | None:
    """resolve() for a name that owns a node of `zone`, where `zone` is the longest match
    and no delegation lies at or above the name (geodns.zones.wireindex tells, from the
    wire name); None when the answer needs more than the node (a CNAME to chase)."""
    step = _from_node(zone, zone.nodes[qname], qtype)
    return step.resolution if step.cname_target is None else None


def _from_node(zone: Zone, node: Node, qtype: RT) -> _Step:
    cname = node.get(RT.CNAME)
    if cname is not None and qtype != RT.CNAME:
        return _Step(
            Resolution(Rcode.NOERROR, True, answer=(cname,)),
            cname_target=cname[0].target,
        )
    if qtype == RT.ANY:
        # RFC 8482: answer one RRset rather than everything; the lowest type is stable.
        rrset = node[min(node)] if node else None
    else:
        rrset = node.get(qtype)
    if rrset is None:
        return _Step(negative(zone, Rcode.NOERROR))
    return _Step(
        Resolution(Rcode.NOERROR, True, answer=(rrset,), additional=_additional(zone, rrset))
    )


def _node(zone: Zone, name: dns.name.Name) -> Node | None:
    node = zone.nodes.get(name)
    if node is not None:
        return node
    if name in zone.services:
        # A service's answers depend on the client: the server routes them (GeoAnswers).
        # Reached here only through a path it doesn't route, it has no static data.
        return {}
    return None


def _delegation(zone: Zone, qname: dns.name.Name, qtype: RT) -> dns.name.Name | None:
    """The highest zone cut at or above qname, if any (the DS at a cut belongs to us)."""
    if not zone.delegations:
        return None
    relative = qname.relativize(zone.origin).labels
    name = zone.origin
    for label in reversed(relative):
        name = dns.name.Name((label, *name.labels))
        if name in zone.delegations and not (name == qname and qtype == RT.DS):
            return name
    return None


def _referral(zone: Zone, cut: dns.name.Name) -> Resolution:
    ns = zone.nodes[cut][RT.NS]
    return Resolution(
        Rcode.NOERROR,
        authoritative=False,
        authority=(ns,),
        additional=_additional(zone, ns),
        glue_required=True,
    )


def _additional(zone: Zone, rrset: RRset) -> tuple[RRset, ...]:
    attr = _ADDITIONAL_TARGET.get(rrset.rdtype)
    if attr is None:
        return ()
    out: list[RRset] = []
    for rdata in rrset:
        target = getattr(rdata, attr)
        node = zone.nodes.get(target)
        if node is None:
            continue
        for rdtype in (RT.A, RT.AAAA):
            if rdtype in node and node[rdtype] not in out:
                out.append(node[rdtype])
    return tuple(out)


def _wildcard(zone: Zone, qname: dns.name.Name) -> Node | None:
    """RFC 4592: synthesize from `*.<closest encloser>` when it exists."""
    encloser = qname.parent()
    while encloser not in zone.existing:
        if encloser == zone.origin or len(encloser.labels) <= 1:
            return None
        encloser = encloser.parent()
    source = zone.nodes.get(dns.name.Name((b"*", *encloser.labels)))
    if source is None:
        return None
    node: Node = {}
    for rdtype, rrset in source.items():
        copy = dns.rrset.RRset(qname, rrset.rdclass, rrset.rdtype)
        copy.update(rrset)
        copy.ttl = rrset.ttl
        node[rdtype] = copy
    return node


def negative(zone: Zone, rcode: Rcode) -> Resolution:
    soa = dns.rrset.RRset(zone.origin, dns.rdataclass.IN, RT.SOA)
    soa.update(zone.soa)
    soa.ttl = zone.negative_ttl  # RFC 2308 section 3
    return Resolution(rcode, True, authority=(soa,))
