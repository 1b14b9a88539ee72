"""Region state snapshots: up, down or drained, GPU utilization; and a YAML file to set them."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from geodns.errors import ConfigError, ConfigErrors
from geodns.geo.rum import NO_MEASUREMENTS, MeasuredLatency
from geodns.yamlsource import read_yaml_file
from geodns.zones.model import ZoneSet


class Health(StrEnum):
    UP = "up"
    DOWN = "down"
    DRAIN = "drain"  # healthy, but taken out of answers on purpose (maintenance, rollout)


@dataclass(frozen=True, slots=True)
class RegionState:
    """One region at one moment. Routing reads `health`, `up` and `utilization` only.

    `health` is the effective health: an operator's `forced` state outranks what the checks
    say (`checked`); with neither, a region is up. The other fields are for people
    (dashboard, admin API): they change with every probe.
    """

    health: Health = Health.UP
    utilization: float | None = None  # GPU utilization, 0..1; None when not reported
    # UP or DOWN from health checks: the fleet's verdict by the service's quorum over every
    # live node's own checks (this node alone: its own); None: not checked (yet)
    checked: Health | None = None
    forced: Health | None = None  # an operator's override; None: the checks decide
    since: float | None = None  # epoch seconds: when `health` last changed (or was first known)
    last_check: float | None = None  # epoch seconds of the latest probe's result
    last_error: str | None = None  # why the latest probe failed, or what it ignored; None: clean
    last_latency: float | None = None  # seconds the latest probe took
    version: str | None = None  # the model version the region reports
    own: Health | None = None  # this node's own checks, after rise and fall (a fleet's vote)
    # The shares the capacity controller (geodns.health.load) publishes, multiples of 1/32:
    # of its own client buckets the region sheds, and of other regions' shed buckets it
    # takes. `shed` None: no controller has seen the region (a state file): routing reads
    # both off `utilization`.
    shed: float | None = None
    accept: float = 1.0

    @property
    def up(self) -> bool:
        return self.health is Health.UP

    @property
    def routing(self) -> tuple[Health, float | None, str | None, float | None, float]:
        """What the routing pipeline reads: when this is unchanged, cached decisions hold."""
        return (self.health, self.utilization, self.version, self.shed, self.accept)


def effective_health(checked: Health | None, forced: Health | None) -> Health:
    """Forced outranks checked; a region nobody has a word on is up."""
    if forced is not None:
        return forced
    if checked is not None:
        return checked
    return Health.UP


UP = RegionState()


@dataclass(frozen=True, slots=True)
class ServiceVersions:
    """Model versions of one service as the control plane judges them (rollouts included)."""

    approved: frozenset[str]  # versions plain answers may reach
    canary: str | None = None  # a rollout's new version, before validation
    seen: frozenset[str] = frozenset()  # every version a region has reported: v<version> hosts


@dataclass(frozen=True)
class StateSnapshot:
    """Every region's state at one moment; regions not listed are up.

    `version` changes with every new snapshot so that caches of decisions can be dropped.
    """

    version: int = 0
    regions: Mapping[tuple[str, str], RegionState] = field(
        default_factory=lambda: MappingProxyType({})
    )
    # Per service key; a service not listed has its current version judged by routing
    # from the regions' reports (the one most healthy regions serve).
    versions: Mapping[str, ServiceVersions] = field(default_factory=lambda: MappingProxyType({}))
    # Latency measured by clients (geodns.geo.rum), as the control plane last aggregated it.
    measured: MeasuredLatency = NO_MEASUREMENTS

    def get(self, service: str, region: str) -> RegionState:
        return self.regions.get((service, region), UP)

    def with_region(self, service: str, region: str, state: RegionState) -> StateSnapshot:
        regions = dict(self.regions)
        regions[(service, region)] = state
        return StateSnapshot(
            self.version + 1, MappingProxyType(regions), self.versions, self.measured
        )

    def with_regions(self, regions: Mapping[tuple[str, str], RegionState]) -> StateSnapshot:
        """The next snapshot, holding exactly `regions`."""
        return StateSnapshot(
            self.version + 1, MappingProxyType(dict(regions)), self.versions, self.measured
        )

    def with_versions(self, versions: Mapping[str, ServiceVersions]) -> StateSnapshot:
        return StateSnapshot(
            self.version + 1, self.regions, MappingProxyType(dict(versions)), self.measured
        )

    def with_measured(self, measured: MeasuredLatency) -> StateSnapshot:
        return StateSnapshot(self.version + 1, self.regions, self.versions, measured)

    def __reduce__(self) -> tuple[Any, ...]:
        # A mappingproxy cannot be pickled, and snapshots travel to DNS worker processes.
        return (
            _restore_snapshot,
            (self.version, dict(self.regions), dict(self.versions), self.measured),
        )

    def routing_differs(self, other: StateSnapshot) -> bool:
        """Whether routing could decide differently under `other` (health, utilization,
        model versions, measured latency)."""
        if dict(self.versions) != dict(other.versions):
            return True
        mine, theirs = self.measured, other.measured
        if mine is not theirs and mine.routing_key() != theirs.routing_key():
            return True
        keys = self.regions.keys() | other.regions.keys()
        return any(self.get(*k).routing != other.get(*k).routing for k in keys)


def _restore_snapshot(
    version: int,
    regions: dict[tuple[str, str], RegionState],
    versions: dict[str, ServiceVersions] | None = None,
    measured: MeasuredLatency = NO_MEASUREMENTS,
) -> StateSnapshot:
    return StateSnapshot(
        version, MappingProxyType(regions), MappingProxyType(versions or {}), measured
    )


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
