"""Step 5, select: the first N regions that have an address of the asked family."""

from __future__ import annotations

from geodns.zones.model import Region


def select(
    regions: tuple[Region, ...], count: int, family: int
) -> tuple[tuple[Region, tuple[str, ...]], ...]:
    """(region, its addresses) for the first `count` regions with IPv4 (4) or IPv6 (6)
    addresses; a region without one is skipped, so N answers stay N where possible."""
    chosen = []
    for region in regions:
        addresses = region.ipv4 if family == 4 else region.ipv6
        if addresses:
            chosen.append((region, addresses))
            if len(chosen) == count:
                break
    return tuple(chosen)
