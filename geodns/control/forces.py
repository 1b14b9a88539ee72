"""Operator forces on disk: the drain, down or up an operator set through the admin API, kept
across restarts in one small JSON file beside the rollouts file, replaced atomically.

    {"format": 1,
     "forces": [{"service": "inference.example.com", "region": "eu-west-1",
                 "state": "down", "set_at": 1764077982.1, "by": "admin API from 127.0.0.1"}]}

A rollout's drains are not here: the rollouts file holds those, and the guard drains its
regions again from it at start. `auto` (give the region back to its checks) removes a
region's entry.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from geodns.atomicfile import read_json_document, remove_stale_temps, write_atomically
from geodns.errors import GeodnsError
from geodns.health.state import Health

FORMAT = 1
FILE_NAME = ".geodns-forces.json"

Key = tuple[str, str]  # (service key, region name), as state snapshots are keyed


class ForceStoreError(GeodnsError):
    """The forces file cannot be read or written; the message names the file."""


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


def default_path(rollouts_file: str | os.PathLike[str]) -> Path:
    """`.geodns-forces.json` in the rollouts file's directory."""
    return Path(rollouts_file).parent / FILE_NAME


class ForceStore:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def load(self) -> dict[Key, Force]:
        """Every kept force by (service, region); a missing file holds none."""
        try:
            doc = read_json_document(self.path, FORMAT)
        except ValueError as exc:
            raise ForceStoreError(str(exc)) from None
        if doc is None:
            return {}
        entries = doc.get("forces")
        if not isinstance(entries, list):
            raise ForceStoreError(f"{self.path}: forces: must be a list")
        out: dict[Key, Force] = {}
        for i, entry in enumerate(entries):
            try:
                force = _from_json(entry)
            except (KeyError, TypeError, ValueError) as exc:
                raise ForceStoreError(f"{self.path}: forces[{i}]: {_why(exc)}") from None
            out[force.key] = force  # a later entry for the same region wins
        return out

    def save(self, forces: Mapping[Key, Force]) -> None:
        """Replace the file in one step; ForceStoreError (nothing written) when it cannot."""
        doc = {"format": FORMAT, "forces": [_to_json(forces[k]) for k in sorted(forces)]}
        data = (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()
        try:
            write_atomically(self.path, data)
        except OSError as exc:
            raise ForceStoreError(f"{self.path}: cannot write: {exc.strerror}") from exc

    def remove_stale_temps(self) -> list[Path]:
        """At start: the temp files of writes that a kill -9 interrupted."""
        return remove_stale_temps(self.path)


def _to_json(force: Force) -> dict[str, object]:
    return {
        "service": force.service,
        "region": force.region,
        "state": str(force.state),
        "set_at": force.set_at,
        "by": force.by,
    }


def _from_json(data: object) -> Force:
    if not isinstance(data, dict):
        raise TypeError("must be an object {service, region, state, set_at, by}")
    service, region, by = data["service"], data["region"], data.get("by", "")
    if not isinstance(service, str) or not service or not isinstance(region, str) or not region:
        raise ValueError("service and region must be names")
    state = Health(data["state"])
    set_at = data.get("set_at", 0.0)
    if isinstance(set_at, bool) or not isinstance(set_at, int | float):
        raise ValueError(f"set_at {set_at!r} is not epoch seconds")
    if not isinstance(by, str):
        raise ValueError(f"by {by!r} is not text")
    return Force(service.rstrip(".").lower(), region, state, float(set_at), by)


def _why(exc: Exception) -> str:
    if isinstance(exc, KeyError):
        return f"{exc.args[0]} is missing"
    return str(exc)
