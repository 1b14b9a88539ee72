"""Region state snapshots: up, down or drained, GPU utilization; and a YAML file to set them."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from geodns.errors import ConfigError, ConfigErrors
from geodns.zones.model import ZoneSet
from geodns.zones.yamlsource import read_yaml_file


class Health(StrEnum):
    UP = "up"
    DOWN = "down"
    DRAIN = "drain"  # healthy, but taken out of answers on purpose (maintenance, rollout)


@dataclass(frozen=True, slots=True)
class RegionState:
    health: Health = Health.UP
    utilization: float | None = None  # GPU utilization, 0..1; None when not reported

    @property
    def up(self) -> bool:
        return self.health is Health.UP


UP = RegionState()


@dataclass(frozen=True)
class StateSnapshot:
    """Every region's state at one moment; regions not listed are up.

    `version` changes with every new snapshot so that caches of decisions can be dropped.
    """

    version: int = 0
    regions: Mapping[tuple[str, str], RegionState] = field(
        default_factory=lambda: MappingProxyType({})
    )

    def get(self, service: str, region: str) -> RegionState:
        return self.regions.get((service, region), UP)

    def with_region(self, service: str, region: str, state: RegionState) -> StateSnapshot:
        regions = dict(self.regions)
        regions[(service, region)] = state
        return StateSnapshot(self.version + 1, MappingProxyType(regions))


ALL_UP = StateSnapshot()


def load_state_file(path: str | os.PathLike[str], zones: ZoneSet | None = None) -> StateSnapshot:
    """Read region states from YAML, for tests and `geodns explain --state`:

        inference.example.com:
          eu-west-1: {state: down}
          us-east-1: {utilization: 0.85}

    With `zones`, service and region names are checked against them.
    """
    doc = read_yaml_file(path)
    errors: list[ConfigError] = []
    data: Any = doc.data or {}
    known: dict[str, set[str]] | None = None
    if zones is not None:
        known = {
            s.key: {r.name for r in s.regions}
            for z in zones.zones.values()
            for s in z.services.values()
        }
    regions: dict[tuple[str, str], RegionState] = {}
    if not isinstance(data, dict):
        raise ConfigErrors([doc.error((), "must map service name -> region -> state")])
    for service, by_region in data.items():
        key = service.rstrip(".")
        if known is not None and key not in known:
            errors.append(doc.error((service,), f"no service {key!r} in the zones"))
            continue
        if not isinstance(by_region, dict):
            errors.append(doc.error((service,), "must map region -> {state, utilization}"))
            continue
        for region, spec in by_region.items():
            path = (service, region)
            if known is not None and region not in known[key]:
                errors.append(doc.error(path, f"service {key} has no region {region!r}"))
                continue
            if not isinstance(spec, dict) or not set(spec) <= {"state", "utilization"}:
                errors.append(doc.error(path, "must be {state: up|down|drain, utilization: 0..1}"))
                continue
            try:
                health = Health(spec.get("state", "up"))
            except ValueError:
                errors.append(
                    doc.error((*path, "state"), f"{spec['state']!r} is not up, down or drain")
                )
                continue
            util = spec.get("utilization")
            if util is not None and (
                isinstance(util, bool) or not isinstance(util, int | float) or not 0 <= util <= 1
            ):
                errors.append(doc.error((*path, "utilization"), f"{util!r} is not a ratio 0..1"))
                continue
            regions[(key, region)] = RegionState(health, None if util is None else float(util))
    if errors:
        raise ConfigErrors(errors)
    return StateSnapshot(1, MappingProxyType(regions))
