"""Operator forces kept in the embedded store: the control plane writes them there, takes them
back at its next start, ignores those of regions the zones lack, and gives a region released
by a rollout back to its operator's force."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from geodns.control.plane import ControlPlane
from geodns.control.zonesource import ZoneSource
from geodns.health.monitor import UnknownRegion
from geodns.health.state import Health
from geodns.store.kv import StoreUnavailable, Txn
from geodns.store.local import FILE_NAME, LocalStore
from geodns.store.shared import Force, force_key, force_value
from geodns.zones.model import Service
from tests.conftest import EXAMPLE_ZONES

KEY = "inference.example.com"


def zones_dir(tmp_path: Path, versions: bool = False) -> Path:
    zones = tmp_path / "zones"
    zones.mkdir()
    shutil.copy(EXAMPLE_ZONES / "example.com.yaml", zones / "example.com.yaml")
    if versions:
        # A version per region, as the rollout guard needs to know the current one.
        zone = zones / "example.com.yaml"
        text = zone.read_text().replace(
            "        jurisdiction: ", '        version: "41"\n        jurisdiction: '
        )
        zone.write_text(text)
    return zones


@asynccontextmanager
async def running(zones: Path) -> AsyncIterator[ControlPlane]:
    """A control plane with its shared state started, as ControlPlane.start does it before
    anything else (no DNS worker, no health checks: the example's regions have none)."""
    source = ZoneSource(zones)
    plane = ControlPlane(source, source.load(), clock=lambda: 1000.0, node="dns-a")
    await plane.shared.store.open()
    await plane.shared.start()
    try:
        yield plane
    finally:
        await plane.stop()


def kept(zones: Path) -> dict[str, dict[str, object]]:
    """The forces in the embedded store's file, by region."""
    doc = json.loads((zones / FILE_NAME).read_text())
    prefix = f"forces/{KEY}/"
    return {k[len(prefix) :]: v["value"] for k, v in doc["keys"].items() if k.startswith(prefix)}


def service(plane: ControlPlane) -> Service:
    return next(s for s in plane.zones.services() if s.key == KEY)


def test_a_force_is_kept_and_comes_back_with_the_next_plane(tmp_path: Path) -> None:
    zones = zones_dir(tmp_path)

    async def main() -> None:
        async with running(zones) as first:
            snapshot = await first.force(KEY, "eu-west-1", "down", "alice")
            assert snapshot.get(KEY, "eu-west-1").forced is Health.DOWN
            assert first.published.get(KEY, "eu-west-1").health is Health.DOWN
        assert kept(zones) == {"eu-west-1": {"state": "down", "set_at": 1000.0, "by": "alice"}}
        # A new server on the same zones: forced before any check or answer.
        async with running(zones) as second:
            state = second.monitor.snapshot.get(KEY, "eu-west-1")
            assert (state.health, state.forced) == (Health.DOWN, Health.DOWN)
            assert second.published.get(KEY, "eu-west-1").health is Health.DOWN
            assert second.kept_force(KEY, "eu-west-1") == Force(
                KEY, "eu-west-1", Health.DOWN, 1000.0, "alice"
            )
            # The API may name the service as a DNS name, with its final dot.
            await second.force(KEY.upper() + ".", "eu-west-1", "auto")
            assert second.monitor.snapshot.get(KEY, "eu-west-1").forced is None
        assert kept(zones) == {}
        async with running(zones) as third:
            assert third.monitor.snapshot.get(KEY, "eu-west-1").forced is None
            assert third.kept_force(KEY, "eu-west-1") is None

    asyncio.run(main())


def test_a_force_is_not_applied_when_it_cannot_be_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    zones = zones_dir(tmp_path)

    def crash(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    async def main() -> None:
        async with running(zones) as plane:
            monkeypatch.setattr(os, "replace", crash)
            with pytest.raises(StoreUnavailable, match="cannot write: No space left on device"):
                await plane.force(KEY, "eu-west-1", "drain")
            monkeypatch.undo()
            assert plane.monitor.snapshot.get(KEY, "eu-west-1").forced is None
            assert plane.kept_force(KEY, "eu-west-1") is None
            assert plane.shared.state.forces == {}
        assert not (zones / FILE_NAME).exists()
        assert [p.name for p in zones.iterdir()] == ["example.com.yaml"]  # no temp file left

    asyncio.run(main())


def test_a_wrong_force_is_refused_before_the_store_is_asked(tmp_path: Path) -> None:
    zones = zones_dir(tmp_path)

    async def main() -> None:
        async with running(zones) as plane:
            with pytest.raises(UnknownRegion, match="has no region 'mars-1'"):
                await plane.force(KEY, "mars-1", "down")
            with pytest.raises(ValueError, match="mode 'sideways' is not one of"):
                await plane.force(KEY, "eu-west-1", "sideways")
            assert plane.shared.state.forces == {}
            assert not (zones / FILE_NAME).exists()  # nothing lasting was ever written

    asyncio.run(main())


def test_a_force_of_a_region_gone_from_the_zones_is_kept_but_ignored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    zones = zones_dir(tmp_path)

    async def main() -> None:
        store = LocalStore(zones / FILE_NAME)
        await store.open()
        mars = Force(KEY, "mars-1", Health.DOWN, 5.0, "bob")
        east = Force(KEY, "us-east-1", Health.DRAIN, 6.0, "carol")
        put = {force_key(KEY, f.region): force_value(f) for f in (mars, east)}
        await store.commit(Txn(put=put))
        with caplog.at_level(logging.INFO, logger="geodns.control"):
            async with running(zones) as plane:
                assert "forced down of region mars-1 of inference.example.com" in caplog.text
                assert "ignored: the zones have no such region" in caplog.text
                assert plane.monitor.snapshot.get(KEY, "us-east-1").health is Health.DRAIN
                assert (KEY, "mars-1") not in plane.monitor.snapshot.regions
                assert plane.ignored_forces() == [mars]
                await plane.force(KEY, "us-east-1", "up")  # another change keeps it
                assert set(kept(zones)) == {"mars-1", "us-east-1"}
                # Logged once, not at every change of the shared state.
                assert caplog.text.count("ignored: the zones have no such region") == 1
                # Only `auto` takes an absent region's force away; others are refused.
                with pytest.raises(UnknownRegion):
                    await plane.force(KEY, "mars-1", "down")
                await plane.force(KEY, "mars-1", "auto")
                assert plane.ignored_forces() == []
                assert set(kept(zones)) == {"us-east-1"}
                assert plane.monitor.snapshot.get(KEY, "us-east-1").forced is Health.UP

    asyncio.run(main())


def test_a_region_back_in_the_zones_takes_its_kept_force_again(tmp_path: Path) -> None:
    zones = zones_dir(tmp_path)
    zone = zones / "example.com.yaml"
    text = zone.read_text()

    async def main() -> None:
        async with running(zones) as plane:
            await plane.force(KEY, "ap-northeast-1", "drain", "dave")
            zone.write_text(text.replace("ap-northeast-1", "ap-southeast-1"))  # renamed away
            assert (await plane.reload("test")).ok
            assert (KEY, "ap-northeast-1") not in plane.monitor.snapshot.regions
            assert plane.monitor.snapshot.get(KEY, "ap-southeast-1").forced is None
            assert [f.region for f in plane.ignored_forces()] == ["ap-northeast-1"]
            zone.write_text(text)
            assert (await plane.reload("test")).ok
            assert plane.monitor.snapshot.get(KEY, "ap-northeast-1").forced is Health.DRAIN
            assert plane.published.get(KEY, "ap-northeast-1").health is Health.DRAIN
            assert plane.ignored_forces() == []

    asyncio.run(main())


def test_a_rollout_releasing_a_region_gives_it_back_to_the_operators_force(
    tmp_path: Path,
) -> None:
    zones = zones_dir(tmp_path, versions=True)

    async def main() -> None:
        async with running(zones) as plane:
            await plane.force(KEY, "us-east-1", "down", "erin")
            svc = service(plane)
            await plane.guard.start(svc, "42", min_old=1)
            await plane.guard.begin(svc, "us-east-1")
            # The rollout's drain outranks the operator's force while it holds the region ...
            assert plane.guard.drained() == {(KEY, "us-east-1")}
            assert plane.monitor.snapshot.get(KEY, "us-east-1").forced is Health.DRAIN
            assert plane.kept_force(KEY, "us-east-1").state is Health.DOWN  # type: ignore[union-attr]
            # ... and once the rollout lets it go, the operator's force holds again.
            await plane.guard.abort(svc)
            assert plane.guard.drained() == set()
            assert plane.monitor.snapshot.get(KEY, "us-east-1").forced is Health.DOWN
            assert plane.published.get(KEY, "us-east-1").health is Health.DOWN
            # A region without an operator's force goes back to its checks.
            await plane.guard.start(svc, "42", min_old=1)
            await plane.guard.begin(svc, "ap-northeast-1")
            assert plane.monitor.snapshot.get(KEY, "ap-northeast-1").forced is Health.DRAIN
            await plane.guard.abort(svc)
            assert plane.monitor.snapshot.get(KEY, "ap-northeast-1").forced is None

    asyncio.run(main())
