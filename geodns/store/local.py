"""The embedded store: one node's control state in one JSON file, no set-up.

    <state dir>/.geodns-state.json
    {"format": 1, "revision": 17,
     "keys": {"forces/inference.example.com/eu-west-1":
                {"mod_revision": 12, "value": {"state": "drain", ...}}}}

Every commit that changes a lasting key rewrites the file in one step (geodns.atomicfile):
a `kill -9` leaves the old file or the new, and the temp file it may leave is removed at
the next start. Leased keys (this node's registration and health observation) live in
memory only: they describe a running process, and expire with it. Values are JSON, kept
parsed in the file so that an operator can read it.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from geodns.atomicfile import read_json_document, remove_stale_temps, write_atomically
from geodns.store.kv import Change, Entry, Listing, StoreUnavailable, Txn, WatchCompacted

FORMAT = 1
FILE_NAME = ".geodns-state.json"


@dataclass
class _Lease:
    ttl: float
    expires: float


class LocalStore:
    """A KVStore kept in memory and, for keys without a lease, in `path`."""

    def __init__(self, path: str | Path, clock: Callable[[], float] = time.monotonic) -> None:
        self.path = Path(path)
        self.description = f"embedded store {self.path}"
        self._clock = clock
        self._entries: dict[str, Entry] = {}
        self._revision = 0
        self._leases: dict[int, _Lease] = {}
        self._next_lease = 1
        self._watchers: list[tuple[str, asyncio.Queue[tuple[int, list[Change]]]]] = []
        self._opened = False

    async def open(self) -> None:
        if self._opened:
            return
        remove_stale_temps(self.path)
        try:
            doc = read_json_document(self.path, FORMAT)
        except ValueError as exc:
            raise StoreUnavailable(str(exc)) from None
        if doc is not None:
            self._revision, self._entries = _decode(self.path, doc)
        self._opened = True

    async def close(self) -> None:
        self._opened = False

    async def list(self, prefix: str) -> Listing:
        self._expire()
        items = {k: e for k, e in self._entries.items() if k.startswith(prefix)}
        return Listing(self._revision, MappingProxyType(items))

    async def commit(self, txn: Txn) -> int | None:
        self._expire()
        for key, revision in txn.expect.items():
            entry = self._entries.get(key)
            if (0 if entry is None else entry.mod_revision) != revision:
                return None
        if not txn.put and not any(k in self._entries for k in txn.delete):
            return self._revision
        revision = self._revision + 1
        entries = dict(self._entries)
        changes = []
        for key in txn.delete:
            if entries.pop(key, None) is not None:
                changes.append(Change(key, None, revision))
        for key, value in txn.put.items():
            _check_json(key, value)
            entries[key] = Entry(value, revision)
            changes.append(Change(key, value, revision))
        self._save(revision, entries)
        self._apply(revision, entries, changes)
        return revision

    async def grant(self, ttl: float) -> int:
        lease = self._next_lease
        self._next_lease += 1
        ttl = float(max(1, math.ceil(ttl)))
        self._leases[lease] = _Lease(ttl, self._clock() + ttl)
        return lease

    async def keepalive(self, lease: int) -> bool:
        self._expire()
        held = self._leases.get(lease)
        if held is None:
            return False
        held.expires = self._clock() + held.ttl
        return True

    async def put_leased(self, key: str, value: bytes, lease: int) -> int:
        self._expire()
        if lease not in self._leases:
            raise StoreUnavailable(f"{self.description}: lease {lease} has expired")
        _check_json(key, value)
        revision = self._revision + 1
        entries = {**self._entries, key: Entry(value, revision, lease)}
        self._apply(revision, entries, [Change(key, value, revision)])
        return revision

    async def watch(self, prefix: str, after: int) -> AsyncIterator[tuple[int, list[Change]]]:
        if after < self._revision:
            # Only what happens from now on is kept for watchers; a caller that missed
            # something lists again.
            raise WatchCompacted(f"{self.description}: revision {after} is gone")
        queue: asyncio.Queue[tuple[int, list[Change]]] = asyncio.Queue()
        watcher = (prefix, queue)
        self._watchers.append(watcher)
        try:
            while True:
                yield await queue.get()
        finally:
            self._watchers.remove(watcher)

    # --- inside ---------------------------------------------------------------------

    def _expire(self) -> None:
        now = self._clock()
        gone = {lease for lease, held in self._leases.items() if held.expires <= now}
        if not gone:
            return
        for lease in gone:
            del self._leases[lease]
        dead = [k for k, e in self._entries.items() if e.lease in gone]
        if dead:
            revision = self._revision + 1
            entries = {k: e for k, e in self._entries.items() if e.lease not in gone}
            self._apply(revision, entries, [Change(k, None, revision) for k in dead])

    def _save(self, revision: int, entries: dict[str, Entry]) -> None:
        lasting = {k: e for k, e in sorted(entries.items()) if not e.lease}
        doc = {
            "format": FORMAT,
            "revision": revision,
            "keys": {
                k: {"mod_revision": e.mod_revision, "value": json.loads(e.value)}
                for k, e in lasting.items()
            },
        }
        data = (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(self.path, data)
        except OSError as exc:
            raise StoreUnavailable(f"{self.path}: cannot write: {exc.strerror}") from exc

    def _apply(self, revision: int, entries: dict[str, Entry], changes: list[Change]) -> None:
        self._revision = revision
        self._entries = entries
        for prefix, queue in self._watchers:
            mine = [c for c in changes if c.key.startswith(prefix)]
            if mine:
                queue.put_nowait((revision, mine))


def _check_json(key: str, value: bytes) -> None:
    try:
        json.loads(value)
    except ValueError as exc:
        raise ValueError(f"{key}: the embedded store keeps JSON values only: {exc}") from None


def _decode(path: Path, doc: dict[str, object]) -> tuple[int, dict[str, Entry]]:
    revision = doc.get("revision")
    keys = doc.get("keys")
    if isinstance(revision, bool) or not isinstance(revision, int) or revision < 0:
        raise StoreUnavailable(f"{path}: revision: {revision!r} is not a whole number")
    if not isinstance(keys, dict):
        raise StoreUnavailable(f"{path}: keys: must map key -> {{mod_revision, value}}")
    entries = {}
    for key, item in keys.items():
        mod = item.get("mod_revision") if isinstance(item, dict) else None
        if isinstance(mod, bool) or not isinstance(mod, int) or not 0 < mod <= revision:
            raise StoreUnavailable(f"{path}: keys.{key}: mod_revision {mod!r} is not valid")
        value = json.dumps(item.get("value"), sort_keys=True).encode()
        entries[key] = Entry(value, mod)
    return revision, entries
