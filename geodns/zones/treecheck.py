"""The rules on a zone's tree as a whole: CNAME alone at its name, nothing but NS and DS at a
delegation and only glue below it, a service's names its own."""

from __future__ import annotations

import dns.name
import dns.rdatatype

from geodns.yamlsource import Path
from geodns.zones.collector import Collector
from geodns.zones.draft import Draft
from geodns.zones.model import Service, region_host, srv_name

RT = dns.rdatatype.RdataType


def check_tree(
    err: Collector,
    origin: dns.name.Name,
    draft: Draft,
    services: dict[dns.name.Name, Service],
    service_paths: dict[dns.name.Name, Path],
) -> None:
    """Report every break of the rules to `err`; the records' paths say where."""
    service_owned: dict[dns.name.Name, str] = {}
    for service in services.values():
        service_owned[srv_name(service)] = f"SRV name of service {service.key}"
        for region in service.regions:
            host = region_host(service, region.name)
            service_owned[host] = f"host name of region {region.name} of {service.key}"
    # Every name here is canonical (lowercase), so equal names have equal labels, and a
    # tuple of bytes hashes and compares in C where a Name does it label by label.
    owned = {name.labels: what for name, what in service_owned.items()}
    service_names = {name.labels for name in services}
    for owner, node in draft.items():
        if RT.CNAME in node:
            _, rdatas, path = node[RT.CNAME]
            if owner == origin:
                err.add(path, "CNAME is not allowed at the zone apex (RFC 1912 2.4)")
                continue
            others = [t.name for t in node if t not in (RT.CNAME, RT.RRSIG, RT.NSEC)]
            if others:
                err.add(
                    path,
                    f"CNAME cannot coexist with other data ({', '.join(others)}) "
                    "at the same name (RFC 1034 3.6.2)",
                )
            if len(rdatas) > 1:
                err.add(path, "a name can have only one CNAME")
        taken = owned.get(owner.labels)
        if taken is not None:
            _, _, path = next(iter(node.values()))
            err.add(path, f"{owner} is the {taken}: a service's names are its own")
        if owner.labels in service_names:
            err.add(
                service_paths[owner],
                f"service name {owner} also has records under `records:`",
            )
    cuts = {o for o, n in draft.items() if RT.NS in n and o != origin}
    for owner, node in draft.items():
        labels = owner.labels
        for cut in cuts:
            if labels == cut.labels:
                for rdtype, (_, _, path) in node.items():
                    if rdtype not in (RT.NS, RT.DS):
                        err.add(
                            path,
                            f"{rdtype.name} at the delegation {cut} would never "
                            "be answered (only NS and DS belong at a zone cut)",
                        )
            elif labels[-len(cut.labels) :] == cut.labels:
                for rdtype, (_, _, path) in node.items():
                    if rdtype not in (RT.A, RT.AAAA):
                        err.add(
                            path,
                            f"{owner} is below the delegation at {cut}: only "
                            "glue (A, AAAA) may be here",
                        )
    for name, path in service_paths.items():
        for cut in cuts:
            if name.is_subdomain(cut):
                err.add(path, f"service {name} is at or below the delegation at {cut}")
