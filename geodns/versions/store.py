"""Rollouts on disk: one small JSON file next to the zones, replaced atomically.

    {"format": 1, "rollouts": {"inference.example.com": {...to_json...}}}

The default name is a dotfile so that the zone watcher, which ignores dotfiles, does not
take each rollout step for a zone change.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

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
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise RolloutStoreError(f"{self.path}: cannot read: {exc.strerror}") from None
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise RolloutStoreError(f"{self.path}: not JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise RolloutStoreError(f"{self.path}: must be a JSON object")
        if doc.get("format") != FORMAT:
            raise RolloutStoreError(
                f"{self.path}: format {doc.get('format')!r} is not {FORMAT}"
                " (written by another geodns version?)"
            )
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
        directory = self.path.parent
        try:
            # Same directory: os.replace is atomic only within one file system.
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=directory)
        except OSError as exc:
            raise RolloutStoreError(f"{self.path}: cannot write: {exc.strerror}") from None
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            if isinstance(exc, OSError):
                raise RolloutStoreError(f"{self.path}: cannot write: {exc.strerror}") from exc
            raise
        _fsync_dir(directory)


def _fsync_dir(directory: Path) -> None:
    # The rename itself is durable only once the directory entry is on disk.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    with contextlib.suppress(OSError):
        os.fsync(fd)
    os.close(fd)
