"""Cost within a latency budget: the cheapest region whose estimated round trip is within
the service's budget of the best one comes first; outside the budget, latency wins.

Applied by the order step to the order it made and the estimates it made it from
(geodns.routing.estimate), and again by the measured step with measured estimates where it
has them, so that cost never sees a region the earlier steps removed: residency, health and
capacity hold whatever the prices.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from geodns.zones.model import Region, Service


def within_budget(
    ordered: tuple[Region, ...],
    ms: Mapping[str, float],
    demoted: frozenset[str],
    service: Service,
) -> tuple[tuple[Region, ...], str | None]:
    """`ordered` (demoted regions last) with the regions within the budget of the fastest
    one first, sorted by cost (ties: as they were ordered); and a note for explain,
    None when the service has no budget or nothing can be compared."""
    policy = service.cost
    if policy is None:
        return ordered, None
    # Shed regions stay last: capacity outranks price.
    eligible = [r for r in ordered if r.name not in demoted and math.isfinite(ms[r.name])]
    if not eligible:
        return ordered, None
    # The fastest (the first of equals): the order step's first, but the measured step's
    # order may keep a slower region first (its stabilize threshold).
    best = min(eligible, key=lambda r: ms[r.name])
    # The same comparison the routing classes make (estimate of r minus the best's).
    within = [
        best,
        *(r for r in eligible if r is not best and ms[r.name] - ms[best.name] <= policy.within_ms),
    ]
    rank = {r.name: i for i, r in enumerate(ordered)}
    cheapest = sorted(within, key=lambda r: (_cost(r), rank[r.name]))
    taken = {r.name for r in within}
    out = (*cheapest, *(r for r in ordered if r.name not in taken))
    budget = f"{policy.within_ms:g} ms"
    first = cheapest[0]
    if first is best:
        others = len(within) - 1
        return out, f"cost: {best.name} (cost {_cost(best):g}) is the cheapest of {others + 1}" + (
            f" within {budget}" if others else f" (none other within {budget})"
        )
    slower = ms[first.name] - ms[best.name]
    return out, (
        f"cost decided: {first.name} (cost {_cost(first):g}), {round(slower, 1):g} ms slower"
        f" than {best.name} (cost {_cost(best):g}), within {budget}"
    )


def _cost(region: Region) -> float:
    # The loader requires a cost on every region of a service with a budget.
    return region.cost if region.cost is not None else 0.0
