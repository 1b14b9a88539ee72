"""What a fleet shares, as keys of the store, and the frozen view every node builds from them.

    forces/<service>/<region>   an operator's drain, up or down: {state, set_at, by}
    rollouts/<service>          the service's latest rollout (geodns.versions.rollout.to_json)
    versions/<service>          every model version a region of it has reported: {seen: [...]}
    nodes/<node>                under the node's lease: who it is, the digest of the state it
                                answers from, and its own checks' verdict per region
    rum/<node>                  under the node's lease: the latency its clients measured
                                (geodns.geo.rumshare), when it takes RUM reports
    audit/<time>-<node>-<rand>  one admin action (geodns.control.audit): not part of the
                                view, which skips these keys

The first three last until changed; a node's key vanishes with its lease when the node dies,
and its health votes with it. Every decision that reads them (quorum, rollout guard,
approved versions) is a pure function of this view, so nodes that see the same revision
decide the same. A value that cannot be decoded (written by hand, or by another version) is
skipped and reported in `problems`, never fatal: one bad key must not stop a fleet.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from geodns.geo.rum import MeasuredLatency, RumSettings
from geodns.geo.rumshare import from_share, to_share
from geodns.health.state import Health
from geodns.store.kv import Change, Entry
from geodns.versions.rollout import Rollout, from_json, to_json

Key = tuple[str, str]  # (service key, region name), as state snapshots are keyed

FORCES, ROLLOUTS, VERSIONS, NODES, RUM = "forces/", "rollouts/", "versions/", "nodes/", "rum/"
LEASED = (NODES, RUM)  # the prefixes of keys that live as long as their node
AUDIT = "audit/"


@dataclass(frozen=True, slots=True)
class Force:
    """One operator force, as set and as kept."""

    service: str  # service key, "inference.example.com"
    region: str
    state: Health  # DRAIN, DOWN or UP
    set_at: float  # epoch seconds
    by: str  # who or what set it: the `by` the operator gave, else "admin API from ADDRESS"

    @property
    def key(self) -> Key:
        return (self.service, self.region)


@dataclass(frozen=True, slots=True)
class Observation:
    """One node's own verdict on one region: its checks after their rise and fall."""

    health: Health  # UP or DOWN
    utilization: float | None = None
    version: str | None = None
    error: str | None = None  # why its latest probe failed
    observed: float | None = None  # epoch seconds of the probe behind it, the node's clock


@dataclass(frozen=True)
class NodeRecord:
    """A live node, as it registered itself under its lease."""

    name: str
    instance: str  # random per process: two processes claiming one name are told apart
    version: str  # geodns version
    started: float  # epoch seconds, the node's clock
    dns: tuple[str, ...] = ()  # where it answers DNS
    http: str | None = None  # its admin HTTP address, if any
    digest: str = ""  # of the routing state its answers are decided on now
    observations: Mapping[Key, Observation] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class SharedState:
    """The fleet's control state as of one store revision."""

    revision: int = 0
    forces: Mapping[Key, Force] = field(default_factory=lambda: MappingProxyType({}))
    rollouts: Mapping[str, Rollout] = field(default_factory=lambda: MappingProxyType({}))
    seen: Mapping[str, frozenset[str]] = field(default_factory=lambda: MappingProxyType({}))
    nodes: Mapping[str, NodeRecord] = field(default_factory=lambda: MappingProxyType({}))
    # Each node's measured latency, by node name (its lease ended: gone).
    measured: Mapping[str, MeasuredLatency] = field(default_factory=lambda: MappingProxyType({}))
    # Every key's mod_revision: what a compare-and-swap expects. A key absent here is 0.
    mod: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    # "key: why" for each value that could not be decoded and is ignored.
    problems: tuple[str, ...] = ()

    def mod_of(self, key: str) -> int:
        return self.mod.get(key, 0)

    def lasting(self) -> dict[str, Any]:
        """The keys that outlive nodes, as JSON values by key: what a node caches on disk."""
        out: dict[str, Any] = {}
        for force in self.forces.values():
            out[force_key(force.service, force.region)] = _force_json(force)
        for key, rollout in self.rollouts.items():
            out[rollout_key(key)] = to_json(rollout)
        for key, versions in self.seen.items():
            out[versions_key(key)] = {"seen": sorted(versions)}
        return out


# --- keys and values --------------------------------------------------------------------


def force_key(service: str, region: str) -> str:
    return f"{FORCES}{service}/{region}"


def rollout_key(service: str) -> str:
    return f"{ROLLOUTS}{service}"


def versions_key(service: str) -> str:
    return f"{VERSIONS}{service}"


def node_key(name: str) -> str:
    return f"{NODES}{name}"


def rum_key(name: str) -> str:
    return f"{RUM}{name}"


def encode(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def force_value(force: Force) -> bytes:
    return encode(_force_json(force))


def rollout_value(rollout: Rollout) -> bytes:
    return encode(to_json(rollout))


def versions_value(seen: Iterable[str]) -> bytes:
    return encode({"seen": sorted(set(seen))})


def rum_value(table: MeasuredLatency) -> bytes:
    return encode(to_share(table))


def node_value(node: NodeRecord) -> bytes:
    return encode(
        {
            "name": node.name,
            "instance": node.instance,
            "version": node.version,
            "started": node.started,
            "dns": list(node.dns),
            "http": node.http,
            "digest": node.digest,
            "observations": [
                {
                    "service": s,
                    "region": r,
                    "health": str(o.health),
                    "utilization": o.utilization,
                    "version": o.version,
                    "error": o.error,
                    "observed": o.observed,
                }
                for (s, r), o in sorted(node.observations.items())
            ],
        }
    )


# --- decoding -----------------------------------------------------------------------------


def decode(revision: int, entries: Mapping[str, Entry]) -> SharedState:
    """The view of a whole listing."""
    changes = [Change(k, e.value, e.mod_revision) for k, e in entries.items()]
    return apply(SharedState(), revision, changes)


def apply(state: SharedState, revision: int, changes: Iterable[Change]) -> SharedState:
    """`state` after `changes`. A change older than what `state` holds for its key is
    skipped (a watch replaying what a listing had). A deleted key leaves no trace, so
    changes must come in the store's order after a listing, as a watch brings them."""
    forces, rollouts = dict(state.forces), dict(state.rollouts)
    seen, nodes, mod = dict(state.seen), dict(state.nodes), dict(state.mod)
    measured = dict(state.measured)
    problems = {p.partition(": ")[0]: p for p in state.problems}
    tables: dict[str, dict[Any, Any]] = {
        FORCES: forces,
        ROLLOUTS: rollouts,
        VERSIONS: seen,
        NODES: nodes,
        RUM: measured,
    }
    for change in changes:
        key = change.key
        if key.startswith(AUDIT) or change.mod_revision < mod.get(key, 0):
            continue  # the audit log is read by itself, never routed on
        problems.pop(key, None)
        slot = _slot(key)
        if slot is not None:
            tables[slot[0]].pop(slot[1], None)
        if change.value is None:
            mod.pop(key, None)
            continue
        mod[key] = change.mod_revision
        try:
            if slot is None:
                raise ValueError(
                    "a force's key is forces/<service>/<region>"
                    if key.startswith(FORCES)
                    else "not a key geodns writes"
                )
            tables[slot[0]][slot[1]] = _decode(*slot, json.loads(change.value))
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            why = f"{exc.args[0]} is missing" if isinstance(exc, KeyError) else str(exc)
            problems[key] = f"{key}: {why}"
    return SharedState(
        max(revision, state.revision),
        MappingProxyType(forces),
        MappingProxyType(rollouts),
        MappingProxyType(seen),
        MappingProxyType(nodes),
        MappingProxyType(measured),
        MappingProxyType(mod),
        tuple(problems[k] for k in sorted(problems)),
    )


def _slot(key: str) -> tuple[str, Any] | None:
    """Which table a key fills and under what: (FORCES, (service, region)), or (ROLLOUTS,
    VERSIONS, NODES or RUM, name); None for a key geodns does not write."""
    for prefix in (FORCES, ROLLOUTS, VERSIONS, NODES, RUM):
        if key.startswith(prefix):
            name = key[len(prefix) :]
            if prefix != FORCES:
                return prefix, name
            service, _, region = name.partition("/")
            return (prefix, (service, region)) if service and region else None
    return None


def _decode(prefix: str, name: Any, data: Any) -> Any:
    """The value of a key of `prefix` named `name`; ValueError (or KeyError, TypeError)
    says what is wrong with it."""
    if prefix == FORCES:
        return force_from_json(*name, data)
    if prefix == ROLLOUTS:
        rollout = from_json(data)
        if rollout.service != name:
            raise ValueError(f"holds a rollout of {rollout.service}")
        return rollout
    if prefix == VERSIONS:
        versions = data["seen"] if isinstance(data, dict) else None
        if not isinstance(versions, list) or not all(isinstance(v, str) for v in versions):
            raise ValueError("seen: must be a list of versions")
        return frozenset(versions)
    if prefix == RUM:
        return from_share(data, RumSettings())  # each node routes by its own settings
    node = _node_from_json(data)
    if node.name != name:
        raise ValueError(f"holds node {node.name!r}")
    return node


def _force_json(force: Force) -> dict[str, Any]:
    return {"state": str(force.state), "set_at": force.set_at, "by": force.by}


def force_from_json(service: str, region: str, data: Any) -> Force:
    if not isinstance(data, dict):
        raise TypeError("must be an object {state, set_at, by}")
    state = Health(data["state"])
    set_at, by = data.get("set_at", 0.0), data.get("by", "")
    if isinstance(set_at, bool) or not isinstance(set_at, int | float) or not math.isfinite(set_at):
        raise ValueError(f"set_at {set_at!r} is not epoch seconds")
    if not isinstance(by, str):
        raise ValueError(f"by {by!r} is not text")
    return Force(service, region, state, float(set_at), by)


def _node_from_json(data: Any) -> NodeRecord:
    if not isinstance(data, dict):
        raise TypeError("must be an object")
    observations = {}
    items = data.get("observations", [])
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise TypeError("observations: must be a list of objects")
    for item in items:
        utilization = item.get("utilization")
        if utilization is not None and (
            isinstance(utilization, bool) or not isinstance(utilization, int | float)
        ):
            raise ValueError(f"utilization {utilization!r} is not a number")
        observations[(str(item["service"]), str(item["region"]))] = Observation(
            Health(item["health"]),
            None if utilization is None else float(utilization),
            _text_or_none(item.get("version")),
            _text_or_none(item.get("error")),
            _number_or_none(item.get("observed")),
        )
    http = data.get("http")
    return NodeRecord(
        name=str(data["name"]),
        instance=str(data["instance"]),
        version=str(data.get("version", "")),
        started=float(data.get("started", 0.0)),
        dns=tuple(str(a) for a in data.get("dns", [])),
        http=None if http is None else str(http),
        digest=str(data.get("digest", "")),
        observations=MappingProxyType(observations),
    )


def _number_or_none(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{value!r} is not a number")
    return float(value)


def _text_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def with_node(state: SharedState, node: NodeRecord) -> SharedState:
    """`state` with this node's own record as it is now, before the store echoes it back:
    a node always counts its own vote, connected or not."""
    return replace(state, nodes=MappingProxyType({**state.nodes, node.name: node}))
