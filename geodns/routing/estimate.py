"""Estimated round trips from a client to regions: a latency table's row (corrected by
distance inside an anchored country), or great-circle distance.

One rule, one place: the order step ranks by these figures, the cost step compares them
with its budget, and the routing classes (geodns.routing.classes, and the scope builder's
arrays) are computed from them, so that two clients of one class get one answer.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from geodns.geo.geoip import GeoRecord
from geodns.geo.latency import DEFAULT_MS_PER_KM, LatencyTable
from geodns.zones.model import Region

EARTH_RADIUS_KM = 6371.0


def great_circle_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Haversine distance: accurate to about 0.5%, plenty to rank regions."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(a))


def region_km(region: Region, lat: float, lon: float) -> float:
    """Great-circle km from (lat, lon) to a region; a region without a location is
    infinitely far, so that it goes last."""
    if region.lat is None or region.lon is None:
        return math.inf
    return great_circle_km(lat, lon, region.lat, region.lon)


def in_country(
    ms: float,
    anchor: tuple[float, float],
    region: Region,
    lat: float,
    lon: float,
    ms_per_km: float,
) -> float:
    """A country row's figure `ms` (measured at `anchor`) for a client at (lat, lon): moved
    by how much nearer to the region the client is than the anchor. A region without a
    location keeps the row's figure."""
    if region.lat is None or region.lon is None:
        return ms
    here = great_circle_km(lat, lon, region.lat, region.lon)
    there = great_circle_km(anchor[0], anchor[1], region.lat, region.lon)
    return ms + ms_per_km * (here - there)


def table_estimates(
    table: LatencyTable, record: GeoRecord, regions: Iterable[Region]
) -> tuple[str, dict[str, float]] | None:
    """(where, {region: ms}) from the one row that has a figure for every region: the
    country's (corrected by distance where the table anchors it and the client has a
    location), else the continent's; None when neither row holds them all."""
    regions = tuple(regions)
    row = table.covers(record.country, record.continent, [r.name for r in regions])
    if row is None:
        return None
    if row == "continent":
        figures: Mapping[str, float] = table.continents[record.continent or ""]
        return record.continent or "", {r.name: figures[r.name] for r in regions}
    country = record.country or ""
    figures = table.countries[country]
    anchor = table.anchors.get(country)
    lat, lon = record.lat, record.lon
    if anchor is None or lat is None or lon is None:
        return country, {r.name: figures[r.name] for r in regions}
    ms = {
        r.name: in_country(figures[r.name], anchor, r, lat, lon, table.ms_per_km) for r in regions
    }
    return f"{country} at ({lat:g}, {lon:g})", ms


def distance_ms(km: float, table: LatencyTable | None) -> float:
    """A distance as round-trip ms, for budgets: at the table's rate, else the default."""
    return km * (table.ms_per_km if table is not None else DEFAULT_MS_PER_KM)
