"""A checked draft becomes the immutable Zone: RRsets, the services' region hosts, every name
that exists, and the delegations."""

from __future__ import annotations

from typing import Any, cast

import dns.name
import dns.rdatatype
import dns.rrset

from geodns.zones import fastparse
from geodns.zones.draft import Draft
from geodns.zones.model import Service, Zone, region_host, srv_name

RT = dns.rdatatype.RdataType


def freeze(
    origin: dns.name.Name,
    file: str,
    draft: Draft,
    services: dict[dns.name.Name, Service],
    debug: bool,
) -> Zone:
    """The Zone of a draft that has passed its checks; its nodes become the RRsets in place,
    so the draft is used up."""
    # Each owner's node becomes its RRsets in place, so that `nodes` is a copy of the draft
    # that reuses the names' hashes (a Name hashes itself character by character).
    empty = []
    for owner, node in draft.items():
        rrsets = cast(dict[RT, Any], node)
        for rdtype, (ttl, rdatas, _) in list(node.items()):
            if rdatas:
                rrsets[rdtype] = fastparse.rrset(owner, ttl, rdatas)
            else:
                del rrsets[rdtype]
        if not node:
            empty.append(owner)
    nodes = cast(dict[dns.name.Name, dict[RT, dns.rrset.RRset]], dict(draft))
    for owner in empty:
        del nodes[owner]
    # Each region gets a host name under its service (us-east-1.inference.example.com),
    # the targets of the service's SRV RRset and a way to reach one region by name.
    for service in services.values():
        for region in service.regions:
            host = region_host(service, region.name)
            node = nodes.setdefault(host, {})
            for rdtype, addresses in ((RT.A, region.ipv4), (RT.AAAA, region.ipv6)):
                if addresses:
                    node[rdtype] = dns.rrset.from_text_list(
                        host, service.ttl, "IN", rdtype.name, list(addresses)
                    )
    # Every owner exists (a set made from the dict reuses its hashes), the origin among
    # them (its SOA), so the walk up from a name in the zone stops at the origin at the
    # latest; a name right under the origin needs no walk at all.
    existing: set[dns.name.Name] = set(nodes)
    child = len(origin.labels) + 1
    dynamic = [*services, *(srv_name(s) for s in services.values())]
    for owner in nodes:
        if len(owner.labels) > child:
            name = fastparse.parent(owner)
            while name not in existing:
                existing.add(name)
                name = fastparse.parent(name)
    for owner in dynamic:
        name = owner
        while name not in existing:
            existing.add(name)
            name = fastparse.parent(name)
    cuts = frozenset(o for o, n in nodes.items() if RT.NS in n and o != origin)
    return Zone(
        origin=origin,
        file=file,
        soa=nodes[origin][RT.SOA],
        nodes=nodes,
        services=dict(services),
        debug=debug,
        existing=frozenset(existing),
        delegations=cuts,
    )
