"""SharedFollower over the embedded store: list then watch, read-your-write, this node's record
under a lease, and a cold start from the cache while the store cannot be opened."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType

import pytest

from geodns.health.state import Health
from geodns.store.follower import SharedFollower
from geodns.store.kv import StoreUnavailable, Txn
from geodns.store.local import FILE_NAME, LocalStore
from geodns.store.shared import (
    Force,
    NodeRecord,
    Observation,
    SharedState,
    force_key,
    force_value,
    node_key,
    versions_key,
    versions_value,
)
from tests.regions import until

KEY = "inference.example.com"


def record(name: str) -> NodeRecord:
    return NodeRecord(name, f"instance-of-{name}", "0.1.0", 1_700_000_000.0, ("127.0.0.1:53",))


def force(region: str = "eu-west-1", state: Health = Health.DRAIN) -> Force:
    return Force(KEY, region, state, 1000.0, "alice")


def put_force(f: Force) -> Txn:
    return Txn(put={force_key(f.service, f.region): force_value(f)})


class Seen:
    """on_change: every state handed over."""

    def __init__(self) -> None:
        self.states: list[SharedState] = []

    def __call__(self, state: SharedState) -> None:
        self.states.append(state)


@asynccontextmanager
async def following(
    store: LocalStore,
    name: str = "dns-a",
    *,
    cache: Path | None = None,
    lease_ttl: float = 5.0,
    wait: float = 2.0,
) -> AsyncIterator[tuple[SharedFollower, Seen]]:
    seen = Seen()
    follower = SharedFollower(store, record(name), seen, cache=cache, lease_ttl=lease_ttl)
    await follower.start(wait=wait)
    try:
        yield follower, seen
    finally:
        await follower.stop()


def test_start_lists_what_is_there_then_follows_every_change(tmp_path: Path) -> None:
    async def main() -> None:
        store = LocalStore(tmp_path / FILE_NAME)
        await store.open()
        await store.commit(put_force(force("eu-west-1")))
        async with following(store) as (follower, seen):
            assert follower.connected and follower.error is None
            assert follower.state.forces == {(KEY, "eu-west-1"): force("eu-west-1")}
            assert seen.states and seen.states[-1] is follower.state
            # Another writer (another node, the CLI) changes the store: the watch brings it.
            await store.commit(put_force(force("us-east-1", Health.DOWN)))
            await until(lambda: (KEY, "us-east-1") in follower.state.forces)
            assert follower.last_event is not None
            await store.commit(Txn(delete=(force_key(KEY, "eu-west-1"),)))
            await until(lambda: (KEY, "eu-west-1") not in follower.state.forces)
            assert follower.state.revision == (await store.list("")).revision
            # This node counts itself in every state, before the store has echoed it.
            assert "dns-a" in follower.state.nodes

    asyncio.run(main())


def test_a_commit_is_read_back_at_once_and_a_lost_compare_is_none(tmp_path: Path) -> None:
    async def main() -> None:
        store = LocalStore(tmp_path / FILE_NAME)
        async with following(store) as (follower, _):
            k = force_key(KEY, "eu-west-1")
            revision = await follower.commit(Txn(expect={k: 0}, put={k: force_value(force())}))
            assert revision is not None
            # Read-your-write: no waiting for the watch after commit returns.
            assert follower.state.forces[(KEY, "eu-west-1")] == force()
            assert follower.state.mod_of(k) == revision
            assert follower.round_trip is not None
            # The key exists now: a compare that expects it absent fails and changes nothing.
            again = Txn(expect={k: 0}, put={k: force_value(force(state=Health.UP))})
            assert await follower.commit(again) is None
            assert follower.state.forces[(KEY, "eu-west-1")].state is Health.DRAIN
            # What was committed is on disk, for the next start.
            doc = json.loads((tmp_path / FILE_NAME).read_text())
            assert doc["keys"][k]["value"]["state"] == "drain"

    asyncio.run(main())


def test_refresh_catches_up_with_a_change_the_watch_has_not_brought(tmp_path: Path) -> None:
    async def main() -> None:
        store = LocalStore(tmp_path / FILE_NAME)
        async with following(store) as (follower, _):
            # No await between the commit and refresh: the watch cannot have run.
            await store.commit(Txn(put={versions_key(KEY): versions_value(["41"])}))
            assert KEY not in follower.state.seen
            state = await follower.refresh()
            assert state.seen == {KEY: frozenset({"41"})} and follower.state is state

    asyncio.run(main())


def test_this_nodes_record_lives_under_a_lease_and_vanishes_when_it_is_not_renewed(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        store = LocalStore(tmp_path / FILE_NAME)
        async with following(store, "dns-b") as (watcher, _):
            async with following(store, "dns-a", lease_ttl=1.0) as (follower, _):
                # Registered before start returns: the fleet sees every node that answers.
                assert node_key("dns-a") in (await store.list("nodes/")).entries
                vote = Observation(Health.DOWN, 0.5, "42", "HTTP 500")
                mine = MappingProxyType({(KEY, "eu-west-1"): vote})
                follower.update_node(replace(follower.node, observations=mine))
                # It counts at once in this node's own state...
                assert follower.state.nodes["dns-a"].observations == mine
                # ... and reaches the store, under a lease, for the others.
                await until(
                    lambda: (
                        "dns-a" in watcher.state.nodes
                        and watcher.state.nodes["dns-a"].observations == mine
                    )
                )
                entry = (await store.list("nodes/")).entries[node_key("dns-a")]
                assert entry.lease != 0
                # Renewed every third of its time to live, it outlives it.
                await asyncio.sleep(1.6)
                assert node_key("dns-a") in (await store.list("nodes/")).entries
                assert "dns-a" in watcher.state.nodes
            # Stopped (as if killed): nothing renews the lease.
            await asyncio.sleep(1.2)
            # The embedded store expires leases when it is next used.
            listing = await store.list("nodes/")
            assert node_key("dns-a") not in listing.entries
            await until(lambda: "dns-a" not in watcher.state.nodes)
            assert "dns-b" in watcher.state.nodes  # itself, always
            # Only leased keys were written, and none reaches the file: a node's record
            # describes a running process.
            assert not (tmp_path / FILE_NAME).exists()

    asyncio.run(main())


def test_the_cache_holds_the_lasting_keys_and_is_the_state_when_the_store_cannot_be_opened(
    tmp_path: Path,
) -> None:
    cache = tmp_path / "cache" / "shared.json"

    async def first() -> None:
        store = LocalStore(tmp_path / FILE_NAME)
        async with following(store, cache=cache) as (follower, _):
            await follower.commit(put_force(force()))
            await follower.commit(Txn(put={versions_key(KEY): versions_value(["41", "42"])}))
            follower.update_node(follower.node)  # a node record too: never cached
            await until(
                lambda: (
                    "dns-a" in follower.state.nodes and follower.state.mod_of(node_key("dns-a")) > 0
                )
            )

    asyncio.run(first())
    doc = json.loads(cache.read_text())
    assert doc["format"] == 1
    assert sorted(doc["keys"]) == [force_key(KEY, "eu-west-1"), versions_key(KEY)]
    assert doc["keys"][force_key(KEY, "eu-west-1")] == {
        "state": "drain",
        "set_at": 1000.0,
        "by": "alice",
    }

    # The store cannot be opened now (its file is damaged): a real unreachable store.
    damaged = tmp_path / "damaged" / FILE_NAME
    damaged.parent.mkdir()
    damaged.write_text("{")

    async def second() -> None:
        store = LocalStore(damaged)
        async with following(store, cache=cache, wait=0.3) as (follower, seen):
            assert not follower.connected
            assert follower.error is not None
            assert follower.error.startswith(f"{damaged}: not JSON")
            # The cached lasting state is the state until the store answers.
            assert follower.state.forces == {(KEY, "eu-west-1"): force()}
            assert follower.state.seen == {KEY: frozenset({"41", "42"})}
            assert follower.state.revision == 0  # whatever the store says will replace it
            assert seen.states and seen.states[-1].forces == follower.state.forces
            assert set(follower.state.nodes) == {"dns-a"}  # this node alone, itself
            # Writes are refused: nothing is applied that the fleet would not see.
            with pytest.raises(StoreUnavailable, match="not JSON"):
                await follower.commit(put_force(force(state=Health.UP)))
            assert follower.state.forces[(KEY, "eu-west-1")].state is Health.DRAIN
            assert follower.lost == 0  # never reached, so never lost

    asyncio.run(second())


def test_a_bad_node_record_is_skipped_and_following_goes_on(tmp_path: Path) -> None:
    async def main() -> None:
        store = LocalStore(tmp_path / FILE_NAME)
        async with following(store) as (follower, _):
            bad = b'{"name": "dns-x", "instance": "i", "observations": [1]}'
            await store.commit(Txn(put={node_key("dns-x"): bad}))
            await asyncio.sleep(0.3)
            assert follower.connected, follower.error
            assert [p.partition(": ")[0] for p in follower.state.problems] == ["nodes/dns-x"]
            await store.commit(put_force(force()))
            await until(lambda: (KEY, "eu-west-1") in follower.state.forces, timeout=1.0)

    asyncio.run(main())


def test_a_leased_key_is_written_once_per_value_and_again_under_a_new_lease(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        store = LocalStore(tmp_path / FILE_NAME)
        async with following(store, "dns-a", lease_ttl=1.0) as (follower, _):
            follower.put_leased("rum/dns-a", b'{"v": 1}')
            await until(lambda: "rum/dns-a" in follower.state.mod)
            entry = (await store.list("rum/")).entries["rum/dns-a"]
            assert entry.value == b'{"v": 1}' and entry.lease != 0
            # The same value again is no new revision: each one is work for every node.
            follower.put_leased("rum/dns-a", b'{"v": 1}')
            await asyncio.sleep(0.2)
            assert (await store.list("rum/")).entries["rum/dns-a"].mod_revision == (
                entry.mod_revision
            )
            # The lease lost (as when cut off longer than it lives): both keys come back
            # under the new one.
            follower._lease = 0
            follower.put_leased("rum/dns-a", b'{"v": 2}')
            await until(lambda: follower.state.mod_of("rum/dns-a") > entry.mod_revision)
            listing = (await store.list("")).entries
            assert listing["rum/dns-a"].value == b'{"v": 2}'
            assert listing["rum/dns-a"].lease == listing[node_key("dns-a")].lease != entry.lease
        # Stopped: nothing renews the lease, and the key leaves with it.
        await asyncio.sleep(1.2)
        assert "rum/dns-a" not in (await store.list("")).entries

    asyncio.run(main())
