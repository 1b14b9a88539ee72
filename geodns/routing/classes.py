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
from typing import TYPE_CHECKING

from geodns.routing.order import great_circle_km
from geodns.zones.model import Region, Service

if TYPE_CHECKING:
    from geodns.geo.geoip import GeoRecord
    from geodns.geo.latency import LatencyTable

# (first matching residency rule or -1, the latency table's country row or None, its
# continent row or None, the order by distance when the rows may not decide it:
# region indexes, or "default" for a client without coordinates, or None)
ClientClass = tuple[int, str | None, str | None, tuple[int, ...] | str | None]
DEFAULT = "default"


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


def latency_rows(
    service: Service,
    table: LatencyTable | None,
    country: str | None,
    continent: str | None,
    among: tuple[int, ...],
) -> tuple[str | None, str | None, bool]:
    """The rows the order step may read for this client, and whether they always decide.

    A row covering every region `among` the candidates covers every subset the later
    steps leave, so distance never matters then; a country row that does cuts the
    continent out.
    """
    if table is None:
        return None, None, False
    names = [service.regions[i].name for i in among]
    country_row = country if country is not None and country in table.countries else None
    continent_row = continent if continent is not None and continent in table.continents else None
    if country_row is not None and all(r in table.countries[country_row] for r in names):
        return country_row, None, True
    if continent_row is not None and all(r in table.continents[continent_row] for r in names):
        return country_row, continent_row, True
    return country_row, continent_row, False


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
    return tuple(sorted(among, key=lambda i: (km(i), i)))


def client_class(
    record: GeoRecord | None, service: Service, latency: LatencyTable | None
) -> ClientClass:
    if record is None:
        # Unlocated: no rule matches, no table row applies, the default order.
        return (-1, None, None, DEFAULT)
    rule = residency_index(service, record.country, record.continent)
    among = candidates(service, rule)
    if len(among) <= 1:
        return (rule, None, None, None)  # one region or none: there is no order to choose
    country_row, continent_row, decided = latency_rows(
        service, latency, record.country, record.continent, among
    )
    if decided:
        return (rule, country_row, continent_row, None)
    if record.lat is None or record.lon is None:
        return (rule, country_row, continent_row, DEFAULT)
    order = distance_order(service.regions, record.lat, record.lon, among)
    return (rule, country_row, continent_row, order)


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
        "format": 1,
        "regions": [[r.name, r.lat, r.lon] for r in service.regions],
        "residency": [
            [sorted(rule.clients.countries), sorted(rule.clients.continents), list(rule.regions)]
            for rule in service.residency
        ],
        "latency": rows,
    }
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:24]
