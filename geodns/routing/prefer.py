"""Ordering preferences: clients an override holds (a corporate range, an ASN) pinned to an
order of regions, whatever their GeoIP record says.

Applied by the order step to the order it made: the pinned regions first, in the listed
order, then the others as ranked; regions a capacity step sheds this client from stay last.
Only regions the earlier steps kept are reordered, so residency and health hold.
"""

from __future__ import annotations

from geodns.routing.context import RouteContext
from geodns.zones.model import Region


def pinned(ordered: tuple[Region, ...], ctx: RouteContext) -> tuple[tuple[Region, ...], str | None]:
    """`ordered` as the first preference holding the client pins it; a note for explain."""
    client = ctx.client
    for pref in ctx.service.prefer:
        if pref.clients.matches_network(client.address, client.asn):
            rank = {name: i for i, name in enumerate(pref.order)}
            last = len(rank)
            out = tuple(
                sorted(ordered, key=lambda r: (r.name in ctx.demoted, rank.get(r.name, last)))
            )
            return out, f"pinned by {pref.describe()}: {', '.join(r.name for r in out)}"
    return ordered, None
