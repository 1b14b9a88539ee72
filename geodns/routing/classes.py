"""Client classes: GeoIP records that every routing step treats alike.

Two records of one class get the same decision from route() under every state, unless a
step hashed the client network (Decision.by_network: capacity shedding, a canary share).
ECS scopes are widened over runs of addresses of one class (geodns.geo.scopes), so the
class must hold everything route() reads about a client, and the fingerprint everything
the class reads about a service.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from geodns.routing.order import great_circle_km
from geodns.zones.model import Region, Service

if TYPE_CHECKING:
    from geodns.geo.geoip import GeoRecord
    from geodns.geo.latency import LatencyTable

# Part of every fingerprint: a change to what a class means must not meet runs built
# (and cached on disk) under the old meaning.
CLASS_FORMAT = 4
# (the residency rule the client falls under, -1 for none, UNLOCATED_CLOSED for unlocated
# clients the service fails closed; the latency rows that order it when
# they take turns by which regions are left, else None; the order of the candidate regions
# as region indexes: the one that ranks every subset, or beside rows the one for subsets
# no row holds; None when rows decide every subset)
UNLOCATED_CLOSED = -2
ClientClass = tuple[int, tuple[str | None, str | None] | None, tuple[int, ...] | None]


def residency_index(service: Service, country: str | None, continent: str | None) -> int:
    """The index of the rule the residency step applies, -1 for none."""
    for i, rule in enumerate(service.residency):
        if rule.clients.matches(country, continent):
            return i
    return -1


def candidates(service: Service, rule: int) -> tuple[int, ...]:
    """Indexes of the regions the residency step leaves under `rule` (-1: all)."""
    if rule < 0:
        return tuple(range(len(service.regions)))
    allowed = service.residency[rule].regions
    return tuple(i for i, r in enumerate(service.regions) if r.name in allowed)


def latency_order(
    service: Service,
    table: LatencyTable | None,
    country: str | None,
    continent: str | None,
    among: tuple[int, ...],
) -> tuple[tuple[str | None, str | None] | None, tuple[int, ...] | None, bool]:
    """How the table orders the regions `among`: (rows, total order, whether rows alone
    decide every subset).

    One row holding every candidate orders every subset as it orders the whole (the step
    sorts by milliseconds, then config order): that order is returned, and rows are None.
    Otherwise the rows that exist take turns by which regions are left, and distance (or
    the default order) orders the subsets no row holds, unless the continent row holds
    them all.
    """
    if table is None:
        return None, None, False
    names = [service.regions[i].name for i in among]
    by_country = table.countries.get(country) if country is not None else None
    by_continent = table.continents.get(continent) if continent is not None else None
    continent_holds_all = by_continent is not None and all(n in by_continent for n in names)
    if by_country is not None and all(n in by_country for n in names):
        return None, _by(among, lambda i: by_country[service.regions[i].name]), True
    if continent_holds_all and by_country is None:
        assert by_continent is not None
        return None, _by(among, lambda i: by_continent[service.regions[i].name]), True
    if by_country is None and by_continent is None:
        return None, None, False
    rows = (
        country if by_country is not None else None,
        continent if by_continent is not None else None,
    )
    return rows, None, continent_holds_all


def _by(among: tuple[int, ...], value: Callable[[int], float]) -> tuple[int, ...]:
    return tuple(sorted(among, key=lambda i: (value(i), i)))


def default_order(service: Service, among: tuple[int, ...]) -> tuple[int, ...]:
    """The order for clients the step cannot place: default_order, then config order."""
    rank = {name: i for i, name in enumerate(service.default_order)}
    return _by(among, lambda i: rank.get(service.regions[i].name, len(rank)))


def distance_order(
    regions: tuple[Region, ...], lat: float, lon: float, among: tuple[int, ...] | None = None
) -> tuple[int, ...]:
    """Indexes of the regions `among` (default all), nearest first, as the order step sorts
    them: ties keep config order, a region without a location goes last."""

    def km(i: int) -> float:
        r = regions[i]
        if r.lat is None or r.lon is None:
            return math.inf
        return great_circle_km(lat, lon, r.lat, r.lon)

    among = tuple(range(len(regions))) if among is None else among
    return _by(among, km)


def client_class(
    record: GeoRecord | None, service: Service, latency: LatencyTable | None
) -> ClientClass:
    """Equal classes, equal decisions. A class is the client's rule and the order that
    ranks its candidate regions, so that clients a table row orders one way and unlocated
    clients whose default order is the same share a class (and a scope)."""
    country = record.country if record is not None else None
    continent = record.continent if record is not None else None
    rule = residency_index(service, country, continent)
    if rule < 0 and country is None and continent is None and service.unlocated is not None:
        return (UNLOCATED_CLOSED, None, ())  # the residency step fails closed for all of them
    among = candidates(service, rule)
    if record is None:
        return (rule, None, default_order(service, among))
    if len(among) <= 1:
        return (rule, None, among)  # one region or none: there is no order to choose
    rows, order, decided = latency_order(service, latency, record.country, record.continent, among)
    if order is not None:
        return (rule, None, order)
    if decided:
        return (rule, rows, None)
    if record.lat is None or record.lon is None:
        return (rule, rows, default_order(service, among))
    return (rule, rows, distance_order(service.regions, record.lat, record.lon, among))


def class_fingerprint(service: Service, latency: LatencyTable | None) -> str:
    """A digest of what client_class reads from `service` and its table: services with
    one fingerprint share their classes, whatever their names, addresses or health checks."""
    names = [r.name for r in service.regions]
    rows = None
    if latency is not None:
        rows = [
            {k: {r: v[r] for r in names if r in v} for k, v in sorted(table.items())}
            for table in (latency.countries, latency.continents)
        ]
    doc = {
        "format": CLASS_FORMAT,
        "regions": [[r.name, r.lat, r.lon] for r in service.regions],
        "default_order": list(service.default_order),
        "residency": [
            [
                sorted(rule.clients.countries),
                sorted(rule.clients.continents),
                list(rule.regions),
                rule.clients.unlocated,
            ]
            for rule in service.residency
        ],
        "unlocated_closed": service.unlocated is not None,
        "latency": rows,
    }
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:24]
