"""Measured latency across a fleet: each node's estimates as a store value, and the merge of
every node's into the one table that all of them route by.

A node shares its own estimates (geodns.geo.rum.Aggregator.table) under `rum/<node>`, on
its lease; every node merges the tables of all live nodes, its own as it shared it, so
that nodes that see the same store revision hold the same table and answer alike. What is
shared is estimates, not samples: a few hundred kilobytes at most, whatever the report
rate.

The merge of one (area, region) over nodes: samples and failures add up, the newest is the
latest, and the latency is the sample-weighted median of the nodes' medians. That equals
the median of all samples when one node holds them all, and stays robust otherwise (one
node's outliers move it no more than their share of the samples).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from geodns.geo.rum import LEVELS, Estimate, MeasuredLatency, RumSettings, frozen_rows

# The networks a node shares at most: those with the most samples. An etcd value is limited
# to 1.5 MiB by default; 2,000 networks of three regions take about 200 KB.
SHARE_NETWORKS = 2_000
FORMAT = 1


def to_share(table: MeasuredLatency, limit: int = SHARE_NETWORKS) -> dict[str, Any]:
    """`table` as the JSON value a node shares: regions by index, times rounded."""
    regions = sorted({r for rows in _levels(table) for row in rows.values() for r in row})
    index = {r: i for i, r in enumerate(regions)}
    networks = sorted(
        table.networks.items(), key=lambda kv: (-sum(e.samples for e in kv[1].values()), kv[0])
    )[:limit]
    levels = (dict(networks), table.countries, table.continents)
    return {
        "format": FORMAT,
        "at": round(table.at, 1),
        "regions": regions,
        **{
            level: {
                area: [
                    [index[r], round(e.ms, 2), e.samples, e.failed, round(e.newest, 1)]
                    for r, e in sorted(row.items())
                ]
                for area, row in sorted(rows.items())
            }
            for level, rows in zip(LEVELS, levels, strict=True)
        },
    }


def from_share(data: Any, settings: RumSettings) -> MeasuredLatency:
    """A shared value back as a table; ValueError (or TypeError, KeyError) says what is
    wrong with it."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"not a format {FORMAT} measured-latency table")
    regions = data["regions"]
    if not isinstance(regions, list) or not all(isinstance(r, str) for r in regions):
        raise ValueError("regions: must be a list of names")
    levels = []
    for level in LEVELS:
        rows = data.get(level, {})
        if not isinstance(rows, dict):
            raise TypeError(f"{level}: must be an object")
        out: dict[str, dict[str, Estimate]] = {}
        for area, items in rows.items():
            row = {}
            for item in items:
                i, ms, samples, failed, newest = item
                if not (isinstance(i, int) and 0 <= i < len(regions)):
                    raise ValueError(f"{level} {area}: region index {i!r} out of range")
                numbers = (ms, samples, failed, newest)
                if not all(_finite(x) for x in numbers) or min(numbers) < 0:
                    raise ValueError(f"{level} {area}: {item!r} is not four non-negative numbers")
                row[regions[i]] = Estimate(float(ms), int(samples), int(failed), float(newest))
            if row:
                out[str(area)] = row
        levels.append(frozen_rows(out))
    return MeasuredLatency(float(data.get("at", 0.0)), settings, *levels)


def merge(tables: Iterable[MeasuredLatency], settings: RumSettings, now: float) -> MeasuredLatency:
    """One table from every node's: per (area, region), the sample-weighted median of the
    nodes' estimates, samples summed. Estimates whose newest sample is older than
    `settings.max_age` at `now` are left out (a node that stopped reporting ages out as its
    own samples would have)."""
    oldest = now - settings.max_age
    gathered: list[dict[str, dict[str, list[Estimate]]]] = [{}, {}, {}]
    for table in tables:
        for into, rows in zip(gathered, _levels(table), strict=True):
            for area, row in rows.items():
                for region, estimate in row.items():
                    if estimate.newest >= oldest:
                        into.setdefault(area, {}).setdefault(region, []).append(estimate)
    levels = [
        frozen_rows(
            {
                area: {region: combine(found) for region, found in row.items()}
                for area, row in rows.items()
            }
        )
        for rows in gathered
    ]
    return MeasuredLatency(now, settings, *levels)


def combine(estimates: list[Estimate]) -> Estimate:
    """Several nodes' estimates of one (area, region) as one."""
    if len(estimates) == 1:
        return estimates[0]
    ranked = sorted(estimates, key=lambda e: (e.ms, e.samples, e.newest))
    total = sum(e.samples for e in ranked)
    # The lower weighted median: the first estimate at which half the samples are reached.
    # With no successful samples anywhere (not produced by the aggregator) the plain one.
    ms = ranked[(len(ranked) - 1) // 2].ms
    if total:
        seen = 0
        for estimate in ranked:
            seen += estimate.samples
            if 2 * seen >= total:
                ms = estimate.ms
                break
    return Estimate(
        ms,
        total,
        sum(e.failed for e in ranked),
        max(e.newest for e in ranked),
    )


def _levels(table: MeasuredLatency) -> tuple[Mapping[str, Mapping[str, Estimate]], ...]:
    return (table.networks, table.countries, table.continents)


def _finite(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)
