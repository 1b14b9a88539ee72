"""The rollouts file: round trip, atomic replacement, clear errors for corrupt files."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from geodns.versions.rollout import RegionStep, Rollout
from geodns.versions.store import FILE_NAME, RolloutStore, RolloutStoreError, default_path


def rollout(service: str = "inference.example.com", status: str = "running") -> Rollout:
    return Rollout(
        service=service,
        from_version="41",
        to="42",
        min_old=2,
        soak_seconds=600.0,
        started=100.0,
        status=status,  # type: ignore[arg-type]
        regions={"us-east-1": RegionStep("draining", 110.0, 140.0)},
    )


def test_missing_file_is_empty(tmp_path: Path) -> None:
    assert RolloutStore(tmp_path / "none.json").load() == {}


def test_round_trip_and_no_temp_file_left(tmp_path: Path) -> None:
    store = RolloutStore(tmp_path / FILE_NAME)
    rollouts = {"inference.example.com": rollout(), "chat.example.com": rollout("chat.example.com")}
    store.save(rollouts)
    assert store.load() == rollouts
    assert sorted(p.name for p in tmp_path.iterdir()) == [FILE_NAME]
    doc = json.loads((tmp_path / FILE_NAME).read_text())
    assert doc["format"] == 1
    assert doc["rollouts"]["inference.example.com"]["regions"]["us-east-1"]["deploy_after"] == 140


def test_a_crash_before_the_rename_leaves_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / FILE_NAME
    store = RolloutStore(path)
    store.save({"inference.example.com": rollout()})
    before = path.read_bytes()

    def crash(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(
        RolloutStoreError, match=re.escape(f"{path}: cannot write: No space left on device")
    ):
        store.save({"inference.example.com": rollout(status="aborted")})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == [FILE_NAME]  # the temp file is gone too


def test_an_unwritable_directory_is_a_clear_error(tmp_path: Path) -> None:
    store = RolloutStore(tmp_path / "gone" / FILE_NAME)
    with pytest.raises(RolloutStoreError, match="cannot write"):
        store.save({})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not JSON: Expecting property name"),
        ("[]", "must be a JSON object"),
        ('{"rollouts": {}}', "format None is not 1"),
        ('{"format": 2, "rollouts": {}}', "format 2 is not 1"),
        ('{"format": 1, "rollouts": []}', "rollouts: must map service -> rollout"),
        ('{"format": 1, "rollouts": {"a.example": {}}}', "rollouts.a.example: rollout: regions:"),
    ],
)
def test_corrupt_files_name_the_file_and_the_problem(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / FILE_NAME
    path.write_text(text)
    with pytest.raises(RolloutStoreError) as info:
        RolloutStore(path).load()
    assert str(info.value).startswith(f"{path}: {message}")


def test_a_rollout_filed_under_another_service_is_refused(tmp_path: Path) -> None:
    path = tmp_path / FILE_NAME
    RolloutStore(path).save({"inference.example.com": rollout()})
    doc = json.loads(path.read_text())
    doc["rollouts"]["chat.example.com"] = doc["rollouts"].pop("inference.example.com")
    path.write_text(json.dumps(doc))
    with pytest.raises(
        RolloutStoreError, match=re.escape("rollouts.chat.example.com: holds a rollout of")
    ):
        RolloutStore(path).load()


def test_default_path_is_a_dotfile_beside_the_zones(tmp_path: Path) -> None:
    zone = tmp_path / "example.com.yaml"
    zone.write_text("")
    assert default_path(tmp_path) == tmp_path / ".geodns-rollouts.json"
    assert default_path(zone) == tmp_path / ".geodns-rollouts.json"
