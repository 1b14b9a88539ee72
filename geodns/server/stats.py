"""Counters the hot path bumps: plain dicts and ints, read by the metrics collector.

prometheus-client's own Counter.labels(...).inc() costs about 1 us, a tenth of a cached
answer, so queries are counted here per reply class (a dict increment) and turned into
Prometheus families only when /metrics is scraped.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field
from typing import NamedTuple


class ReplyKey(NamedTuple):
    """What one reply is counted under: the labels of queries and answers."""

    zone: str  # the zone's origin, "" when the name is in none of ours
    qtype: int  # -1 when the query was unreadable
    rcode: int  # -1 when nothing was sent
    service: str | None = None  # a service name's answer ...
    regions: tuple[str, ...] = ()  # ... and the regions it answered with
    # The residency rule it failed closed under ("0", "1": its index in the service's
    # list; "unlocated": the service's rule for clients without a location), else None.
    residency: str | None = None


DROPPED = ReplyKey("", -1, -1)

# Seconds. A cached reply takes about 10 us, a new decision about 100 us.
LATENCY_BOUNDS = (
    0.00001,
    0.000025,
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.05,
)


@dataclass
class QueryTotals:
    """Counts as /metrics reads them: summed over workers, by reply class."""

    replies: dict[str, dict[ReplyKey, int]] = field(default_factory=dict)
    # Per bucket, not cumulative; the last one counts what is above every bound.
    latency_buckets: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BOUNDS) + 1))
    latency_sum: float = 0.0
    decision_hits: int = 0
    decision_misses: int = 0
    rrl_slipped: int = 0  # UDP replies over the rate limit sent truncated (TC=1)
    rrl_dropped: int = 0  # UDP replies over the rate limit not sent


class QueryStats:
    """One process's counts since it started; a worker ships `export()` to the control plane.

    Reply classes are interned to small ints, so that the hot path bumps a list slot
    rather than hashing a tuple of labels for every query.
    """

    def __init__(self) -> None:
        self.keys: list[ReplyKey] = []
        self._ids: dict[ReplyKey, int] = {}
        self.counts: dict[str, list[int]] = {"udp": [], "tcp": []}
        self.latency_buckets = [0] * (len(LATENCY_BOUNDS) + 1)
        self.latency_sum = 0.0
        self.decision_hits = 0
        self.decision_misses = 0
        self.rrl_slipped = 0
        self.rrl_dropped = 0
        self.key_id(DROPPED)

    def key_id(self, key: ReplyKey) -> int:
        """The slot `key` is counted in, made on first sight."""
        found = self._ids.get(key)
        if found is None:
            found = self._ids[key] = len(self.keys)
            self.keys.append(key)
            for counts in self.counts.values():
                counts.append(0)
        return found

    def observe(self, seconds: float) -> None:
        self.latency_buckets[bisect_left(LATENCY_BOUNDS, seconds)] += 1
        self.latency_sum += seconds

    def add(self, export: dict) -> None:
        """Count on from another process's export: a worker that replaces a killed one
        starts where that one's last report was, so counters never go backwards."""
        for transport, counts in export["replies"].items():
            mine = self.counts.setdefault(transport, [0] * len(self.keys))
            for key, n in counts.items():
                mine[self.key_id(key)] += n
        for i, n in enumerate(export["latency_buckets"]):
            self.latency_buckets[i] += n
        self.latency_sum += export["latency_sum"]
        self.decision_hits += export["decision_hits"]
        self.decision_misses += export["decision_misses"]
        self.rrl_slipped += export.get("rrl_slipped", 0)
        self.rrl_dropped += export.get("rrl_dropped", 0)

    def export(self) -> dict:
        """A picklable copy, to send across a pipe."""
        return {
            "replies": {
                t: {self.keys[i]: n for i, n in enumerate(counts) if n}
                for t, counts in self.counts.items()
            },
            "latency_buckets": list(self.latency_buckets),
            "latency_sum": self.latency_sum,
            "decision_hits": self.decision_hits,
            "decision_misses": self.decision_misses,
            "rrl_slipped": self.rrl_slipped,
            "rrl_dropped": self.rrl_dropped,
        }


def combine(exports: list[dict]) -> QueryTotals:
    """The sum of several processes' exports."""
    total = QueryTotals()
    for e in exports:
        for transport, counts in e["replies"].items():
            mine = total.replies.setdefault(transport, {})
            for key, n in counts.items():
                mine[key] = mine.get(key, 0) + n
        for i, n in enumerate(e["latency_buckets"]):
            total.latency_buckets[i] += n
        total.latency_sum += e["latency_sum"]
        total.decision_hits += e["decision_hits"]
        total.decision_misses += e["decision_misses"]
        total.rrl_slipped += e.get("rrl_slipped", 0)
        total.rrl_dropped += e.get("rrl_dropped", 0)
    return total
