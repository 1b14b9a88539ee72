"""Counters the hot path bumps: plain dicts and ints, read by the metrics collector.

prometheus-client's own Counter.labels(...).inc() costs about 1 us, a tenth of a cached
answer, so queries are counted here per reply class (a dict increment) and turned into
Prometheus families only when /metrics is scraped.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from dataclasses import dataclass, field
from typing import NamedTuple


class ReplyKey(NamedTuple):
    """What one reply is counted under: the labels of queries and answers."""

    zone: str  # the zone's origin, "" when the name is in none of ours
    qtype: int  # -1 when the query was unreadable
    rcode: int  # -1 when nothing was sent
    service: str | None = None  # a service name's answer ...
    regions: tuple[str, ...] = ()  # ... and the regions it answered with


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
class QueryStats:
    """One process's counts since it started; a worker ships `export()` to the control plane."""

    replies: dict[str, defaultdict[ReplyKey, int]] = field(
        default_factory=lambda: {"udp": defaultdict(int), "tcp": defaultdict(int)}
    )
    # Per bucket, not cumulative; the last one counts what is above every bound.
    latency_buckets: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BOUNDS) + 1))
    latency_sum: float = 0.0
    decision_hits: int = 0
    decision_misses: int = 0

    def observe(self, seconds: float) -> None:
        self.latency_buckets[bisect_left(LATENCY_BOUNDS, seconds)] += 1
        self.latency_sum += seconds

    def export(self) -> dict:
        """A picklable copy, to send across a pipe."""
        return {
            "replies": {t: dict(c) for t, c in self.replies.items()},
            "latency_buckets": list(self.latency_buckets),
            "latency_sum": self.latency_sum,
            "decision_hits": self.decision_hits,
            "decision_misses": self.decision_misses,
        }


def combine(exports: list[dict]) -> QueryStats:
    """The sum of several processes' exports."""
    total = QueryStats()
    for e in exports:
        for transport, counts in e["replies"].items():
            mine = total.replies.setdefault(transport, defaultdict(int))
            for key, n in counts.items():
                mine[key] += n
        for i, n in enumerate(e["latency_buckets"]):
            total.latency_buckets[i] += n
        total.latency_sum += e["latency_sum"]
        total.decision_hits += e["decision_hits"]
        total.decision_misses += e["decision_misses"]
    return total
