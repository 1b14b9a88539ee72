"""Rollouts on disk: one small JSON file next to the zones, replaced atomically
(geodns.atomicfile).

    {"format": 1, "rollouts": {"inference.example.com": {...to_json...}}}

The default name is a dotfile so that the zone watcher, which ignores dotfiles, does not
take each rollout step for a zone change.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from geodns.atomicfile import read_json_document, remove_stale_temps, write_atomically
from geodns.errors import GeodnsError
from geodns.versions.rollout import Rollout, from_json, to_json

FORMAT = 1
FILE_NAME = ".geodns-rollouts.json"


class RolloutStoreError(GeodnsError):
    """The rollouts file cannot be read or written; the message names the file."""


def default_path(zones: str | os.PathLike[str]) -> Path:
    """`<zones dir>/.geodns-rollouts.json`; beside the file when the zones are one file."""
    zones = Path(zones)
    return (zones if zones.is_dir() else zones.parent) / FILE_NAME


class RolloutStore:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def load(self) -> dict[str, Rollout]:
        """Every stored rollout by service key; a missing file holds none."""
        try:
            doc = read_json_document(self.path, FORMAT)
        except ValueError as exc:
            raise RolloutStoreError(str(exc)) from None
        if doc is None:
            return {}
        rollouts = doc.get("rollouts")
        if not isinstance(rollouts, dict):
            raise RolloutStoreError(f"{self.path}: rollouts: must map service -> rollout")
        out: dict[str, Rollout] = {}
        for key, data in rollouts.items():
            try:
                rollout = from_json(data)
            except ValueError as exc:
                raise RolloutStoreError(f"{self.path}: rollouts.{key}: {exc}") from None
            if rollout.service != key:
                raise RolloutStoreError(
                    f"{self.path}: rollouts.{key}: holds a rollout of {rollout.service}"
                )
            out[key] = rollout
        return out

    def save(self, rollouts: Mapping[str, Rollout]) -> None:
        """Replace the file in one step: a crash leaves the old file or the new, never half."""
        doc = {"format": FORMAT, "rollouts": {k: to_json(r) for k, r in sorted(rollouts.items())}}
        data = (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()
        try:
            write_atomically(self.path, data)
        except OSError as exc:
            raise RolloutStoreError(f"{self.path}: cannot write: {exc.strerror}") from exc

    def remove_stale_temps(self) -> list[Path]:
        """At start: the temp files of writes that a kill -9 interrupted."""
        return remove_stale_temps(self.path)
