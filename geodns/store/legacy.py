"""The state files of geodns before the store, taken into the embedded store once.

Before the store a node kept its rollouts in `.geodns-rollouts.json` (or `--rollouts-file`,
`rollouts.json` in the shipped systemd unit and Dockerfile) and its operator forces in
`.geodns-forces.json` beside it. The first start with the store reads
them into it, when the store is still empty, so that an upgrade keeps every drain and
rollout; the files are left as they were (the log says they can go).
"""

from __future__ import annotations

import logging
from pathlib import Path

from geodns.atomicfile import read_json_document
from geodns.store.kv import KVStore, StoreUnavailable, Txn
from geodns.store.shared import (
    Force,
    force_from_json,
    force_key,
    force_value,
    rollout_key,
    rollout_value,
)
from geodns.versions.rollout import from_json

log = logging.getLogger("geodns.store")

ROLLOUTS_FILE = ".geodns-rollouts.json"
FORCES_FILE = ".geodns-forces.json"
FORMAT = 1


SHIPPED_ROLLOUTS_FILE = "rollouts.json"  # the name contrib/geodns.service and the Dockerfile gave


def legacy_files(directory: Path, rollouts_file: Path | None = None) -> list[Path]:
    """Where the files of a node before the store would be: `--rollouts-file`, else the
    default name or the shipped units' name in the state directory, and the forces beside."""
    if rollouts_file is not None:
        return [rollouts_file, rollouts_file.parent / FORCES_FILE]
    return [directory / ROLLOUTS_FILE, directory / SHIPPED_ROLLOUTS_FILE, directory / FORCES_FILE]


async def import_legacy(store: KVStore, files: list[Path]) -> int:
    """Copy what `files` hold into an empty `store`; the number of keys written.

    A store that holds anything already is left alone: it is newer than the files.
    StoreUnavailable names the file when one cannot be read.
    """
    if not any(f.exists() for f in files):
        return 0
    await store.open()
    listing = await store.list("")
    if listing.entries:
        return 0
    put: dict[str, bytes] = {}
    for path in files:
        try:
            doc = read_json_document(path, FORMAT)
        except ValueError as exc:
            raise StoreUnavailable(f"{exc} (a state file from before the store)") from None
        if doc is None:
            continue
        try:
            for service, data in (doc.get("rollouts") or {}).items():
                put[rollout_key(service)] = rollout_value(from_json(data))
            for data in doc.get("forces") or []:
                service = str(data["service"]).rstrip(".").lower()
                force: Force = force_from_json(service, str(data["region"]), data)
                put[force_key(force.service, force.region)] = force_value(force)
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise StoreUnavailable(f"{path}: cannot be taken into the store: {exc}") from None
    if put:
        await store.commit(Txn(put=put))
        log.warning(
            "took %d forces and rollouts from %s into %s; those files are no longer read",
            len(put),
            ", ".join(str(f) for f in files if f.exists()),
            store.description,
        )
    return len(put)
