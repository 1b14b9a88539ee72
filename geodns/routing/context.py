"""The values every routing step shares: its input context and its output."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from geodns.health.state import StateSnapshot
from geodns.zones.model import Region, ResidencyRule, Service

if TYPE_CHECKING:
    from geodns.geo.latency import LatencyTable
    from geodns.geo.locate import Client


@dataclass(frozen=True, slots=True)
class RouteContext:
    """What a step may look at. Steps are pure: no clock, no IO, no randomness."""

    client: Client
    service: Service
    state: StateSnapshot
    latency: LatencyTable | None = None
    rule: ResidencyRule | None = None  # set by the residency step when a rule matched
    demoted: frozenset[str] = frozenset()  # regions the capacity step sheds this client from
    version_label: str | None = None  # set for v<version>.<service> queries


@dataclass(frozen=True, slots=True)
class Narrowed:
    """A step's result: the regions kept, in order, and one line saying why."""

    regions: tuple[Region, ...]
    reason: str
    rule: ResidencyRule | None = None
    demoted: frozenset[str] = frozenset()
    # Set when the step ends the decision without regions: refuse | servfail | nodata |
    # answer (then `fallback` holds the addresses to answer with).
    outcome: str | None = None
    fallback: tuple[str, ...] = ()
    # Set when the result hangs on a hash of the client network (capacity shedding, a
    # canary share): two networks of one class may then get different answers.
    by_network: bool = False


def names(regions: tuple[Region, ...] | list[Region]) -> str:
    return ", ".join(r.name for r in regions) or "none"


def stable_fraction(*parts: str) -> float:
    """A number in [0, 1) from a hash of `parts`: the same on every node, run and platform."""
    digest = hashlib.blake2b("|".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64
