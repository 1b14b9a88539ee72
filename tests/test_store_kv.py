"""The KVStore contract (geodns/store/kv.py) on both backends: the embedded store in a temp
dir and EtcdStore on a real one-member etcd (tests/etcd_cluster.py). Then what only etcd
has: members killed and a whole cluster stopped and restarted under one client, a watch
whose member dies or freezes, TLS with client certificates, and etcd auth.

Each etcd test works under a prefix of its own, so the module's one cluster serves all.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from geodns.store.etcd import EtcdOptions, EtcdStore, parse_store_url
from geodns.store.kv import Change, Entry, KVStore, StoreUnavailable, Txn, WatchCompacted
from geodns.store.local import FILE_NAME, LocalStore
from tests.etcd_cluster import Cluster, etcd_cluster, make_tls

WATCH_LATENCY = 1.0  # seconds within which a change must come through a watch
LEASE_WAIT = 6.0  # seconds for a 1 s lease's keys to vanish (etcd checks expiry every 0.5 s)


@pytest.fixture(scope="module")
def etcd1() -> Iterator[Cluster]:
    with etcd_cluster(1) as cluster:
        yield cluster


@dataclass
class Backend:
    name: str
    make: Callable[[], KVStore]
    compact: Callable[[int], None] | None  # None: the backend keeps no history to compact


@pytest.fixture(params=["local", "etcd"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "local":
        return Backend("local", lambda: LocalStore(tmp_path / FILE_NAME), None)
    cluster = request.getfixturevalue("etcd1")
    options = EtcdOptions(tuple(cluster.endpoints), prefix=f"/test/{uuid.uuid4().hex}")
    return Backend("etcd", lambda: EtcdStore(options), cluster.compact)


def run(make: Callable[[], KVStore], scenario: Callable[[Any], Awaitable[Any]]) -> Any:
    """Open a store, run `scenario(store)` in a fresh event loop, close the store."""

    async def main() -> Any:
        store = make()
        try:
            await store.open()
            return await scenario(store)
        finally:
            await store.close()

    return asyncio.run(main())


class Watcher:
    """Collects a watch's batches in the background."""

    def __init__(self, store: KVStore, prefix: str, after: int) -> None:
        self.batches: list[tuple[int, list[Change]]] = []
        self.arrived: list[float] = []
        self.error: BaseException | None = None
        self._changed = asyncio.Event()
        self._task = asyncio.create_task(self._run(store.watch(prefix, after)))

    async def _run(self, stream: Any) -> None:
        try:
            async for batch in stream:
                self.batches.append(batch)
                self.arrived.append(time.monotonic())
                self._changed.set()
        except StoreUnavailable as exc:
            self.error = exc
            self._changed.set()

    async def started(self) -> None:
        # The embedded store registers a watcher at the generator's first step.
        for _ in range(3):
            await asyncio.sleep(0)

    async def until(self, predicate: Callable[[], bool], timeout: float) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                if self.error is not None:
                    raise self.error
                self._changed.clear()
                await self._changed.wait()

    def changes(self) -> list[Change]:
        return [c for _, batch in self.batches for c in batch]

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


# --- the contract, on both backends ---------------------------------------------------------


def test_commit_expect_and_list(backend: Backend) -> None:
    async def scenario(store: KVStore) -> None:
        start = await store.list("")
        assert dict(start.entries) == {}
        r1 = await store.commit(Txn(expect={"a": 0}, put={"a": b'"1"'}))
        assert r1 is not None and r1 > start.revision
        listing = await store.list("")
        assert listing.revision == r1
        assert dict(listing.entries) == {"a": Entry(b'"1"', r1)}
        # 0 means absent: the key exists now.
        assert await store.commit(Txn(expect={"a": 0}, put={"a": b'"x"'})) is None
        r2 = await store.commit(Txn(expect={"a": r1, "b": 0}, put={"a": b'"2"', "b": b'"3"'}))
        assert r2 is not None and r2 > r1
        # A stale revision fails, and nothing of the txn is applied.
        assert await store.commit(Txn(expect={"a": r1}, put={"a": b'"4"'})) is None
        failing = Txn(expect={"a": r2, "b": r1}, put={"c": b'"5"'}, delete=("a",))
        assert await store.commit(failing) is None
        listing = await store.list("")
        assert listing.revision == r2
        assert dict(listing.entries) == {"a": Entry(b'"2"', r2), "b": Entry(b'"3"', r2)}
        # list(prefix) is a prefix of the key text, not a path.
        r3 = await store.commit(Txn(put={"x/1": b"1", "x/2": b"2", "xy": b"3", "x": b"4"}))
        assert sorted((await store.list("x/")).entries) == ["x/1", "x/2"]
        assert sorted((await store.list("x")).entries) == ["x", "x/1", "x/2", "xy"]
        assert (await store.list("nothing/")).revision == r3

    run(backend.make, scenario)


def test_deletes(backend: Backend) -> None:
    async def scenario(store: KVStore) -> None:
        r1 = await store.commit(Txn(put={"a": b"1", "b": b"2", "c": b"3"}))
        assert r1 is not None
        assert (
            await store.commit(Txn(expect={"a": r1 - 1 if r1 > 1 else 99}, delete=("a",))) is None
        )
        r2 = await store.commit(Txn(expect={"a": r1}, delete=("a", "b")))
        assert r2 is not None and r2 > r1
        assert dict((await store.list("")).entries) == {"c": Entry(b"3", r1)}
        # Deleting what is not there changes nothing: the current revision, no new one.
        assert await store.commit(Txn(delete=("a", "nothing"))) == r2
        assert await store.commit(Txn(expect={"a": 0}, delete=("a",))) == r2
        # A key both deleted and put in one txn ends up put.
        r3 = await store.commit(Txn(put={"c": b"4"}, delete=("c",)))
        assert dict((await store.list("")).entries) == {"c": Entry(b"4", r3)}

    run(backend.make, scenario)


def test_watch_delivers_changes_in_order(backend: Backend) -> None:
    async def scenario(store: KVStore) -> None:
        await store.commit(Txn(put={"w/old": b"0"}))
        listing = await store.list("w/")
        watcher = Watcher(store, "w/", listing.revision)
        await watcher.started()
        sent = []
        r1 = await store.commit(Txn(put={"w/a": b"1", "w/b": b"2"}))
        sent.append(time.monotonic())
        await store.commit(Txn(put={"elsewhere": b"9"}))  # not under the prefix
        r2 = await store.commit(Txn(expect={"w/a": r1}, put={"w/a": b"3"}, delete=("w/old",)))
        sent.append(time.monotonic())
        r3 = await store.commit(Txn(delete=("w/b",)))
        sent.append(time.monotonic())
        await watcher.until(lambda: len(watcher.batches) >= 3, WATCH_LATENCY + 1)
        await watcher.stop()
        assert [revision for revision, _ in watcher.batches] == [r1, r2, r3]
        assert sorted(watcher.batches[0][1], key=lambda c: c.key) == [
            Change("w/a", b"1", r1),
            Change("w/b", b"2", r1),
        ]
        assert sorted(watcher.batches[1][1], key=lambda c: c.key) == [
            Change("w/a", b"3", r2),
            Change("w/old", None, r2),
        ]
        assert watcher.batches[2][1] == [Change("w/b", None, r3)]
        latencies = [arrived - s for arrived, s in zip(watcher.arrived, sent, strict=True)]
        assert max(latencies) < WATCH_LATENCY, latencies

    run(backend.make, scenario)


def test_watch_from_a_compacted_revision(backend: Backend) -> None:
    async def scenario(store: KVStore) -> None:
        r1 = await store.commit(Txn(put={"k": b"1"}))
        await store.commit(Txn(put={"k": b"2"}))
        r3 = await store.commit(Txn(put={"k": b"3"}))
        assert r1 is not None and r3 is not None
        if backend.compact is not None:
            await asyncio.to_thread(backend.compact, r3)
        with pytest.raises(WatchCompacted, match=r"list again|is gone"):
            async with asyncio.timeout(5):
                async for _ in store.watch("", r1):
                    pass
        # From the latest revision the watch works.
        watcher = Watcher(store, "", r3)
        await watcher.started()
        r4 = await store.commit(Txn(put={"k": b"4"}))
        await watcher.until(lambda: bool(watcher.batches), WATCH_LATENCY + 1)
        await watcher.stop()
        assert watcher.batches == [(r4, [Change("k", b"4", r4)])]

    run(backend.make, scenario)


async def _until_gone(store: KVStore, key: str, timeout: float) -> float:
    """Seconds until `key` is gone; listing also lets the embedded store expire leases."""
    started = time.monotonic()
    async with asyncio.timeout(timeout):
        while key in (await store.list("")).entries:
            await asyncio.sleep(0.1)
    return time.monotonic() - started


def test_lease_expires_and_its_keys_vanish(backend: Backend) -> None:
    async def scenario(store: KVStore) -> None:
        lease = await store.grant(0.3)  # rounded up to 1 s
        revision = await store.put_leased("nodes/a", b'{"up": true}', lease)
        await store.commit(Txn(put={"lasting": b"1"}))
        listing = await store.list("")
        assert listing.entries["nodes/a"] == Entry(b'{"up": true}', revision, lease)
        watcher = Watcher(store, "nodes/", listing.revision)
        await watcher.started()
        gone_after = await _until_gone(store, "nodes/a", LEASE_WAIT)
        assert gone_after < LEASE_WAIT
        await watcher.until(lambda: bool(watcher.changes()), WATCH_LATENCY)
        await watcher.stop()
        [change] = watcher.changes()
        assert (change.key, change.value) == ("nodes/a", None)
        assert change.mod_revision > revision
        assert "lasting" in (await store.list("")).entries
        assert await store.keepalive(lease) is False

    run(backend.make, scenario)


def test_keepalive_keeps_a_lease(backend: Backend) -> None:
    async def scenario(store: KVStore) -> None:
        lease = await store.grant(1)
        await store.put_leased("nodes/b", b"1", lease)
        until = time.monotonic() + 2.5  # well past the TTL
        while time.monotonic() < until:
            assert await store.keepalive(lease) is True
            await asyncio.sleep(0.25)
            assert "nodes/b" in (await store.list("nodes/")).entries
        await _until_gone(store, "nodes/b", LEASE_WAIT)
        assert await store.keepalive(lease) is False
        with pytest.raises(StoreUnavailable, match=f"lease {lease}"):
            await store.put_leased("nodes/b", b"1", lease)

    run(backend.make, scenario)


# --- URLs and options, no etcd ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "endpoints"),
    [
        ("etcd://127.0.0.1:2379", ("127.0.0.1:2379",)),
        ("etcd://10.0.0.5:2379,10.0.0.6:22379/", ("10.0.0.5:2379", "10.0.0.6:22379")),
        ("etcd://[::1]:2379,etcd-0.example", ("[::1]:2379", "etcd-0.example:2379")),
        ("etcds://etcd-0:2379,[2001:db8::1]:2379", ("https://etcd-0:2379", "https://[2001:db8::1]:2379")),
    ],
)  # fmt: skip
def test_parse_store_url(url: str, endpoints: tuple[str, ...]) -> None:
    assert parse_store_url(url) == endpoints


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("127.0.0.1:2379", "expected etcd://HOST:PORT"),
        ("http://127.0.0.1:2379", "unknown scheme 'http'"),
        ("etcd://", "no endpoint"),
        ("etcd://a,,b", "empty endpoint"),
        ("etcd://::1", r"brackets: \[::1\]:2379"),
        ("etcd://[::1", "no closing"),
        ("etcd://[nope]:1", "not an IPv6 address"),
        ("etcd://a:0", "port must be a number from 1 to 65535"),
        ("etcd://a:http", "port must be a number"),
        ("etcd://root:pw@a:2379", "--store-user"),
        ("etcd://a:2379/geodns", "--store-prefix"),
        ("etcd://a b:2379", "not a host name"),
        ("etcd://a:2379,a", "a:2379 is listed twice"),
    ],
)
def test_parse_store_url_errors(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_store_url(url)


def test_description_prefix_and_scheme() -> None:
    store = EtcdStore(EtcdOptions(("127.0.0.1:2379", "127.0.0.1:22379"), prefix="/fleet-a"))
    assert store.prefix == "/fleet-a/"
    assert store.description == "etcd etcd://127.0.0.1:2379,127.0.0.1:22379 (prefix /fleet-a/)"
    tls = EtcdStore(EtcdOptions(parse_store_url("etcds://e:2379")))
    assert tls.description == "etcd etcds://e:2379 (prefix /geodns/)"
    # TLS files make plain etcd:// endpoints speak HTTPS too (as etcdctl does).
    assert EtcdStore(EtcdOptions(("e:2379",), cacert="ca.pem")).description.startswith("etcd etcds")


def test_open_with_nothing_listening() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: connections are refused
        store = EtcdStore(EtcdOptions((f"127.0.0.1:{port}",), timeout=1))
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match=f"127.0.0.1:{port}: cannot connect"):
            run(lambda: store, lambda s: asyncio.sleep(0))
        assert time.monotonic() - started < 1


def test_reauthenticates_when_etcd_closes_for_a_stale_token() -> None:
    """Upstream etcd 3.4.23 and some 3.5 builds answer a stale token by closing the
    connection (etcd-io/etcd#15256); Debian's 3.4.23 answers "invalid auth token", which
    test_auth_user_and_password covers. A stand-in gateway plays the upstream behaviour."""
    from aiohttp import web

    tokens = iter(["stale", "fresh"])
    seen: list[str] = []

    async def authenticate(request: web.Request) -> web.Response:
        return web.json_response({"header": {"revision": "1"}, "token": next(tokens)})

    async def range_(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization", ""))
        if request.headers.get("Authorization") != "fresh":
            assert request.transport is not None
            request.transport.close()
        return web.json_response({"header": {"revision": "7"}})

    async def scenario() -> None:
        app = web.Application()
        app.router.add_post("/v3/auth/authenticate", authenticate)
        app.router.add_post("/v3/kv/range", range_)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        options = EtcdOptions((f"127.0.0.1:{port}",), user="geo", password="pw", timeout=1)
        store = EtcdStore(options)
        try:
            assert (await store.list("")).revision == 7
        finally:
            await store.close()
            await runner.cleanup()

    asyncio.run(scenario())
    assert seen == ["stale", "fresh"]


# --- etcd only: members lost and back ------------------------------------------------------


def test_failover_and_a_whole_cluster_lost_and_back() -> None:
    with etcd_cluster(3) as cluster:
        leader = cluster.leader()
        first, second = (m for m in cluster.members if m is not leader)
        # The client starts with a follower.
        endpoints = (first.endpoint, second.endpoint, leader.endpoint)
        options = EtcdOptions(endpoints, timeout=1.0)

        async def scenario(store: EtcdStore) -> None:
            r1 = await store.commit(Txn(put={"k": b"1"}))
            # The member the client talks to dies: the next one answers, at once.
            first.kill()
            started = time.monotonic()
            r2 = await store.commit(Txn(expect={"k": r1}, put={"k": b"2"}))
            assert r2 is not None
            assert (await store.list("")).entries["k"] == Entry(b"2", r2)
            assert time.monotonic() - started < options.timeout  # no waiting for a timeout
            await asyncio.to_thread(first.start)
            # The leader dies: calls fail (naming each endpoint) until the others have
            # elected a new one, about an election timeout later.
            leader.kill()
            async with asyncio.timeout(5):
                while True:
                    try:
                        r3 = await store.commit(Txn(expect={"k": r2}, put={"k": b"3"}))
                        break
                    except StoreUnavailable as exc:
                        assert all(e in str(exc) for e in endpoints), exc
            if r3 is None:  # an attempt that timed out was applied after all
                entry = (await store.list("")).entries["k"]
                assert entry.value == b"3"
                r3 = entry.mod_revision
            await asyncio.to_thread(leader.start)
            # Every member stopped: each call fails at once, naming every endpoint.
            await asyncio.to_thread(cluster.stop)
            started = time.monotonic()
            with pytest.raises(StoreUnavailable) as lost:
                await store.list("")
            assert time.monotonic() - started < options.timeout
            for endpoint in cluster.endpoints:
                assert f"{endpoint}: cannot connect" in str(lost.value)
            with pytest.raises(StoreUnavailable, match="no endpoint would watch"):
                async for _ in store.watch("", r3):
                    pass
            # Back: the same client carries on, and the data is all there.
            await asyncio.to_thread(cluster.start)
            assert (await store.list("")).entries["k"] == Entry(b"3", r3)
            assert await store.commit(Txn(expect={"k": r3}, put={"k": b"4"})) is not None

        run(lambda: EtcdStore(options), scenario)


def test_watch_ends_when_its_member_dies_or_freezes() -> None:
    with etcd_cluster(3) as cluster:
        leader = cluster.leader()
        m1, m2 = (m for m in cluster.members if m is not leader)
        # Followers first (no election to wait for): the watch is on m1, then on m2.
        endpoints = (m1.endpoint, m2.endpoint, leader.endpoint)
        options = EtcdOptions(endpoints, timeout=1.0, watch_check=1.0)

        async def scenario(store: EtcdStore) -> None:
            listing = await store.list("")
            watcher = Watcher(store, "", listing.revision)
            r1 = await store.commit(Txn(put={"k": b"1"}))
            await watcher.until(lambda: bool(watcher.batches), WATCH_LATENCY)
            m1.kill()
            started = time.monotonic()
            with pytest.raises(StoreUnavailable, match=f"watch on {m1.endpoint} lost"):
                await watcher.until(lambda: False, 3)
            assert time.monotonic() - started < 1
            # As the follower does: list again, watch from there (on another member).
            listing = await store.list("")
            assert listing.entries["k"] == Entry(b"1", r1)
            watcher = Watcher(store, "", listing.revision)
            r2 = await store.commit(Txn(put={"k": b"2"}))
            await watcher.until(lambda: bool(watcher.batches), WATCH_LATENCY)
            assert watcher.batches == [(r2, [Change("k", b"2", r2)])]
            # A frozen member keeps its connections open and says nothing.
            frozen = m2.pid
            assert frozen is not None
            os.kill(frozen, signal.SIGSTOP)
            try:
                started = time.monotonic()
                with pytest.raises(StoreUnavailable, match=r"silent for .* does not answer"):
                    await watcher.until(lambda: False, 6)
                limit = options.watch_check + options.timeout + 1
                assert time.monotonic() - started < limit
            finally:
                os.kill(frozen, signal.SIGCONT)

        run(lambda: EtcdStore(options), scenario)


# --- etcd only: TLS and auth ----------------------------------------------------------------


def test_tls_with_client_certificates(tmp_path: Path) -> None:
    files = make_tls(tmp_path / "pki")
    with etcd_cluster(1, tls=files) as cluster:
        endpoints = tuple(cluster.endpoints)
        good = EtcdOptions(
            parse_store_url(cluster.url),
            cacert=str(files.ca),
            cert=str(files.client_cert),
            key=str(files.client_key),
        )

        async def works(store: EtcdStore) -> None:
            assert store.description.startswith("etcd etcds://")
            listing = await store.list("")
            watcher = Watcher(store, "", listing.revision)
            revision = await store.commit(Txn(put={"tls": b"1"}))
            await watcher.until(lambda: bool(watcher.batches), WATCH_LATENCY)
            assert watcher.batches == [(revision, [Change("tls", b"1", revision)])]

        run(lambda: EtcdStore(good), works)
        # etcd:// with TLS files speaks HTTPS too.
        plain_url = EtcdOptions(endpoints, cacert=good.cacert, cert=good.cert, key=good.key)
        run(lambda: EtcdStore(plain_url), lambda store: store.list(""))

        no_cert = EtcdOptions(good.endpoints, cacert=good.cacert, timeout=1)
        with pytest.raises(StoreUnavailable, match="client certificate") as refused:
            run(lambda: EtcdStore(no_cert), lambda store: store.list(""))
        assert endpoints[0] in str(refused.value)
        no_ca = EtcdOptions(good.endpoints, cert=good.cert, key=good.key, timeout=1)
        with pytest.raises(StoreUnavailable, match="server certificate not trusted"):
            run(lambda: EtcdStore(no_ca), lambda store: store.list(""))


def test_auth_user_and_password() -> None:
    with etcd_cluster(1) as cluster:
        ctl = cluster.etcdctl
        ctl("user", "add", "root:rootpw")
        ctl("user", "add", "geo:geopw")
        ctl("role", "add", "geodns")
        ctl("role", "grant-permission", "geodns", "--prefix=true", "readwrite", "/geodns/")
        ctl("user", "grant-role", "geo", "geodns")
        ctl("auth", "enable")
        endpoints = tuple(cluster.endpoints)
        options = EtcdOptions(endpoints, user="geo", password="geopw", timeout=1)

        async def works(store: EtcdStore) -> None:
            listing = await store.list("")
            lease = await store.grant(5)
            r1 = await store.put_leased("nodes/a", b"1", lease)
            assert await store.keepalive(lease) is True
            r2 = await store.commit(Txn(put={"k": b"1"}))
            assert set((await store.list("")).entries) == {"nodes/a", "k"}
            watcher = Watcher(store, "", listing.revision)
            await watcher.until(lambda: len(watcher.batches) == 2, WATCH_LATENCY)
            assert [revision for revision, _ in watcher.batches] == [r1, r2]
            await watcher.stop()
            # A restarted member has forgotten every token: the client authenticates again,
            # for a watch as for a call.
            await asyncio.to_thread(cluster.members[0].stop)
            await asyncio.to_thread(cluster.members[0].start)
            watcher = Watcher(store, "", r2)
            r3 = await store.commit(Txn(put={"k": b"2"}))
            await watcher.until(lambda: bool(watcher.batches), WATCH_LATENCY + 1)
            assert watcher.batches == [(r3, [Change("k", b"2", r3)])]

        run(lambda: EtcdStore(options), works)

        bad = EtcdOptions(endpoints, user="geo", password="wrong", timeout=1)
        with pytest.raises(StoreUnavailable, match=r"user 'geo' not authenticated: .*password"):
            run(lambda: EtcdStore(bad), lambda store: store.list(""))
        anonymous = EtcdOptions(endpoints, timeout=1)
        with pytest.raises(StoreUnavailable, match="--store-user"):
            run(lambda: EtcdStore(anonymous), lambda store: store.list(""))
        outside = EtcdOptions(endpoints, prefix="/other/", user="geo", password="geopw")
        with pytest.raises(StoreUnavailable, match="permission denied"):
            run(lambda: EtcdStore(outside), lambda store: store.list(""))
