"""Step 4, order: by measured latency when the table covers the client, else by distance."""

from __future__ import annotations

import math

from geodns.routing.capacity import spill
from geodns.routing.context import Narrowed, RouteContext
from geodns.zones.model import Region

EARTH_RADIUS_KM = 6371.0


def great_circle_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Haversine distance: accurate to about 0.5%, plenty to rank regions."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(a))


def narrow(regions: tuple[Region, ...], ctx: RouteContext) -> Narrowed:
    record = ctx.client.record
    table = ctx.latency
    if record is not None and table is not None:
        row = table.covers(record.country, record.continent, [r.name for r in regions])
        if row is not None:
            ms = {
                r.name: table.rtt(
                    record.country if row == "country" else None, record.continent, r.name
                )
                for r in regions
            }
            for r in ctx.full:  # left out by capacity: ranked to tell whose clients spill
                rtt = table.rtt(
                    record.country if row == "country" else None, record.continent, r.name
                )
                ms[r.name] = math.inf if rtt is None else rtt
            ordered = spill(regions, ctx, lambda r: ms[r.name])
            where = record.country if row == "country" else record.continent
            listing = ", ".join(f"{r.name} {ms[r.name]:g} ms" for r in ordered)
            return Narrowed(ordered, f"by latency from {where}: {listing}")
    if record is not None and record.lat is not None and record.lon is not None:
        lat, lon = record.lat, record.lon

        def km(r: Region) -> float:
            if r.lat is None or r.lon is None:
                return math.inf  # a region without a location goes last
            return great_circle_km(lat, lon, r.lat, r.lon)

        ordered = spill(regions, ctx, km)
        listing = ", ".join(f"{r.name} {km(r):,.0f} km" for r in ordered)
        return Narrowed(ordered, f"by distance from ({lat:g}, {lon:g}): {listing}")
    preferred = ctx.service.default_order
    rank = {name: i for i, name in enumerate(preferred)}
    ordered = spill(regions, ctx, lambda r: rank.get(r.name, len(rank)))
    return Narrowed(
        ordered, f"client not located: default order {', '.join(r.name for r in ordered)}"
    )
