"""Step 3, capacity: shed clients from busy regions, by a stable hash of the client's bucket
(its /24 or /56: geodns.routing.context.BUCKET_PREFIX)."""

from __future__ import annotations

from collections.abc import Callable

from geodns.health.state import RegionState
from geodns.routing.context import Narrowed, RouteContext, bucket, names, stable_fraction
from geodns.zones.model import Capacity, Region


def share(state: RegionState, capacity: Capacity) -> tuple[float, float]:
    """The share of its client buckets a region sheds, and the share of the buckets other
    regions shed that it takes: what every routing decision and the control plane read.

    The capacity controller's published shares (geodns.health.load) when there are some;
    for a reading no controller has seen (a state file, `explain --state`), they are read
    off the watermarks: (u - low) / (high - low) shed between them, all above `high`, and
    only a region below the band takes others' buckets.
    """
    if state.shed is not None:
        return state.shed, state.accept
    u, low, high = state.utilization, capacity.low, capacity.high
    if u is None or u <= low:
        return 0.0, 1.0
    if u >= high:
        return 1.0, 0.0
    return (u - low) / (high - low), 0.0


def narrow(regions: tuple[Region, ...], ctx: RouteContext) -> Narrowed:
    """A region sheds the buckets whose hash falls below its share; those buckets take it
    behind the others. A region shedding everyone takes none, unless every region does."""
    key = ctx.service.key
    network = bucket(ctx.client)
    kept: list[Region] = []
    shed: list[Region] = []
    full: list[Region] = []
    notes = []
    busy = False  # in the shedding band: who is shed depends on the network
    no_room = set()  # regions that do not take this bucket when another region sheds it
    takes_some = False  # a region takes some shed buckets, not all: that depends on the network
    for region in regions:
        st = ctx.state.get(key, region.name)
        part, accept = share(st, ctx.service.capacity)
        if not stable_fraction(network, key, region.name, "accept") < accept:
            no_room.add(region.name)
        takes_some = takes_some or 0 < accept < 1
        u = f"{st.utilization:.0%}" if st.utilization is not None else "load unknown"
        if part <= 0:
            kept.append(region)
        elif part >= 1:
            full.append(region)
            if st.shed is None:
                notes.append(f"{region.name} full ({u} >= {ctx.service.capacity.high:.0%})")
            else:
                notes.append(f"{region.name} full ({u}: 100% shed)")
        else:
            busy = True
            if stable_fraction(network, key, region.name) < part:
                shed.append(region)
                notes.append(f"{region.name} sheds {network} ({u}: {part:.0%} shed)")
            else:
                kept.append(region)
    if not kept and not shed:
        return Narrowed(regions, f"every region is full: answering all ({'; '.join(notes)})")
    # Where a shed bucket goes hangs on its hash too when a region takes some, not all.
    by_network = busy or (takes_some and bool(full))
    if not notes:
        # Kept by the hash this time: another bucket of this client's class may be shed.
        reason = f"busy regions keep {network}" if busy else "no region is busy"
        return Narrowed(regions, reason, by_network=by_network, no_room=frozenset(no_room))
    result = tuple(kept + shed)
    declining = [r.name for r in kept if r.name in no_room]
    if declining:
        notes.append(f"no room for {network} in {', '.join(declining)}")
    return Narrowed(
        result,
        f"kept {names(result)}: {'; '.join(notes)}",
        demoted=frozenset(r.name for r in shed),
        by_network=by_network,
        no_room=frozenset(no_room),
        full=tuple(full),
    )


def spill(
    regions: tuple[Region, ...], ctx: RouteContext, rank: Callable[[Region], float]
) -> tuple[Region, ...]:
    """The order step's sort: by `rank`, the regions that shed this client last; and a
    client shed from its first region goes to the next one that takes its bucket, before
    those that do not (never onto a region without room while one has some)."""
    demoted, no_room = ctx.demoted, ctx.no_room
    # The client's own first region, among those the capacity step left out too.
    pool = regions + ctx.full
    if pool:
        first = min(pool, key=rank)
        if first.name in demoted or first in ctx.full:
            return tuple(
                sorted(regions, key=lambda r: (r.name in demoted, r.name in no_room, rank(r)))
            )
    return tuple(sorted(regions, key=lambda r: (r.name in demoted, rank(r))))
