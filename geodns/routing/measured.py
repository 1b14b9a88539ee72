"""Step 5, measured: reorder the order step's regions by latency measured from real clients.

The order step ranks by the latency table, else by distance. Where the client's area (its
/24 or /48, else its country, else its continent: the first that has enough samples for
two candidates or more) has estimates, the measured regions are reordered among the places
they hold: a region moves ahead of a measured one before it only when it is better by more
than `stabilize_ms` AND `stabilize_percent` (NS1 Pulsar's "stabilize"), so that noise in
the measurements does not move answers. A region without an estimate keeps the place the
order step gave it, and a region the capacity step demoted stays behind the others. Then,
as after the order step, the service's cost budget (with the measured estimates) and the
client's pinned preference apply.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from geodns.geo.rum import Estimate, MeasuredLatency, Row
from geodns.routing import order as order_step
from geodns.routing.context import Narrowed, RouteContext
from geodns.zones.model import Region


@dataclass(frozen=True, slots=True)
class RegionLatency:
    """One candidate's latency as the decision saw it: for explain."""

    region: str
    source: str  # measured | table | distance | default order
    ms: float | None  # the estimate or the table's figure; None by distance
    samples: int | None  # measured: successful samples behind the estimate
    newest: float | None  # measured: epoch seconds of the newest sample
    area: str | None  # measured: "network 24.5.6.0/24", "country US", "continent NA"


def relevant(regions: tuple[Region, ...], measured: MeasuredLatency) -> bool:
    """Whether measurements can reorder these candidates for some client: at least two of
    them have enough samples somewhere. Then the decision varies below the routing class
    (per client network), and the step says so."""
    used = measured.regions
    return len(used) >= 2 and sum(1 for r in regions if r.name in used) >= 2


def area_row(
    regions: tuple[Region, ...], ctx: RouteContext
) -> tuple[str, str, dict[str, Estimate]] | None:
    """The most specific area with enough samples for two candidates or more: (level, area,
    the candidates' usable estimates)."""
    measured = ctx.state.measured
    record = ctx.client.record
    country = record.country if record is not None else None
    continent = record.continent if record is not None else None
    least = measured.settings.min_samples
    for level, area, row in measured.rows(ctx.client.address, country, continent):
        usable = _usable(regions, row, least)
        if len(usable) >= 2:
            return level, area, usable
    return None


def _usable(regions: tuple[Region, ...], row: Row, least: int) -> dict[str, Estimate]:
    out = {}
    for r in regions:
        est = row.get(r.name)
        if est is not None and est.samples >= least:
            out[r.name] = est
    return out


def narrow(regions: tuple[Region, ...], ctx: RouteContext) -> Narrowed:
    measured = ctx.state.measured
    if not relevant(regions, measured):
        return Narrowed(regions, "no measurements for two of these regions: order kept")
    found = area_row(regions, ctx)
    # The decision holds for the client's whole GeoIP network unless a /24 (/48) with rows
    # of its own lies in it: then for that network and the client's bucket only.
    by_network = measured.overlaps(ctx.client.network)
    if found is None:
        return Narrowed(
            regions,
            f"too few samples from {_where(ctx)} (fewer than {measured.settings.min_samples}"
            " for two regions): order kept",
            by_network=by_network,
            measured=True,
        )
    level, area, row = found
    settings = measured.settings
    demoted = ctx.demoted
    order = list(regions)
    moves = []
    # Measured regions are reordered among the places they hold (an unmeasured region keeps
    # its own), demoted and not demoted apart. Adjacent swaps while one pays: a region
    # passes the one ahead of it only when better by the threshold; each swap removes an
    # inversion of the estimates, so this ends.
    for demoted_group in (False, True):
        slots = [
            i for i, r in enumerate(order) if r.name in row and (r.name in demoted) == demoted_group
        ]
        group = [order[i] for i in slots]
        changed = True
        while changed:
            changed = False
            for i in range(1, len(group)):
                a, b = group[i - 1], group[i]
                if settings.better(row[b.name].ms, row[a.name].ms):
                    group[i - 1], group[i] = b, a
                    moves.append(f"{b.name} ahead of {a.name}")
                    changed = True
        for i, region in zip(slots, group, strict=True):
            order[i] = region
    listing = ", ".join(
        f"{r.name} {row[r.name].ms:.1f} ms ({row[r.name].samples} samples)"
        for r in order
        if r.name in row
    )
    if moves:
        what = "moved " + "; ".join(dict.fromkeys(moves))
    else:
        what = (
            f"order kept (no region better by more than {settings.stabilize_ms:g} ms"
            f" and {settings.stabilize_percent:g}%)"
        )
    # The cost budget and pinned preferences have the last word, as in the order step, with
    # the measured estimates where there are some: a measurement never overrides a pin.
    ms = None
    if ctx.service.cost is not None:  # only the budget reads estimates: none to make without
        base = order_step.estimates(regions, ctx) or {}
        ms = {
            r.name: row[r.name].ms if r.name in row else base.get(r.name, math.inf) for r in order
        }
    finished, notes = order_step.finish(tuple(order), ms, ctx)
    return Narrowed(
        finished,
        "; ".join([f"measured from {level} {area}: {listing}; {what}", *notes]),
        by_network=by_network,
        measured=True,
    )


def _where(ctx: RouteContext) -> str:
    record = ctx.client.record
    parts = [str(ctx.client.address)]
    if record is not None:
        parts += [x for x in (record.country, record.continent) if x]
    return ", ".join(parts)


def latencies(regions: tuple[Region, ...], ctx: RouteContext) -> list[RegionLatency]:
    """For each of `regions`: the latency the decision used and where it came from."""
    found = area_row(regions, ctx)
    record = ctx.client.record
    table = ctx.latency
    row_kind = None
    if record is not None and table is not None:
        row_kind = table.covers(record.country, record.continent, [r.name for r in regions])
    # The figures the order step ranked by (a country's row corrected in-country).
    ranked = order_step.estimates(regions, ctx) if row_kind is not None else None
    located = record is not None and record.lat is not None and record.lon is not None
    out = []
    for r in regions:
        if found is not None and r.name in found[2]:
            est = found[2][r.name]
            out.append(
                RegionLatency(
                    r.name, "measured", est.ms, est.samples, est.newest, f"{found[0]} {found[1]}"
                )
            )
        elif ranked is not None:
            out.append(RegionLatency(r.name, "table", ranked[r.name], None, None, None))
        elif located:
            out.append(RegionLatency(r.name, "distance", None, None, None, None))
        else:
            out.append(RegionLatency(r.name, "default order", None, None, None, None))
    return out
