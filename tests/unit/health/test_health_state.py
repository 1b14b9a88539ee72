"""Region state: forced outranks checked; snapshots compare on what routing reads; pickling."""

from __future__ import annotations

import pickle
from pathlib import Path

from geodns.health.state import (
    Health,
    RegionState,
    StateSnapshot,
    effective_health,
    load_state_file,
)


def test_forced_outranks_checked_and_nobody_means_up() -> None:
    assert effective_health(None, None) is Health.UP
    assert effective_health(Health.DOWN, None) is Health.DOWN
    assert effective_health(Health.UP, None) is Health.UP
    assert effective_health(Health.DOWN, Health.UP) is Health.UP
    assert effective_health(Health.UP, Health.DRAIN) is Health.DRAIN
    assert effective_health(None, Health.DOWN) is Health.DOWN


def test_old_constructors_still_work() -> None:
    state = RegionState(Health.DOWN, 0.5)
    assert (state.health, state.utilization, state.up) == (Health.DOWN, 0.5, False)
    assert (state.checked, state.forced, state.since, state.version) == (None, None, None, None)
    assert RegionState().up


def test_routing_differs_only_on_health_or_utilization() -> None:
    base = StateSnapshot().with_region("s", "a", RegionState(Health.UP, 0.4, checked=Health.UP))
    probed = base.with_region(
        "s", "a", RegionState(Health.UP, 0.4, Health.UP, last_check=5.0, last_latency=0.01)
    )
    assert probed.version == base.version + 1
    assert not base.routing_differs(probed)
    assert base.routing_differs(probed.with_region("s", "a", RegionState(Health.UP, 0.5)))
    assert base.routing_differs(probed.with_region("s", "a", RegionState(Health.DRAIN, 0.4)))
    # A region missing from one snapshot is up there, with no utilization.
    assert not StateSnapshot().routing_differs(StateSnapshot().with_region("s", "b", RegionState()))
    assert StateSnapshot().routing_differs(
        StateSnapshot().with_region("s", "b", RegionState(Health.DOWN))
    )


def test_snapshots_pickle_for_dns_workers() -> None:
    snap = StateSnapshot().with_region(
        "s", "a", RegionState(Health.DRAIN, 0.7, Health.UP, Health.DRAIN, 1.0, 2.0, "x", 0.1, "42")
    )
    again = pickle.loads(pickle.dumps(snap))
    assert again == snap and again.version == snap.version
    assert again.get("s", "a").forced is Health.DRAIN


def test_state_file_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "state.yaml"
    path.write_text("inference.example.com:\n  eu-west-1: {state: drain, utilization: 0.3}\n")
    snap = load_state_file(path)
    assert snap.get("inference.example.com", "eu-west-1") == RegionState(Health.DRAIN, 0.3)
    assert snap.get("inference.example.com", "us-east-1").up
