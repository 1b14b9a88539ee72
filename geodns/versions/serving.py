"""Which model version a region serves, and which one a service serves: read by routing's
version step, the rollout guard and the dashboard, below all three."""

from __future__ import annotations

from geodns.health.state import StateSnapshot
from geodns.zones.model import Region, Service


def region_version(service: Service, region: Region, state: StateSnapshot) -> str | None:
    """What a region serves: what its checks report, else the static `version` in config."""
    return state.get(service.key, region.name).version or region.version


def current_version(service: Service, state: StateSnapshot) -> str | None:
    """The version most healthy regions serve; ties go to the earliest-listed region's.

    With no healthy region reporting one, every region counts, so that a full outage does
    not make the current version unknown. None when no region reports a version at all.
    """
    for healthy_only in (True, False):
        counts: dict[str, int] = {}  # insertion order: first listed region first
        for region in service.regions:
            if healthy_only and not state.get(service.key, region.name).up:
                continue
            version = region_version(service, region, state)
            if version is not None:
                counts[version] = counts.get(version, 0) + 1
        if counts:
            best = max(counts.values())
            return next(v for v, n in counts.items() if n == best)
    return None
