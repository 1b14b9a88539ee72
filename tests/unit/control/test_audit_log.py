"""The audit log's keeping: bounded in memory, trimmed in a store, memory when it is away."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from geodns.control import audit
from geodns.control.audit import AuditLog, AuditRecord, result_of
from geodns.store.etcd import EtcdOptions, EtcdStore
from geodns.store.local import LocalStore
from geodns.store.shared import AUDIT


def record(n: int, who: str = "alice", status: int = 200) -> AuditRecord:
    return AuditRecord(
        float(n), who, "force", "svc/r", "drain", result_of(status), status, None, "n1", None
    )


def test_results_by_status() -> None:
    assert [result_of(s) for s in (200, 201, 404, 409, 503)] == [
        "ok",
        "ok",
        "refused",
        "refused",
        "failed",
    ]


def test_memory_keeps_the_newest() -> None:
    log = AuditLog(None, "n1", lambda: 0.0, keep=3)

    async def go() -> list[dict]:
        for n in range(5):
            await log.record(record(n))
        return (await log.recent(10))[0]

    assert [r["at"] for r in asyncio.run(go())] == [4.0, 3.0, 2.0]


def test_a_store_is_trimmed_to_the_newest(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(audit, "TRIM_EVERY", 4)
    store = LocalStore(tmp_path / "state.json")
    log = AuditLog(store, "n1", lambda: 0.0, keep=3)

    async def go() -> tuple[list[dict], int]:
        await store.open()
        for n in range(10):
            await log.record(record(n, who=f"p{n}"))
        newest = (await log.recent(2))[0]
        listing = await store.list(AUDIT)
        return newest, len(listing.entries)

    newest, kept = asyncio.run(go())
    assert [r["who"] for r in newest] == ["p9", "p8"]
    # Trimmed at the 1st, 5th and 9th record: 3 kept then, and the 10th since.
    assert kept == 4


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_while_the_store_is_away_this_nodes_records_are_shown(caplog) -> None:
    # An etcd nobody answers for: every call fails as it does when etcd is lost.
    store = EtcdStore(EtcdOptions(endpoints=(f"127.0.0.1:{closed_port()}",), timeout=0.5))
    log = AuditLog(store, "n1", lambda: 0.0)

    async def go() -> tuple[list[dict], str | None]:
        try:
            await log.record(record(1))
            return await log.recent(10)
        finally:
            await store.close()

    records, error = asyncio.run(go())
    assert [r["who"] for r in records] == ["alice"]
    assert error is not None and "connection refused" in error
    assert "kept in memory only" in caplog.text
