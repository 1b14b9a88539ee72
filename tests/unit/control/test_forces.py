"""Operator forces kept across restarts: the file, and the control plane that loads and keeps it."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
from pathlib import Path

import pytest

from geodns.control.forces import FILE_NAME, Force, ForceStore, ForceStoreError, default_path
from geodns.control.plane import ControlPlane
from geodns.control.zonesource import ZoneSource
from geodns.health.monitor import UnknownRegion
from geodns.health.state import Health
from tests.conftest import EXAMPLE_ZONES

KEY = "inference.example.com"


def zones_dir(tmp_path: Path) -> Path:
    zones = tmp_path / "zones"
    zones.mkdir()
    shutil.copy(EXAMPLE_ZONES / "example.com.yaml", zones / "example.com.yaml")
    return zones


def plane(zones: Path) -> ControlPlane:
    source = ZoneSource(zones)
    return ControlPlane(source, source.load(), clock=lambda: 1000.0)


def test_round_trip(tmp_path: Path) -> None:
    store = ForceStore(tmp_path / FILE_NAME)
    assert store.load() == {}
    forces = {
        (KEY, "eu-west-1"): Force(KEY, "eu-west-1", Health.DOWN, 12.5, "alice"),
        (KEY, "us-east-1"): Force(KEY, "us-east-1", Health.DRAIN, 13.0, "admin API from ::1"),
    }
    store.save(forces)
    assert store.load() == forces
    doc = json.loads((tmp_path / FILE_NAME).read_text())
    assert doc["format"] == 1
    assert doc["forces"][0] == {
        "service": KEY,
        "region": "eu-west-1",
        "state": "down",
        "set_at": 12.5,
        "by": "alice",
    }


def test_default_path_is_beside_the_rollouts_file(tmp_path: Path) -> None:
    assert default_path(tmp_path / ".geodns-rollouts.json") == tmp_path / ".geodns-forces.json"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "not JSON"),
        ('{"format": 2, "forces": []}', "format 2 is not 1"),
        ('{"format": 1, "forces": {}}', "forces: must be a list"),
        ('{"format": 1, "forces": [{"service": "a", "region": "b"}]}', "forces[0]: state is"),
        (
            '{"format": 1, "forces": [{"service": "a", "region": "b", "state": "auto"}]}',
            "forces[0]: 'auto' is not a valid Health",
        ),
    ],
)
def test_a_damaged_file_names_itself_and_the_problem(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / FILE_NAME
    path.write_text(text)
    with pytest.raises(ForceStoreError) as info:
        ForceStore(path).load()
    assert str(info.value).startswith(f"{path}: {message}")


def test_a_force_is_kept_and_comes_back_with_the_next_plane(tmp_path: Path) -> None:
    zones = zones_dir(tmp_path)
    first = plane(zones)
    first.force(KEY, "eu-west-1", "down", "alice")
    assert (zones / FILE_NAME).exists()
    # A new server on the same zones: forced before any check or answer.
    second = plane(zones)
    state = second.monitor.snapshot.get(KEY, "eu-west-1")
    assert (state.health, state.forced) == (Health.DOWN, Health.DOWN)
    assert second.published.get(KEY, "eu-west-1").health is Health.DOWN
    assert second.kept_force(KEY, "eu-west-1") == Force(
        KEY, "eu-west-1", Health.DOWN, 1000.0, "alice"
    )
    second.force(KEY, "eu-west-1", "auto")
    assert plane(zones).monitor.snapshot.get(KEY, "eu-west-1").forced is None
    assert json.loads((zones / FILE_NAME).read_text())["forces"] == []


def test_a_force_is_not_applied_when_it_cannot_be_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = plane(zones_dir(tmp_path))

    def crash(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(ForceStoreError, match="No space left on device"):
        p.force(KEY, "eu-west-1", "drain")
    assert p.monitor.snapshot.get(KEY, "eu-west-1").forced is None
    assert p.forces == {}


def test_a_force_of_a_region_gone_from_the_zones_is_kept_but_ignored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    zones = zones_dir(tmp_path)
    ForceStore(zones / FILE_NAME).save(
        {
            (KEY, "mars-1"): Force(KEY, "mars-1", Health.DOWN, 5.0, "bob"),
            (KEY, "us-east-1"): Force(KEY, "us-east-1", Health.DRAIN, 6.0, "carol"),
        }
    )
    with caplog.at_level(logging.INFO, logger="geodns.control"):
        p = plane(zones)
    assert "forced down of region mars-1 of inference.example.com" in caplog.text
    assert "ignored: the zones have no such region" in caplog.text
    assert p.monitor.snapshot.get(KEY, "us-east-1").health is Health.DRAIN
    assert (KEY, "mars-1") not in p.monitor.snapshot.regions
    assert [f.region for f in p.ignored_forces()] == ["mars-1"]
    p.force(KEY, "us-east-1", "up")  # another change keeps the ignored one in the file
    assert {f["region"] for f in json.loads((zones / FILE_NAME).read_text())["forces"]} == {
        "mars-1",
        "us-east-1",
    }
    # Only `auto` takes an absent region's force out of the file; others are refused.
    with pytest.raises(UnknownRegion):
        p.force(KEY, "mars-1", "down")
    p.force(KEY, "mars-1", "auto")
    assert p.ignored_forces() == []
    assert [f["region"] for f in json.loads((zones / FILE_NAME).read_text())["forces"]] == [
        "us-east-1"
    ]


def test_a_region_back_in_the_zones_takes_its_kept_force_again(tmp_path: Path) -> None:
    zones = zones_dir(tmp_path)
    zone = zones / "example.com.yaml"
    text = zone.read_text()
    p = plane(zones)
    p.force(KEY, "ap-northeast-1", "drain", "dave")
    zone.write_text(text.replace("ap-northeast-1", "ap-southeast-1"))  # renamed away
    assert asyncio.run(p.reload("test")).ok
    assert (KEY, "ap-northeast-1") not in p.monitor.snapshot.regions
    assert p.monitor.snapshot.get(KEY, "ap-southeast-1").forced is None
    assert [f.region for f in p.ignored_forces()] == ["ap-northeast-1"]
    zone.write_text(text)
    assert asyncio.run(p.reload("test")).ok
    assert p.monitor.snapshot.get(KEY, "ap-northeast-1").forced is Health.DRAIN
    assert p.published.get(KEY, "ap-northeast-1").health is Health.DRAIN


def test_a_rollout_releasing_a_region_gives_it_back_to_the_operators_force(
    tmp_path: Path,
) -> None:
    p = plane(zones_dir(tmp_path))
    p.force(KEY, "eu-west-1", "down", "erin")
    p._guard_drained = {(KEY, "eu-west-1")}  # as if a rollout had held it
    p.monitor.force(KEY, "eu-west-1", "drain")
    p._progress(p.monitor.snapshot)  # the guard holds nothing now: released
    assert p.monitor.snapshot.get(KEY, "eu-west-1").forced is Health.DOWN
