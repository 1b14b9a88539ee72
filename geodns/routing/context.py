"""The values every routing step shares: its input context and its output."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from geodns.geo.latency import LatencyTable
from geodns.geo.locate import Client
from geodns.health.state import StateSnapshot
from geodns.zones.model import Region, ResidencyRule, Service


@dataclass(frozen=True, slots=True)
class RouteContext:
    """What a step may look at. Steps are pure: no clock, no IO, no randomness."""

    client: Client
    service: Service
    state: StateSnapshot
    latency: LatencyTable | None = None
    rule: ResidencyRule | None = None  # set by the residency step when a rule matched
    demoted: frozenset[str] = frozenset()  # regions the capacity step sheds this client from
    no_room: frozenset[str] = frozenset()  # regions that do not take this client when shed
    full: tuple[Region, ...] = ()  # regions the capacity step left out: they shed everyone
    version_label: str | None = None  # set for v<version>.<service> queries


@dataclass(frozen=True, slots=True)
class Narrowed:
    """A step's result: the regions kept, in order, and one line saying why."""

    regions: tuple[Region, ...]
    reason: str
    rule: ResidencyRule | None = None
    demoted: frozenset[str] = frozenset()
    no_room: frozenset[str] = frozenset()  # capacity: regions without room for this client
    full: tuple[Region, ...] = ()  # capacity: regions left out, shedding everyone
    # Set when the step ends the decision without regions: refuse | servfail | nodata |
    # answer (then `fallback` holds the addresses to answer with).
    outcome: str | None = None
    fallback: tuple[str, ...] = ()
    # Set when the result hangs on a hash of the client's bucket (capacity shedding, a
    # canary share): two buckets of one class may then get different answers.
    by_network: bool = False
    # Set when latency measured per client network could order these candidates: the
    # decision holds for the client's GeoIP network and /24 (/56) only, never its class.
    measured: bool = False


def names(regions: tuple[Region, ...] | list[Region]) -> str:
    return ", ".join(r.name for r in regions) or "none"


# Capacity shedding and canary shares choose per client *bucket*: the client's /24 (IPv4)
# or /56 (IPv6), the source prefixes RFC 7871 11.1 recommends resolvers send. A fixed
# granularity makes such a decision a function of (client class, bucket), which can be
# computed ahead, and a reply's ECS scope no wider than the bucket stays true.
BUCKET_PREFIX = {4: 24, 6: 56}
MAPPED_BUCKET_PREFIX = 96 + 24  # an IPv4-mapped IPv6 client is bucketed as the IPv4 one


def bucket_prefix(client: Client) -> int:
    """The prefix length of the client's bucket, in the family of its address."""
    address = client.address
    if address.version == 6 and address.ipv4_mapped is not None:
        return MAPPED_BUCKET_PREFIX
    return BUCKET_PREFIX[address.version]


def bucket(client: Client) -> str:
    """The client's bucket as text, "81.2.69.0/24": what shedding and canaries hash."""
    address = client.address
    if address.version == 6 and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # the same bucket as the IPv4 client it stands for
    bits, prefix = address.max_prefixlen, BUCKET_PREFIX[address.version]
    value = int(address) >> (bits - prefix) << (bits - prefix)
    return f"{type(address)(value)}/{prefix}"


def stable_fraction(*parts: str) -> float:
    """A number in [0, 1) from a hash of `parts`: the same on every node, run and platform."""
    digest = hashlib.blake2b("|".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64
