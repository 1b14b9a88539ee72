"""The audit log of admin actions: who changed what, when, and with what result.

Each record is one key of the fleet's store when there is one,

    audit/<microseconds since the epoch, 16 digits>-<node>-<random>

so that every node's admin actions are listed together, newest last in key order; each
node trims the list to the newest `keep` now and then (TRIM_EVERY of its own writes), so
the store holds at most about `keep` of them. Without a fleet store (the embedded one),
the records are kept in memory, the newest `keep`. Either way each record is also a log
line of the `geodns.audit` logger, which outlives both.

A record that the store cannot take is kept in memory and logged: the action was done
(or refused) whatever the audit log's store says, and GET /api/audit shows this node's
records from memory while the store is away.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from geodns.store.kv import KVStore, StoreUnavailable, Txn
from geodns.store.shared import AUDIT, encode

log = logging.getLogger("geodns.audit")

DEFAULT_KEEP = 1000  # records: weeks of an operator's changes, ~300 KB in etcd
TRIM_EVERY = 20  # a node trims the store's list after this many of its own records


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One admin action, as kept and as GET /api/audit returns it."""

    at: float  # epoch seconds
    who: str  # the admin token's name
    action: str  # force, load push, reload, rollout start, ...
    target: str  # service/region, service, or "" for the whole server
    detail: str  # what was asked: "drain", "to 43", ...
    result: str  # ok | refused | failed
    status: int  # the HTTP status of the reply
    error: str | None  # the reply's error, if any
    node: str  # the node that took the request
    remote: str | None  # the request's sender address

    def line(self) -> str:
        what = " ".join(x for x in (self.action, self.target, self.detail) if x)
        why = f": {self.error}" if self.error else ""
        return f"{self.who}: {what}: {self.result} ({self.status}){why}"


def result_of(status: int) -> str:
    """ok for 2xx, refused for 4xx (nothing changed: the request was wrong or not
    allowed now), failed for 5xx (the server could not do it)."""
    if status < 400:
        return "ok"
    return "refused" if status < 500 else "failed"


class AuditLog:
    """Records admin actions in the store (or in memory) and lists the newest."""

    def __init__(
        self,
        store: KVStore | None,
        node: str,
        clock: Callable[[], float],
        keep: int = DEFAULT_KEEP,
    ) -> None:
        self.store = store
        self.node = node
        self.clock = clock
        self.keep = keep
        self.memory: deque[AuditRecord] = deque(maxlen=keep)
        self._written = 0

    @property
    def kind(self) -> str:
        return "memory" if self.store is None else "store"

    async def record(self, record: AuditRecord) -> None:
        log.info("%s", record.line(), extra=asdict(record))
        self.memory.append(record)
        if self.store is None:
            return
        key = f"{AUDIT}{int(record.at * 1_000_000):016d}-{self.node}-{secrets.token_hex(3)}"
        try:
            await self.store.commit(Txn(put={key: encode(asdict(record))}))
            self._written += 1
            if self._written % TRIM_EVERY == 1:
                await self._trim()
        except StoreUnavailable as exc:
            log.warning("audit log: kept in memory only, the store cannot take it: %s", exc)

    async def _trim(self) -> None:
        listing = await self.store.list(AUDIT)  # type: ignore[union-attr]
        old = sorted(listing.entries)[: -self.keep]
        if old:
            await self.store.commit(Txn(delete=tuple(old)))  # type: ignore[union-attr]

    async def recent(self, limit: int) -> tuple[list[dict[str, Any]], str | None]:
        """The newest `limit` records, newest first, and why the store's could not be
        read (then this node's own, from memory) or None."""
        if self.store is not None:
            try:
                listing = await self.store.list(AUDIT)
            except StoreUnavailable as exc:
                error = f"the store cannot be read ({exc}): this node's records only"
            else:
                out = []
                for key in sorted(listing.entries, reverse=True)[:limit]:
                    try:
                        out.append(_decode(json.loads(listing.entries[key].value)))
                    except (TypeError, ValueError):
                        continue  # written by hand or by another version: not ours to show
                return out, None
        else:
            error = None
        return [asdict(r) for r in reversed(self.memory)][:limit], error


def _decode(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise TypeError("not an object")
    return asdict(AuditRecord(**{k: data.get(k) for k in AuditRecord.__dataclass_fields__}))
