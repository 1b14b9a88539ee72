"""The state files of before the store: taken into an empty embedded store once, never over a
store that holds anything, and a damaged one names itself."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from geodns.health.state import Health
from geodns.store.kv import StoreUnavailable, Txn
from geodns.store.legacy import (
    FORCES_FILE,
    ROLLOUTS_FILE,
    SHIPPED_ROLLOUTS_FILE,
    import_legacy,
    legacy_files,
)
from geodns.store.local import FILE_NAME, LocalStore
from geodns.store.shared import Force, SharedState, decode, force_key, force_value
from geodns.versions.rollout import RegionStep, Rollout, to_json

KEY = "inference.example.com"

ROLLOUT = Rollout(
    service=KEY,
    from_version="41",
    to="42",
    min_old=2,
    soak_seconds=600.0,
    started=100.0,
    regions={"us-east-1": RegionStep("draining", 110.0, 140.0)},
)


def write(path: Path, doc: Any) -> None:
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))


def old_files(directory: Path) -> None:
    """What a node before the store left: a rollout and two forces."""
    write(directory / ROLLOUTS_FILE, {"format": 1, "rollouts": {KEY: to_json(ROLLOUT)}})
    write(
        directory / FORCES_FILE,
        {
            "format": 1,
            "forces": [
                # Written by hand, perhaps: the service as a name with its final dot.
                {
                    "service": "Inference.Example.com.",
                    "region": "eu-west-1",
                    "state": "down",
                    "set_at": 12.5,
                    "by": "alice",
                },
                {"service": KEY, "region": "mars-1", "state": "drain", "set_at": 13, "by": ""},
            ],
        },
    )


async def contents(store: LocalStore) -> SharedState:
    await store.open()
    listing = await store.list("")
    return decode(listing.revision, listing.entries)


def test_the_files_of_before_are_taken_into_an_empty_store(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    old_files(tmp_path)
    store = LocalStore(tmp_path / FILE_NAME)

    async def main() -> SharedState:
        with caplog.at_level(logging.WARNING, logger="geodns.store"):
            assert await import_legacy(store, legacy_files(tmp_path)) == 3
        return await contents(LocalStore(tmp_path / FILE_NAME))  # as the next start reads it

    state = asyncio.run(main())
    assert state.rollouts == {KEY: ROLLOUT}
    assert state.forces == {
        (KEY, "eu-west-1"): Force(KEY, "eu-west-1", Health.DOWN, 12.5, "alice"),
        (KEY, "mars-1"): Force(KEY, "mars-1", Health.DRAIN, 13.0, ""),
    }
    assert state.problems == ()
    # The files are left as they were, and the log says where they were taken from.
    assert (tmp_path / ROLLOUTS_FILE).exists() and (tmp_path / FORCES_FILE).exists()
    assert "took 3 forces and rollouts from" in caplog.text
    assert str(tmp_path / FORCES_FILE) in caplog.text


def test_a_rollouts_file_elsewhere_has_its_forces_file_beside_it(tmp_path: Path) -> None:
    elsewhere = tmp_path / "var"
    elsewhere.mkdir()
    assert legacy_files(tmp_path, elsewhere / "r.json") == [
        elsewhere / "r.json",
        elsewhere / FORCES_FILE,
    ]
    assert legacy_files(tmp_path) == [
        tmp_path / ROLLOUTS_FILE,
        tmp_path / SHIPPED_ROLLOUTS_FILE,
        tmp_path / FORCES_FILE,
    ]
    write(elsewhere / "r.json", {"format": 1, "rollouts": {KEY: to_json(ROLLOUT)}})
    store = LocalStore(tmp_path / FILE_NAME)

    async def main() -> SharedState:
        assert await import_legacy(store, legacy_files(tmp_path, elsewhere / "r.json")) == 1
        return await contents(store)

    assert asyncio.run(main()).rollouts == {KEY: ROLLOUT}


def test_the_shipped_units_rollouts_file_in_the_state_directory_is_taken_in(
    tmp_path: Path,
) -> None:
    # contrib/geodns.service and the Dockerfile gave --rollouts-file <state dir>/rollouts.json.
    write(tmp_path / SHIPPED_ROLLOUTS_FILE, {"format": 1, "rollouts": {KEY: to_json(ROLLOUT)}})
    store = LocalStore(tmp_path / FILE_NAME)

    async def main() -> SharedState:
        assert await import_legacy(store, legacy_files(tmp_path)) == 1
        return await contents(store)

    assert asyncio.run(main()).rollouts == {KEY: ROLLOUT}


def test_no_files_no_change(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / FILE_NAME)
    assert asyncio.run(import_legacy(store, legacy_files(tmp_path))) == 0
    assert not (tmp_path / FILE_NAME).exists()


def test_a_store_that_holds_anything_is_left_alone(tmp_path: Path) -> None:
    old_files(tmp_path)
    store = LocalStore(tmp_path / FILE_NAME)
    newer = Force(KEY, "us-east-1", Health.UP, 99.0, "bob")

    async def main() -> SharedState:
        await store.open()
        await store.commit(Txn(put={force_key(KEY, "us-east-1"): force_value(newer)}))
        assert await import_legacy(store, legacy_files(tmp_path)) == 0
        return await contents(LocalStore(tmp_path / FILE_NAME))

    state = asyncio.run(main())
    assert state.forces == {(KEY, "us-east-1"): newer}
    assert state.rollouts == {}


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        (FORCES_FILE, "{", "not JSON"),
        (ROLLOUTS_FILE, '{"format": 2, "rollouts": {}}', "format 2 is not 1"),
        (FORCES_FILE, "[]", "must be a JSON object"),
        (
            FORCES_FILE,
            '{"format": 1, "forces": [{"region": "b", "state": "down"}]}',
            "cannot be taken into the store: 'service'",
        ),
        (
            FORCES_FILE,
            '{"format": 1, "forces": [{"service": "a", "region": "b", "state": "auto"}]}',
            "cannot be taken into the store: 'auto' is not a valid Health",
        ),
        (FORCES_FILE, '{"format": 1, "forces": {"a": 1}}', "cannot be taken into the store"),
        (ROLLOUTS_FILE, '{"format": 1, "rollouts": ["a"]}', "cannot be taken into the store"),
        (
            ROLLOUTS_FILE,
            '{"format": 1, "rollouts": {"a.example": {}}}',
            "cannot be taken into the store: rollout: regions: missing",
        ),
    ],
)
def test_a_damaged_file_names_itself_and_nothing_is_taken(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    old_files(tmp_path)
    write(tmp_path / name, text)
    store = LocalStore(tmp_path / FILE_NAME)

    async def main() -> SharedState:
        with pytest.raises(StoreUnavailable) as info:
            await import_legacy(store, legacy_files(tmp_path))
        assert str(info.value).startswith(f"{tmp_path / name}: ")
        assert message in str(info.value)
        return await contents(store)

    # All or nothing: the good file is not taken without the damaged one either.
    state = asyncio.run(main())
    assert state.revision == 0 and not state.forces and not state.rollouts
