"""Immutable zones: the records of one origin, indexed for lookup."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from enum import StrEnum

import dns.name
import dns.rdatatype
import dns.rrset

from geodns.zones import keys
from geodns.zones.healthspec import HealthCheck

Name = dns.name.Name
RdataType = dns.rdatatype.RdataType
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class Region:
    """One place a service runs: where it is and the addresses that reach it."""

    name: str
    addresses: tuple[str, ...]
    lat: float | None = None
    lon: float | None = None
    jurisdiction: str | None = None  # a label for people (e.g. "EU"); rules name regions
    health: HealthCheck | None = None  # how the health monitor probes it; None: not checked
    port: int | None = None  # its SRV port, when not the service's
    version: str | None = None  # the model version it serves, when its checks don't say
    # Relative units (per request, per GPU-hour): what the cost step compares.
    cost: float | None = None
    # How much load it can absorb, in any unit common to the service's regions (GPUs):
    # what shedding weighs the room of regions by. None: as big as every other.
    gpus: float | None = None

    @property
    def ipv4(self) -> tuple[str, ...]:
        return tuple(a for a in self.addresses if ":" not in a)

    @property
    def ipv6(self) -> tuple[str, ...]:
        return tuple(a for a in self.addresses if ":" in a)


@dataclass(frozen=True, slots=True)
class ClientMatch:
    """Which clients a residency rule holds: by continent, country list or named group, and
    optionally the clients that cannot be located at all."""

    continents: frozenset[str] = frozenset()
    countries: frozenset[str] = frozenset()
    description: str = ""
    # Clients with neither a country nor a continent: no ECS and an unknown resolver, a
    # private or special-purpose address, a GeoIP miss.
    unlocated: bool = False
    # Overrides: client networks (the ECS address, else the source) and autonomous systems
    # (from the service's ASN database). They outrank every country or continent match.
    networks: tuple[IPNetwork, ...] = ()
    asns: frozenset[int] = frozenset()

    def matches(self, country: str | None, continent: str | None) -> bool:
        if country is None and continent is None:
            return self.unlocated
        return (country is not None and country in self.countries) or (
            continent is not None and continent in self.continents
        )

    def matches_network(self, address: IPAddress, asn: int | None) -> bool:
        """Whether an override (a network, an ASN) holds the client at `address`."""
        if asn is not None and asn in self.asns:
            return True
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped  # an IPv4 client, as the locator treats it
        return any(address in net for net in self.networks)


@dataclass(frozen=True, slots=True)
class Preference:
    """Clients an override holds (networks, ASNs) pinned to an order of regions: the listed
    ones first, in that order, then the others as the order step ranks them."""

    clients: ClientMatch
    order: tuple[str, ...]
    index: int = 0

    def describe(self) -> str:
        return f"prefer {self.index} ({self.clients.description})"


@dataclass(frozen=True, slots=True)
class FailClosed:
    """What a client gets when it must not be routed: refuse | servfail | nodata | answer.

    `answer` is the recommended mode: `addresses` (an in-jurisdiction "unavailable"
    endpoint) are answered as any positive answer, with the client's ECS scope and the
    service TTL, which resolvers cache per client subnet like any other answer. REFUSED
    makes RFC 7871 resolvers retry without ECS from their own address (RFC 7871 7.3),
    which leaks the client to wherever the resolver is; a negative answer is cached for
    every client of a resolver (7.4) but leaks nothing, hence the default `nodata`.
    """

    mode: str = "nodata"
    addresses: tuple[str, ...] = ()

    def __str__(self) -> str:
        if self.mode == "answer":
            return f"answer {', '.join(self.addresses)}"
        return self.mode


@dataclass(frozen=True, slots=True)
class ResidencyRule:
    """Clients matching `clients` are answered only from `regions`, or fail closed."""

    clients: ClientMatch
    regions: tuple[str, ...]
    when_none: FailClosed = FailClosed()  # nothing allowed is healthy
    # The rollout guard keeps at least this many of `regions` healthy on an approved
    # version while another of them is updated (never the last one).
    min_old: int = 1
    index: int = 0  # its place in the service's list, for messages: "residency rule 0"

    def describe(self) -> str:
        return f"residency rule {self.index} ({self.clients.description})"


@dataclass(frozen=True, slots=True)
class CostPolicy:
    """Among regions whose estimated round trip is within `within_ms` of the best one's,
    the cheapest comes first (geodns.routing.cost); outside the budget, latency wins."""

    within_ms: float = keys.COST.default("within_ms")


@dataclass(frozen=True, slots=True)
class Signal:
    """A numeric key of the health JSON (or of a pushed load) with its own watermarks."""

    key: str  # e.g. num_requests_waiting, gpu_cache_usage_perc
    low: float
    high: float


@dataclass(frozen=True, slots=True)
class Capacity:
    """The load band (GPU utilization watermarks) the capacity controller keeps each region
    in (docs/capacity.md); `signals` are further readings, each with its own band, the worst
    of which counts."""

    low: float = keys.CAPACITY.default("low")
    high: float = keys.CAPACITY.default("high")
    signals: tuple[Signal, ...] = ()


@dataclass(frozen=True, slots=True)
class VersionPolicy:
    """Which model versions plain answers may reach.

    consistent: regions on an approved version (the current one, and a rollout's new one
    once validated); `canary_share` of client networks may already get the new one.
    pin: only regions serving `pin`; `when_none` says what to answer when none is healthy.
    any: versions are not considered.
    """

    mode: str = keys.SERVICE.default("version")  # consistent | pin | any
    pin: str | None = None
    canary_share: float = keys.VERSION.default("canary_share")
    when_none: str = keys.VERSION.default("when_none")  # any | refuse | servfail | nodata


class Quorum(StrEnum):
    """How a fleet of geodns nodes combines its nodes' own checks of a region (docs/quorum.md).

    Each node probes every region and publishes its verdict (after its own rise/fall); a
    node combines the fresh verdicts of all live nodes by the service's policy.
    """

    # Down when more than half of the fresh votes say down; a tie keeps it up, so that one
    # node's broken path (or a split between two nodes) cannot take a region out.
    MAJORITY = "majority"
    # Down when any fresh vote says down: the strictest; one node's broken path takes the
    # region out for every node, so it suits fleets whose nodes share the clients' paths.
    ANY = "any"
    # Only this node's own checks: every node may answer differently (the behaviour of a
    # single node, and of nodes without a shared store).
    LOCAL = "local"


def version_label(version: str) -> str:
    """The DNS label of a version-named host: 42 -> v42, 1.2.3 -> v1-2-3 (docs/rollouts.md)."""
    out = "".join(c if c.isascii() and (c.isalnum() or c == "-") else "-" for c in version)
    return "v" + out.lower()[:62]


@dataclass(frozen=True, slots=True)
class Service:
    """A name answered with the best regions for each client rather than from static records."""

    name: Name
    ttl: int
    regions: tuple[Region, ...]
    answers: int = 1
    port: int = 443
    default_order: tuple[str, ...] = ()
    capacity: Capacity = Capacity()
    residency: tuple[ResidencyRule, ...] = ()
    when_all_down: str = "answer_all"  # answer_all | servfail
    # Clients that cannot be located and that no residency rule claims: None routes them
    # by default_order over every region; a FailClosed answers them that way instead.
    unlocated: FailClosed | None = None
    latency: str | None = "default"  # "default" (shipped table), a file path, or None
    version: VersionPolicy = VersionPolicy()
    # How the fleet's nodes combine their checks of a region; no effect on routing classes.
    quorum: Quorum = Quorum.MAJORITY
    cost: CostPolicy | None = None  # None: latency alone orders
    prefer: tuple[Preference, ...] = ()
    asn_database: str | None = None  # the .mmdb file `clients: {asn: ...}` is looked up in

    # The service's name as state files and the API write it: `inference.example.com`.
    # Computed once: routing reads it for every decision.
    key: str = field(init=False, default="")

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", self.name.to_text(omit_final_dot=True))


def region_host(service: Service, region: str) -> Name:
    """us-east-1.inference.example.com: one region of a service, by name."""
    return dns.name.Name((region.lower().encode(), *service.name.labels))


def srv_name(service: Service) -> Name:
    """_inference._tcp.example.com: the service's regions in this client's order (RFC 2782)."""
    first, *rest = service.name.labels
    return dns.name.Name((b"_" + first, b"_tcp", *rest))


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
    debug: bool = False  # TXT queries for service names explain the decision
    existing: frozenset[Name] = frozenset()
    delegations: frozenset[Name] = frozenset()

    @property
    def negative_ttl(self) -> int:
        """RFC 2308 section 5: the SOA's own TTL or its MINIMUM, whichever is lower."""
        return min(self.soa.ttl, self.soa[0].minimum)


@dataclass(frozen=True)
class ZoneTexts:
    """What a load read: each zone file's path, text and modification time (the serial of
    `serial: auto`). Loading them again (geodns.zones.loader.load_zone_texts) gives the same
    zones without the files, which may have changed since: it is how a process that did
    not read them takes in the zones another one validated, at no cost to the sender
    (pickling a ZoneSet of 10,000 records costs it 0.12 s of CPU, these texts 1 ms)."""

    files: tuple[tuple[str, str, int], ...]


@dataclass(frozen=True)
class ZoneSet:
    """Every zone the server is authoritative for, found by longest match."""

    zones: dict[Name, Zone]
    # The files these zones were loaded from, when they were (not in a ZoneSet built in code).
    texts: ZoneTexts | None = field(default=None, compare=False, repr=False)

    def services(self) -> list[Service]:
        """Every service of every zone, in zone-file order."""
        return [s for z in self.zones.values() for s in z.services.values()]

    def find(self, qname: Name) -> Zone | None:
        name = qname
        while True:
            zone = self.zones.get(name)
            if zone is not None:
                return zone
            if name == dns.name.root or len(name.labels) <= 1:
                return None
            name = name.parent()
