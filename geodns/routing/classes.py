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
from dataclasses import dataclass

from geodns.geo.geoip import GeoRecord
from geodns.geo.latency import DEFAULT_MS_PER_KM, LatencyTable
from geodns.routing.estimate import in_country, region_km
from geodns.zones.model import Region, Service

# Part of every fingerprint: a change to what a class means must not meet runs built
# (and cached on disk) under the old meaning.
CLASS_FORMAT = 5
UNLOCATED_CLOSED = -2
# A ranking of region indexes, and, for a service with a cost budget, which pairs (i, j) of
# them have j within the budget of i, as bits i * len(regions) + j (0 without a budget):
# the order step and the cost rule read nothing else of the estimates, for any subset of
# the regions an earlier step leaves.
Profile = tuple[tuple[int, ...], int]
# (the residency rule the client falls under, -1 for none, UNLOCATED_CLOSED for unlocated
# clients the service fails closed; the latency rows that order it when they take turns by
# which regions are left, else None; the profile of the regions an anchored country row
# holds, estimated from the client's location (else None); the profile that ranks every
# subset, or beside rows the one for subsets no row holds; None when rows decide them all)
ClientClass = tuple[int, tuple[str | None, str | None] | None, Profile | None, Profile | None]


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


@dataclass(frozen=True)
class RowPlan:
    """How a client's country and continent rows order the candidate regions `among`.

    One row holding every candidate orders every subset as it orders the whole (the step
    sorts by milliseconds, then config order): `flat` holds its figures, or `anchored`
    names the anchored country whose figures a location corrects. Otherwise the rows that
    exist take turns by which regions are left (`rows`); `anchored_among` are then the
    candidates an anchored country row holds, and distance (or the default order) orders
    the subsets no row holds, unless the continent row holds them all (`decided`).
    """

    rows: tuple[str | None, str | None] | None = None
    flat: dict[int, float] | None = None
    anchored: str | None = None
    anchored_among: tuple[int, ...] = ()
    decided: bool = False


def row_plan(
    service: Service,
    table: LatencyTable | None,
    country: str | None,
    continent: str | None,
    among: tuple[int, ...],
) -> RowPlan:
    if table is None:
        return RowPlan()
    names = {i: service.regions[i].name for i in among}
    by_country = table.countries.get(country) if country is not None else None
    by_continent = table.continents.get(continent) if continent is not None else None
    continent_holds_all = by_continent is not None and all(
        n in by_continent for n in names.values()
    )
    anchored = country if country is not None and country in table.anchors else None
    if by_country is not None and all(n in by_country for n in names.values()):
        if anchored is not None:
            return RowPlan(anchored=anchored, anchored_among=among, decided=True)
        return RowPlan(flat={i: by_country[n] for i, n in names.items()}, decided=True)
    if continent_holds_all and by_country is None:
        assert by_continent is not None
        return RowPlan(flat={i: by_continent[n] for i, n in names.items()}, decided=True)
    if by_country is None and by_continent is None:
        return RowPlan()
    rows = (
        country if by_country is not None else None,
        continent if by_continent is not None else None,
    )
    held: tuple[int, ...] = ()
    if anchored is not None and by_country is not None:
        held = tuple(i for i in among if names[i] in by_country)
    return RowPlan(rows, None, anchored if held else None, held, continent_holds_all)


def profile(service: Service, among: tuple[int, ...], ms: Callable[[int], float]) -> Profile:
    """The ranking of `among` by estimate (ties: config order) and, with a cost budget, the
    pairs within it (as geodns.routing.cost compares them: both finite)."""
    value = {i: ms(i) for i in among}
    ranking = _by(among, value.__getitem__)
    if service.cost is None:
        return ranking, 0
    budget, n, bits = service.cost.within_ms, len(service.regions), 0
    finite = [i for i in among if math.isfinite(value[i])]
    for i in finite:
        for j in finite:
            if i != j and value[j] - value[i] <= budget:
                bits |= 1 << (i * n + j)
    return ranking, bits


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
    among = tuple(range(len(regions))) if among is None else among
    return _by(among, lambda i: region_km(regions[i], lat, lon))


def anchored_profile(
    service: Service,
    table: LatencyTable,
    country: str,
    among: tuple[int, ...],
    lat: float | None,
    lon: float | None,
) -> Profile:
    """The profile an anchored country row gives the regions `among` for a client at
    (lat, lon); its flat figures for a client without a location."""
    figures = table.countries[country]
    anchor = table.anchors[country]
    regions = service.regions
    if lat is None or lon is None:
        return profile(service, among, lambda i: figures[regions[i].name])
    return profile(
        service,
        among,
        lambda i: in_country(
            figures[regions[i].name], anchor, regions[i], lat, lon, table.ms_per_km
        ),
    )


def client_class(
    record: GeoRecord | None, service: Service, latency: LatencyTable | None
) -> ClientClass:
    """Equal classes, equal decisions. A class is the client's rule and the profiles that
    rank its candidate regions, so that clients a table row orders one way and unlocated
    clients whose default order is the same share a class (and a scope)."""
    country = record.country if record is not None else None
    continent = record.continent if record is not None else None
    rule = residency_index(service, country, continent)
    if rule < 0 and country is None and continent is None and service.unlocated is not None:
        return (UNLOCATED_CLOSED, None, None, ((), 0))  # the residency step fails closed
    among = candidates(service, rule)
    if record is None:
        return (rule, None, None, (default_order(service, among), 0))
    if len(among) <= 1:
        return (rule, None, None, (among, 0))  # one region or none: there is no order to choose
    plan = row_plan(service, latency, record.country, record.continent, among)
    lat, lon = record.lat, record.lon
    in_row = None
    if plan.anchored is not None:
        assert latency is not None
        in_row = anchored_profile(service, latency, plan.anchored, plan.anchored_among, lat, lon)
    if plan.rows is None and plan.decided:
        if in_row is not None:
            return (rule, None, None, in_row)
        flat = plan.flat or {}
        return (rule, None, None, profile(service, among, flat.__getitem__))
    if plan.decided:
        return (rule, plan.rows, in_row, None)
    if lat is None or lon is None:
        return (rule, plan.rows, in_row, (default_order(service, among), 0))
    k = latency.ms_per_km if latency is not None else DEFAULT_MS_PER_KM
    return (
        rule,
        plan.rows,
        in_row,
        distance_profile(service, among, lambda i: region_km(service.regions[i], lat, lon), k),
    )


def distance_profile(
    service: Service, among: tuple[int, ...], km: Callable[[int], float], ms_per_km: float
) -> Profile:
    """Ranked by km (as the order step sorts), pairs compared in ms (as the cost rule)."""
    ranking, _ = profile(service, among, km)
    _, bits = profile(service, among, lambda i: km(i) * ms_per_km)
    return ranking, bits


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
        rows.append({k: list(v) for k, v in sorted(latency.anchors.items())})
        rows.append({"ms_per_km": latency.ms_per_km})
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
        "cost": None if service.cost is None else service.cost.within_ms,
    }
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:24]
