"""What a node knows of its fleet, as plain JSON: the store, every live node and whether
it agrees, and each region's votes and their quorum. /api/state's `fleet`, the dashboard's
Fleet panel, /metrics, `geodns fleet` and `geodns explain` all read this one view."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from geodns.health.quorum import Verdict
from geodns.store.follower import SharedFollower
from geodns.zones.model import ZoneSet

Key = tuple[str, str]  # (service key, region name)


def fleet_view(
    zones: ZoneSet,
    follower: SharedFollower,
    verdicts: Mapping[Key, Verdict],
    embedded: bool,
    now: float,
) -> dict[str, Any]:
    """The fleet as this node sees it: the store, every live node, and each region's
    votes and quorum (for /api/state, the dashboard, /metrics and `geodns fleet`)."""
    shared, me = follower.state, follower.node.name
    mine = follower.node.digest
    nodes = [
        {
            "name": name,
            "self": name == me,
            "dns": list(node.dns),
            "http": node.http,
            "version": node.version,
            "started": node.started,
            # Its lease is alive while the store lists it: seen now, or when we were cut off.
            "last_seen": now if name == me or follower.connected else follower.since,
            "changed": follower.heard.get(name),  # when its record last changed
            "digest": node.digest,
            # Cut off from the store, the others' digests are old news: unknown.
            "agrees": node.digest == mine if follower.connected or name == me else None,
        }
        for name, node in sorted(shared.nodes.items())
    ]
    votes: dict[str, dict[str, Any]] = {}
    for service in zones.services():
        for region in service.regions:
            key = (service.key, region.name)
            verdict = verdicts.get(key)
            if verdict is None:
                continue
            by_node = {
                name: {
                    "health": str(seen.health),
                    "utilization": seen.utilization,
                    "version": seen.version,
                    "error": seen.error,
                }
                for name, node in sorted(shared.nodes.items())
                if (seen := node.observations.get(key)) is not None
            }
            votes.setdefault(service.key, {})[region.name] = {
                "policy": str(service.quorum),
                "result": None if verdict.checked is None else str(verdict.checked),
                "up": verdict.up,
                "down": verdict.down,
                "reason": verdict.describe(),
                "votes": by_node,
            }
    return {
        "node": me,
        "store": {
            "kind": "embedded" if embedded else "etcd",
            "description": follower.store.description,
            "connected": follower.connected,
            "since": follower.since,
            "error": follower.error,
            "revision": shared.revision,
            "last_event": follower.last_event,
            "round_trip_seconds": follower.round_trip,
            "lost": follower.lost,
            "problems": list(shared.problems),
        },
        "nodes": nodes,
        # The lasting shared state: operator forces, and each service's latest rollout.
        "forces": [
            {
                "service": f.service,
                "region": f.region,
                "state": str(f.state),
                "set_at": f.set_at,
                "by": f.by,
            }
            for _, f in sorted(shared.forces.items())
        ],
        "rollouts": [
            {
                "service": r.service,
                "from_version": r.from_version,
                "to": r.to,
                "status": r.status,
                "regions": {name: step.phase for name, step in r.regions.items()},
            }
            for _, r in sorted(shared.rollouts.items())
        ],
        "disagree": sorted(n["name"] for n in nodes if n["agrees"] is False),
        "votes": votes,
    }
