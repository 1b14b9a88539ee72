"""Immutable zones: the records of one origin, indexed for lookup."""

from __future__ import annotations

from dataclasses import dataclass, field

import dns.name
import dns.rdatatype
import dns.rrset

Name = dns.name.Name
RdataType = dns.rdatatype.RdataType


@dataclass(frozen=True, slots=True)
class Region:
    """One place a service runs: where it is and the addresses that reach it."""

    name: str
    addresses: tuple[str, ...]
    lat: float | None = None
    lon: float | None = None


@dataclass(frozen=True, slots=True)
class Service:
    """A name answered with the addresses of its regions rather than from static records."""

    name: Name
    ttl: int
    regions: tuple[Region, ...]


@dataclass(frozen=True)
class Zone:
    """One zone: origin, SOA, and the RRsets of every owner name in it.

    `nodes` maps owner name -> rdtype -> RRset. `existing` holds every name that
    exists in the DNS tree, empty non-terminals included, so that NXDOMAIN and
    NODATA can be told apart (RFC 8020).
    """

    origin: Name
    file: str
    soa: dns.rrset.RRset
    nodes: dict[Name, dict[RdataType, dns.rrset.RRset]]
    services: dict[Name, Service] = field(default_factory=dict)
    existing: frozenset[Name] = frozenset()
    delegations: frozenset[Name] = frozenset()

    @property
    def negative_ttl(self) -> int:
        """RFC 2308 section 5: the SOA's own TTL or its MINIMUM, whichever is lower."""
        return min(self.soa.ttl, self.soa[0].minimum)


@dataclass(frozen=True)
class ZoneSet:
    """Every zone the server is authoritative for, found by longest match."""

    zones: dict[Name, Zone]

    def find(self, qname: Name) -> Zone | None:
        name = qname
        while True:
            zone = self.zones.get(name)
            if zone is not None:
                return zone
            if name == dns.name.root or len(name.labels) <= 1:
                return None
            name = name.parent()
