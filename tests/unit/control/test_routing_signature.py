"""The control plane hands workers a new state only when routing could tell it apart."""

from __future__ import annotations

import shutil
from pathlib import Path

from geodns.control.plane import ControlPlane
from geodns.control.zonesource import ZoneSource
from geodns.health.state import Health, RegionState, StateSnapshot
from tests.conftest import EXAMPLE_ZONES

KEY = "inference.example.com"


def plane(tmp_path: Path) -> ControlPlane:
    zones = tmp_path / "zones"
    zones.mkdir()
    shutil.copy(EXAMPLE_ZONES / "example.com.yaml", zones / "example.com.yaml")
    source = ZoneSource(zones)
    return ControlPlane(source, source.load())


def busy(u: float | None, health: Health = Health.UP) -> StateSnapshot:
    return StateSnapshot().with_region(KEY, "us-east-1", RegionState(health, u))


def test_utilization_matters_only_across_watermarks_and_inside_the_band(tmp_path: Path) -> None:
    sig = plane(tmp_path)._routing_signature  # the example's watermarks: 0.75 and 0.92
    assert sig(busy(None)) == sig(busy(0.3)) == sig(busy(0.75))
    assert sig(busy(0.3)) != sig(busy(0.8))
    assert sig(busy(0.8)) != sig(busy(0.85))  # inside the band the shed share moves
    assert sig(busy(0.92)) == sig(busy(0.99))
    assert sig(busy(0.3)) != sig(busy(0.3, Health.DOWN))
