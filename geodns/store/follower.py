"""A node's live copy of the shared control state: list, then watch, forever.

The follower keeps `state` (a SharedState) current from the store and calls `on_change`
with every new one; it keeps this node's own record alive under a lease; and it is the one
way to write. It never blocks answers: DNS reads the snapshots the control plane derives
from `state`, and when the store is lost the last state stays in force.

- Lost store: a broken watch is retried at once (the store fails over to another etcd
  member); if that fails too, `connected` goes False, `error` says why, and the follower
  retries with a growing pause (0.2 s up to 2 s), listing again and watching from there.
  Writes raise StoreUnavailable meanwhile: nothing is applied locally that the fleet
  would not see.
- Start without a store: the lasting keys (forces, rollouts, versions) cached on disk by
  the last run are the state until the store answers.
- Lease: this node's record is put under a lease of `lease_ttl` seconds renewed every
  third of it; a node killed with `kill -9` loses its record, and its health votes, when
  the lease expires. A lease lost while cut off is replaced and the record put again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType

from geodns.atomicfile import read_json_document, remove_stale_temps, write_atomically
from geodns.store.kv import Change, KVStore, StoreUnavailable, Txn
from geodns.store.shared import (
    AUDIT,
    LEASED,
    NODES,
    NodeRecord,
    SharedState,
    apply,
    decode,
    node_key,
    node_value,
)

log = logging.getLogger("geodns.store")

CACHE_FORMAT = 1
RETRY_MIN, RETRY_MAX = 0.2, 2.0  # seconds between attempts to reach a lost store
PUBLISH_COALESCE = 0.05  # seconds: changes of this node's record this close are one write
CATCH_UP = 2.0  # seconds a writer waits for its own change to come back through the watch


class SharedFollower:
    def __init__(
        self,
        store: KVStore,
        node: NodeRecord,
        on_change: Callable[[SharedState], None],
        *,
        cache: Path | None = None,
        lease_ttl: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.node = node
        self._on_change = on_change
        self.cache = cache
        self.lease_ttl = lease_ttl
        self._clock = clock
        self.state = SharedState()
        self.connected = False
        self.error: str | None = "not connected yet"
        self.since = clock()  # when `connected` last changed
        self.last_event: float | None = None  # epoch seconds of the latest watch event
        self.lost = 0  # times the store was lost since start
        self.heard: dict[str, float] = {}  # node name -> epoch seconds its record last changed
        self.round_trip: float | None = None  # seconds from a commit to its watch event
        self._lease = 0
        # Other keys this node keeps under its lease (its measured latency): key -> value,
        # and what the store holds of them under the current lease.
        self._leased: dict[str, bytes] = {}
        self._leased_put: dict[str, bytes] = {}
        self._replaced: set[str] = set()  # instances of earlier runs whose record we replaced
        self._dirty = asyncio.Event()
        self._revision_seen = asyncio.Condition()
        self._tasks: list[asyncio.Task[None]] = []
        self._opened = False

    # --- running ---------------------------------------------------------------------

    async def start(self, wait: float = 2.0) -> None:
        """Begin following; returns once the first listing is in, or after `wait` seconds
        with the cached state when the store does not answer (it keeps trying)."""
        if self.cache is not None:
            self._load_cache()
        first = asyncio.get_running_loop().create_future()
        self._tasks.append(asyncio.create_task(self._follow(first), name="store follower"))
        self._tasks.append(asyncio.create_task(self._publish_loop(), name="store publisher"))
        self._tasks.append(asyncio.create_task(self._keepalive_loop(), name="store lease"))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(first), wait)
        if self.connected:
            # Registered before the first answer: the fleet sees every node that answers.
            with contextlib.suppress(StoreUnavailable, TimeoutError):
                await asyncio.wait_for(self._publish(), wait)
        if not self.connected:
            log.error(
                "shared store %s unreachable at start (%s): serving from %s and this node's"
                " own checks until it answers",
                self.store.description,
                self.error,
                "the state cached on disk"
                if self.state.revision or self.state.forces
                else "no shared state",
            )

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        with contextlib.suppress(Exception):
            await self.store.close()

    # --- writing ---------------------------------------------------------------------

    async def commit(self, txn: Txn) -> int | None:
        """Commit through the store and wait (briefly) until the watch has brought the change
        back, so that the caller reads its own write. None when an expectation failed."""
        if not self.connected:
            raise StoreUnavailable(self.error or f"{self.store.description}: not connected")
        started = time.monotonic()
        revision = await self.store.commit(txn)
        if revision is not None and await self.caught_up(revision):
            self.round_trip = time.monotonic() - started
        return revision

    async def caught_up(self, revision: int, timeout: float = CATCH_UP) -> bool:
        async with self._revision_seen:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._revision_seen.wait_for(lambda: self.state.revision >= revision), timeout
                )
        return self.state.revision >= revision

    async def refresh(self) -> SharedState:
        """List again now: after a compare-and-swap lost to a change the watch has not
        brought yet."""
        listing = await self.store.list("")
        await self._install(decode(listing.revision, listing.entries))
        return self.state

    def update_node(self, node: NodeRecord) -> None:
        """This node's record changed (digest, observations): publish it soon. It counts in
        `state` at once, whether or not the store is reachable."""
        self.node = node
        self._dirty.set()
        self._set(self.state)

    def put_leased(self, key: str, value: bytes) -> None:
        """Keep `key` at `value` under this node's lease: written soon, written again with
        a new lease, gone when the node is."""
        self._leased[key] = value
        self._dirty.set()

    # --- inside ---------------------------------------------------------------------

    async def _follow(self, first: asyncio.Future[None]) -> None:
        # A watch that breaks is first retried at once, on the next endpoint: losing one
        # etcd member is not losing the store, and says nothing to the operator.
        pause = 0.0
        while True:
            try:
                if not self._opened:
                    await self.store.open()
                    self._opened = True
                listing = await self.store.list("")
                await self._install(decode(listing.revision, listing.entries))
                self._status(True, None)
                self._leased_put.clear()  # our keys may have expired while we were away
                self._dirty.set()
                if not first.done():
                    first.set_result(None)
                pause = 0.0
                async for revision, changes in self.store.watch("", listing.revision):
                    self.last_event = self._clock()
                    await self._install(apply(self.state, revision, changes), changes)
            except asyncio.CancelledError:
                raise
            except StoreUnavailable as exc:
                if pause or not self.connected:
                    self._status(False, str(exc))
                else:
                    log.info("shared store: watch lost (%s); following again", exc)
            except Exception as exc:  # a bug of ours must not stop following
                log.exception("shared store: following %s failed", self.store.description)
                self._status(False, f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(pause)
            pause = min(pause * 2, RETRY_MAX) if pause else RETRY_MIN

    async def _install(self, state: SharedState, changes: list[Change] | None = None) -> None:
        before = self.state
        now = self._clock()
        if changes is None:
            self.heard = {name: self.heard.get(name, now) for name in state.nodes}
        else:
            for change in changes:
                if change.key.startswith(NODES):
                    self.heard[change.key[len(NODES) :]] = now
        for problem in set(state.problems) - set(before.problems):
            log.warning("shared store: ignoring %s", problem)
        self._check_own_name(state)
        self._set(state)
        lasting_changed = changes is None or any(
            not c.key.startswith((*LEASED, AUDIT)) for c in changes
        )
        if self.cache is not None and lasting_changed and state.lasting() != before.lasting():
            self._save_cache()
        async with self._revision_seen:
            self._revision_seen.notify_all()

    def _set(self, state: SharedState) -> None:
        # This node's own record as it is now: its votes count even while the store is away.
        nodes = {**state.nodes, self.node.name: self.node}
        self.state = replace(state, nodes=MappingProxyType(nodes))
        try:
            self._on_change(self.state)
        except Exception:
            log.exception("shared state change handler failed")

    def _check_own_name(self, state: SharedState) -> None:
        other = state.nodes.get(self.node.name)
        if other is None or other.instance == self.node.instance:
            return
        started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(other.started))
        if other.started < self.node.started and other.instance not in self._replaced:
            # Most likely this node's previous run, killed before its lease expired: its
            # record is replaced once, quietly. A process that keeps writing it is another.
            self._replaced.add(other.instance)
            log.info(
                "shared store: replacing the record of node %r started %s", other.name, started
            )
        else:
            log.error(
                "shared store: another process (started %s, answering on %s) registers as node"
                " %r too; every node needs its own --node-name",
                started,
                ", ".join(other.dns) or "?",
                self.node.name,
            )
        self._leased_put.pop(node_key(self.node.name), None)
        self._dirty.set()  # ours is put again: the last writer's record stands

    def _status(self, connected: bool, error: str | None) -> None:
        if connected == self.connected and error == self.error:
            return
        if connected:
            level = logging.WARNING if self.lost else logging.INFO  # back after a loss
            log.log(
                level,
                "shared store %s reached (revision %d)",
                self.store.description,
                self.state.revision,
            )
        elif self.connected:
            self.lost += 1
            log.error(
                "shared store lost: %s; answering from the last shared state (revision %d) and"
                " this node's own checks; admin changes are refused until it is back",
                error,
                self.state.revision,
            )
        self.connected, self.error, self.since = connected, error, self._clock()
        self._set(self.state)

    async def _publish_loop(self) -> None:
        while True:
            await self._dirty.wait()
            await asyncio.sleep(PUBLISH_COALESCE)
            self._dirty.clear()
            if not self.connected:
                continue  # set again when the store is back
            try:
                await self._publish()
            except StoreUnavailable as exc:
                log.debug("shared store: cannot publish this node: %s", exc)
                self._lease = 0
                await asyncio.sleep(RETRY_MIN)
                self._dirty.set()

    async def _publish(self) -> None:
        if not self._lease:
            self._lease = await self.store.grant(self.lease_ttl)
            self._leased_put.clear()
        # Only what changed is written: each write is a revision every node handles.
        own = {node_key(self.node.name): node_value(self.node), **self._leased}
        for key, value in own.items():
            if self._leased_put.get(key) != value:
                await self.store.put_leased(key, value, self._lease)
                self._leased_put[key] = value

    async def _keepalive_loop(self) -> None:
        while True:
            await asyncio.sleep(self.lease_ttl / 3)
            if not self._lease or not self.connected:
                continue
            try:
                alive = await self.store.keepalive(self._lease)
            except StoreUnavailable:
                continue
            if not alive:
                log.warning("shared store: this node's lease expired; registering again")
                self._lease = 0
                self._dirty.set()

    def _load_cache(self) -> None:
        assert self.cache is not None
        remove_stale_temps(self.cache)
        try:
            doc = read_json_document(self.cache, CACHE_FORMAT)
        except ValueError as exc:
            log.warning("shared store cache ignored: %s", exc)
            return
        if doc is None or not isinstance(doc.get("keys"), dict):
            return
        revision = doc.get("revision") if isinstance(doc.get("revision"), int) else 0
        changes = [Change(k, json.dumps(v).encode(), 0) for k, v in doc["keys"].items()]
        # Revision 0: whatever the store says once it answers replaces all of it.
        self._set(replace(apply(SharedState(), 0, changes), revision=0))
        log.info("shared state cached at revision %d loaded from %s", revision, self.cache)

    def _save_cache(self) -> None:
        assert self.cache is not None
        state = self.state
        doc = {"format": CACHE_FORMAT, "revision": state.revision, "keys": state.lasting()}
        data = (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()
        try:
            self.cache.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(self.cache, data)
        except OSError as exc:
            log.warning("cannot cache the shared state in %s: %s", self.cache, exc.strerror)
