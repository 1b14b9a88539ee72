"""Measured latency: samples aggregated per client area into estimates, and the frozen table of
them that travels in the state snapshot.

An area is a client network (IPv4 /24, IPv6 /48: NETWORK_PREFIX), its country, and its
continent; each sample counts in all three, so that a network with too few samples of its
own is ordered by its country's, then its continent's. The estimate of an (area, region)
is the median time to first byte of its newest `window` successful samples younger than
`max_age`; routing uses it from `min_samples` on. Nothing here reads a clock: `now` is
passed in, so that ageing is tested with plain numbers.
"""

from __future__ import annotations

import bisect
import ipaddress
import statistics
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from geodns.geo.rumformat import Sample

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

NETWORK_PREFIX = {4: 24, 6: 48}
LEVELS = ("network", "country", "continent")


@dataclass(frozen=True, slots=True)
class RumSettings:
    """How samples become estimates and how much they may move an order (docs/rum.md)."""

    min_samples: int = 5  # fewer: the area's estimate is not used (its parent's may be)
    max_age: float = 600.0  # seconds a sample counts for after it was received
    window: int = 32  # newest samples kept per (area, region): the median's window
    max_networks: int = 20_000  # client networks kept (countries and continents are few)
    # A region moves ahead of another only when better by more than both of these.
    stabilize_ms: float = 10.0
    stabilize_percent: float = 10.0

    def __post_init__(self) -> None:
        if self.min_samples < 1 or self.window < self.min_samples:
            raise ValueError("min_samples must be at least 1 and at most the window")
        if self.max_age <= 0 or self.max_networks < 1:
            raise ValueError("max_age and max_networks must be positive")
        if self.stabilize_ms < 0 or not 0 <= self.stabilize_percent < 100:
            raise ValueError("stabilize_ms must be >= 0 and stabilize_percent in 0..100")

    def better(self, ms: float, than: float) -> bool:
        """Whether `ms` beats `than` by more than the stabilize threshold (both terms)."""
        gain = than - ms
        return gain > self.stabilize_ms and gain > than * self.stabilize_percent / 100


@dataclass(frozen=True, slots=True)
class Estimate:
    """One area's measured latency to one region."""

    ms: float  # median time to first byte of the successful samples
    samples: int  # successful samples behind `ms`
    failed: int  # failed samples in the window
    newest: float  # epoch seconds the newest sample was received

    def to_json(self, now: float, min_samples: int) -> dict[str, float | int | bool]:
        """As /api/explain and /api/state show it: `enough` when routing may use it."""
        return {
            "ms": round(self.ms, 3),
            "samples": self.samples,
            "failed": self.failed,
            "age_s": round(max(0.0, now - self.newest), 1),
            "enough": self.samples >= min_samples,
        }


Row = Mapping[str, Estimate]  # region -> estimate


def network_of(address: IPAddress) -> str:
    """The aggregation network holding `address`, as text: "24.5.6.0/24", "2001:db8::/48".
    An IPv4-mapped IPv6 address is its IPv4 client's."""
    if address.version == 6 and address.ipv4_mapped is not None:  # type: ignore[union-attr]
        address = address.ipv4_mapped  # type: ignore[union-attr]
    prefix = NETWORK_PREFIX[address.version]
    return str(ipaddress.ip_network((address, prefix), strict=False))


def frozen_rows(rows: Mapping[str, Mapping[str, Estimate]]) -> Mapping[str, Row]:
    return MappingProxyType({k: MappingProxyType(dict(v)) for k, v in rows.items()})


@dataclass(frozen=True)
class MeasuredLatency:
    """Every area's estimates at one moment (`at`), with the settings that read them.

    Part of the state snapshot: routing reads it, never a live aggregator. Estimates with
    fewer than `settings.min_samples` samples are kept (explain shows them) but not used.
    """

    at: float = 0.0
    settings: RumSettings = field(default_factory=RumSettings)
    networks: Mapping[str, Row] = field(default_factory=lambda: MappingProxyType({}))
    countries: Mapping[str, Row] = field(default_factory=lambda: MappingProxyType({}))
    continents: Mapping[str, Row] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        # The regions some area has enough samples for: a service none of whose regions
        # is here is routed (and answered by class) as if there were no measurements.
        least = self.settings.min_samples
        used = {
            region
            for rows in (self.networks, self.countries, self.continents)
            for row in rows.values()
            for region, est in row.items()
            if est.samples >= least
        }
        object.__setattr__(self, "regions", frozenset(used))
        # The networks with rows, as sorted integer starts per IP version: which GeoIP
        # networks hold one (overlaps), in a binary search.
        starts: dict[int, list[int]] = {4: [], 6: []}
        for key in self.networks:
            net = ipaddress.ip_network(key)
            starts[net.version].append(int(net.network_address))
        object.__setattr__(self, "_starts", {v: sorted(x) for v, x in starts.items()})

    regions: frozenset[str] = field(init=False, default=frozenset(), compare=False)
    _starts: dict[int, list[int]] = field(init=False, default_factory=dict, compare=False)

    def overlaps(self, network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
        """Whether some network with a row (a /24 or /48) shares addresses with `network`:
        if none does, every address of `network` is ordered alike (by its country's or
        continent's rows, which one GeoIP network never straddles)."""
        version = network.version
        if version == 6 and network.network_address.ipv4_mapped is not None:
            return bool(self._starts[4])  # an IPv4-mapped client: the cautious answer
        size = 1 << (network.max_prefixlen - NETWORK_PREFIX[version])
        lo = int(network.network_address)
        hi = lo + network.num_addresses
        starts = self._starts[version]
        i = bisect.bisect_left(starts, lo - size + 1)
        return i < len(starts) and starts[i] < hi

    def rows(
        self, address: IPAddress, country: str | None, continent: str | None
    ) -> list[tuple[str, str, Row]]:
        """The rows that hold for a client, most specific first: (level, area, row)."""
        out = []
        key = network_of(address)
        for level, rows, area in (
            ("network", self.networks, key),
            ("country", self.countries, country),
            ("continent", self.continents, continent),
        ):
            row = rows.get(area) if area is not None else None
            if row:
                out.append((level, area, row))  # type: ignore[arg-type]
        return out

    def routing_key(self) -> tuple[object, ...]:
        """What routing reads: equal keys, equal decisions (the time `at` aside)."""
        return (
            self.settings,
            tuple(
                (k, tuple(sorted(row.items())))
                for rows in (self.networks, self.countries, self.continents)
                for k, row in sorted(rows.items())
            ),
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # Mapping proxies do not pickle, and snapshots travel to DNS worker processes.
        plain = [
            {k: dict(v) for k, v in rows.items()}
            for rows in (self.networks, self.countries, self.continents)
        ]
        return (_restore, (self.at, self.settings, *plain))


def _restore(
    at: float,
    settings: RumSettings,
    networks: dict[str, dict[str, Estimate]],
    countries: dict[str, dict[str, Estimate]],
    continents: dict[str, dict[str, Estimate]],
) -> MeasuredLatency:
    return MeasuredLatency(
        at, settings, frozen_rows(networks), frozen_rows(countries), frozen_rows(continents)
    )


NO_MEASUREMENTS = MeasuredLatency()


class _Series:
    """The newest samples of one (area, region): (received, ttfb ms or None if failed)."""

    __slots__ = ("estimate", "samples", "stale")

    def __init__(self, window: int) -> None:
        self.samples: deque[tuple[float, float | None]] = deque(maxlen=window)
        self.estimate: Estimate | None = None
        self.stale = True  # the estimate must be computed again

    def add(self, received: float, ttfb: float | None) -> None:
        self.samples.append((received, ttfb))
        self.stale = True

    def settle(self, oldest: float) -> Estimate | None:
        """Drop samples received before `oldest`; the estimate of what is left, or None."""
        samples = self.samples
        while samples and samples[0][0] < oldest:
            samples.popleft()
            self.stale = True
        if self.stale:
            good = [ms for _, ms in samples if ms is not None]
            self.estimate = None
            if good:
                newest = samples[-1][0]
                failed = len(samples) - len(good)
                self.estimate = Estimate(statistics.median(good), len(good), failed, newest)
            self.stale = False
        return self.estimate


class _Area:
    __slots__ = ("continent", "country", "series")

    def __init__(self, country: str | None = None, continent: str | None = None) -> None:
        self.series: dict[str, _Series] = {}
        self.country = country
        self.continent = continent

    def add(self, region: str, received: float, ttfb: float | None, window: int) -> int:
        series = self.series.get(region)
        if series is None:
            series = self.series[region] = _Series(window)
        series.add(received, ttfb)
        return sum(1 for _, ms in series.samples if ms is not None)


class Aggregator:
    """Samples in, MeasuredLatency out. Memory is bounded: at most `max_networks` networks
    of at most `window` samples per region known to the caller.

    A network is on probation until one of its regions has `min_samples` successful
    samples. A new network takes the place of the oldest one on probation; when every
    network is established, samples from new networks are refused (`add` says "full")
    and established ones leave only by ageing out. So a flood from random networks,
    one sample each, churns the probation tier and never evicts established data: to
    push it out a reporter would need `min_samples` samples per network, which the
    ingest's rate limit per reporting address makes slow.
    """

    def __init__(self, settings: RumSettings | None = None) -> None:
        self.settings = settings or RumSettings()
        self._networks: dict[str, _Area] = {}
        self._probation: dict[str, None] = {}  # insertion order: the oldest first
        self._countries: dict[str, _Area] = {}
        self._continents: dict[str, _Area] = {}

    def __len__(self) -> int:
        return len(self._networks)

    def add(
        self,
        network: str,
        country: str | None,
        continent: str | None,
        sample: Sample,
        received: float,
    ) -> str:
        """Count one sample for a client network (network_of) and its country and
        continent; "accepted", "stale" (older than max_age), or "full"."""
        settings = self.settings
        if sample.t < received - settings.max_age:
            return "stale"
        area = self._networks.get(network)
        if area is None:
            if len(self._networks) >= settings.max_networks:
                if not self._probation:
                    return "full"
                evicted = next(iter(self._probation))
                del self._probation[evicted]
                del self._networks[evicted]
            area = self._networks[network] = _Area(country, continent)
            self._probation[network] = None
        ttfb = sample.ttfb_ms if sample.ok else None
        good = area.add(sample.region, received, ttfb, settings.window)
        if good >= settings.min_samples:
            self._probation.pop(network, None)
        for areas, key in ((self._countries, country), (self._continents, continent)):
            if key is not None:
                parent = areas.get(key)
                if parent is None:
                    parent = areas[key] = _Area()
                parent.add(sample.region, received, ttfb, settings.window)
        return "accepted"

    def table(self, now: float) -> MeasuredLatency:
        """The estimates as of `now`; samples older than max_age are dropped for good, and
        areas left without samples with them."""
        oldest = now - self.settings.max_age
        rows = []
        for areas in (self._networks, self._countries, self._continents):
            out: dict[str, dict[str, Estimate]] = {}
            for key in list(areas):
                area = areas[key]
                row = {}
                for region in list(area.series):
                    series = area.series[region]
                    estimate = series.settle(oldest)
                    if not series.samples:
                        del area.series[region]
                    elif estimate is not None:
                        row[region] = estimate
                if not area.series:
                    del areas[key]
                    self._probation.pop(key, None)
                elif row:
                    out[key] = row
            rows.append(out)
        return MeasuredLatency(now, self.settings, *(frozen_rows(r) for r in rows))

    def areas(self) -> dict[str, int]:
        """How many areas of each level hold samples: for /metrics."""
        return {
            "network": len(self._networks),
            "country": len(self._countries),
            "continent": len(self._continents),
        }
