"""Step 4, order: by measured latency when the table covers the client, else by distance."""

from __future__ import annotations

import math

from geodns.routing.capacity import spill
from geodns.routing.context import Narrowed, RouteContext
from geodns.routing.cost import within_budget
from geodns.routing.estimate import (
    EARTH_RADIUS_KM,
    distance_ms,
    great_circle_km,
    region_km,
    table_estimates,
)
from geodns.routing.prefer import pinned
from geodns.zones.model import Region

__all__ = ["EARTH_RADIUS_KM", "estimates", "finish", "great_circle_km", "narrow"]


def narrow(regions: tuple[Region, ...], ctx: RouteContext) -> Narrowed:
    record = ctx.client.record
    table = ctx.latency
    if record is not None and table is not None:
        found = table_estimates(table, record, regions)
        if found is not None:
            where, ms = found
            for r in ctx.full:  # left out by capacity: ranked to tell whose clients spill
                alone = table_estimates(table, record, (r,))
                ms[r.name] = math.inf if alone is None else alone[1][r.name]
            ordered = spill(regions, ctx, lambda r: ms[r.name])
            listing = ", ".join(f"{r.name} {round(ms[r.name], 1):g} ms" for r in ordered)
            return _narrowed(ordered, ms, ctx, f"by latency from {where}: {listing}")
    if record is not None and record.lat is not None and record.lon is not None:
        lat, lon = record.lat, record.lon

        def km(r: Region) -> float:
            return region_km(r, lat, lon)

        ordered = spill(regions, ctx, km)
        listing = ", ".join(f"{r.name} {km(r):,.0f} km" for r in ordered)
        ms = {r.name: distance_ms(km(r), table) for r in regions}
        return _narrowed(ordered, ms, ctx, f"by distance from ({lat:g}, {lon:g}): {listing}")
    preferred = ctx.service.default_order
    rank = {name: i for i, name in enumerate(preferred)}
    ordered = spill(regions, ctx, lambda r: rank.get(r.name, len(rank)))
    return _narrowed(
        ordered,
        None,
        ctx,
        f"client not located: default order {', '.join(r.name for r in ordered)}",
    )


def estimates(regions: tuple[Region, ...], ctx: RouteContext) -> dict[str, float] | None:
    """The round trip this step ranks each region by: the table's figure where it covers
    the client, else the distance at the table's rate; None when the client is not
    located."""
    record = ctx.client.record
    if record is None:
        return None
    if ctx.latency is not None:
        found = table_estimates(ctx.latency, record, regions)
        if found is not None:
            return found[1]
    if record.lat is None or record.lon is None:
        return None
    lat, lon = record.lat, record.lon
    return {r.name: distance_ms(region_km(r, lat, lon), ctx.latency) for r in regions}


def finish(
    ordered: tuple[Region, ...], ms: dict[str, float] | None, ctx: RouteContext
) -> tuple[tuple[Region, ...], list[str]]:
    """An order made from estimates `ms`, with the cost rule applied where the service has
    a budget (and there are estimates), then the client's pinned order where a preference
    holds it: the last word of every step that orders (this one, measured)."""
    notes = []
    if ms is not None:
        ordered, note = within_budget(ordered, ms, ctx.demoted, ctx.service)
        notes += [note] if note else []
    ordered, note = pinned(ordered, ctx)
    notes += [note] if note else []
    return ordered, notes


def _narrowed(
    ordered: tuple[Region, ...], ms: dict[str, float] | None, ctx: RouteContext, reason: str
) -> Narrowed:
    ordered, notes = finish(ordered, ms, ctx)
    return Narrowed(ordered, "; ".join([reason, *notes]))
