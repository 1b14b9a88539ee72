"""Step 3, capacity: shed clients from busy regions, by a stable hash of the client's bucket
(its /24 or /56: geodns.routing.context.BUCKET_PREFIX)."""

from __future__ import annotations

from geodns.routing.context import Narrowed, RouteContext, bucket, names, stable_fraction
from geodns.zones.model import Region


def narrow(regions: tuple[Region, ...], ctx: RouteContext) -> Narrowed:
    """Below `low` a region keeps all its clients; between `low` and `high` it sheds the
    fraction (u - low) / (high - low) of client buckets, which go behind the others;
    above `high` it takes none, unless every region is above `high`."""
    low, high = ctx.service.capacity.low, ctx.service.capacity.high
    key = ctx.service.key
    network = bucket(ctx.client)
    kept: list[Region] = []
    shed: list[Region] = []
    full: list[Region] = []
    notes = []
    busy: list[float] = []  # in the shedding band: who is shed depends on the network
    for region in regions:
        u = ctx.state.get(key, region.name).utilization
        if u is None or u <= low:
            kept.append(region)
        elif u >= high:
            full.append(region)
            notes.append(f"{region.name} full ({u:.0%} >= {high:.0%})")
        else:
            busy.append(u)
            share = (u - low) / (high - low)
            if stable_fraction(network, key, region.name) < share:
                shed.append(region)
                notes.append(f"{region.name} sheds {network} ({u:.0%}: {share:.0%} shed)")
            else:
                kept.append(region)
    if not kept and not shed:
        return Narrowed(regions, f"every region is full: answering all ({'; '.join(notes)})")
    if not notes:
        # Kept by the hash this time: another bucket of this client's class may be shed.
        reason = f"busy regions keep {network}" if busy else "no region is busy"
        return Narrowed(regions, reason, by_network=bool(busy))
    result = tuple(kept + shed)
    return Narrowed(
        result,
        f"kept {names(result)}: {'; '.join(notes)}",
        demoted=frozenset(r.name for r in shed),
        by_network=bool(busy),
    )
