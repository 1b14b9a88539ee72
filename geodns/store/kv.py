"""The store interface: a revisioned key-value store with compare-and-swap, leases and watches.

It is etcd v3's model reduced to what geodns needs, so that another backend (Kubernetes
objects, NATS JetStream KV, Redis) can be added behind the same few calls:

- every change gets the store's next *revision*, and each key remembers the revision of its
  last change (`mod_revision`);
- `commit` applies puts and deletes only if every expected key still has the mod_revision
  the caller read (0: the key must not exist), all or nothing: the rollout guard's check
  and its write are one step across every node;
- a *lease* is a time-to-live that keys are attached to: when its holder stops renewing it
  (a node killed), its keys vanish by themselves;
- `watch` streams every change under a prefix after a revision, in order.

Keys are text relative to the store's own prefix (the backend adds it); values are bytes
(geodns writes JSON). Every call raises StoreUnavailable when the store cannot be reached.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol

from geodns.errors import GeodnsError


class StoreUnavailable(GeodnsError):
    """The store cannot be reached or did not answer in time; the message says which."""


class WatchCompacted(StoreUnavailable):
    """A watch asked for revisions the store has already compacted away: list again."""


@dataclass(frozen=True, slots=True)
class Entry:
    value: bytes
    mod_revision: int  # the store revision of this key's last change
    lease: int = 0  # the lease the key is attached to; 0: none (it stays until deleted)


@dataclass(frozen=True)
class Listing:
    """Every key under a prefix, as of one revision."""

    revision: int
    entries: Mapping[str, Entry] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True, slots=True)
class Change:
    key: str
    value: bytes | None  # None: deleted (or its lease expired)
    mod_revision: int


@dataclass(frozen=True)
class Txn:
    """Puts and deletes applied together, only if every key in `expect` still has that
    mod_revision (0: the key must not exist)."""

    expect: Mapping[str, int] = field(default_factory=dict)
    put: Mapping[str, bytes] = field(default_factory=dict)
    delete: tuple[str, ...] = ()


class KVStore(Protocol):
    """A control-state backend. `description` names it in logs and errors."""

    description: str

    async def open(self) -> None:
        """Connect (or read the file); StoreUnavailable when it cannot."""

    async def close(self) -> None: ...

    async def list(self, prefix: str) -> Listing: ...

    async def commit(self, txn: Txn) -> int | None:
        """The revision the change got, or None when an expectation failed (nothing done)."""

    def watch(self, prefix: str, after: int) -> AsyncIterator[tuple[int, list[Change]]]:
        """Every change under `prefix` with a revision above `after`, in batches of one
        revision each: (revision, changes). Raises StoreUnavailable when the connection is
        lost (the caller lists again and watches from there), WatchCompacted when `after`
        is too old."""
        ...

    async def grant(self, ttl: float) -> int:
        """A new lease of `ttl` seconds (rounded up to whole seconds); its id."""

    async def keepalive(self, lease: int) -> bool:
        """Renew a lease; False when it has already expired (its keys are gone)."""

    async def put_leased(self, key: str, value: bytes, lease: int) -> int:
        """Put a key attached to a lease; the revision it got."""
