"""The latency table: measured round-trip times from a client's country or continent to regions."""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any, Literal

from geodns.errors import ConfigError, ConfigErrors
from geodns.geo.datafile import read_document, shipped
from geodns.geo.groups import COUNTRY_CODE
from geodns.yamlsource import Document

CONTINENTS = frozenset({"AF", "AN", "AS", "EU", "NA", "OC", "SA"})
_KEYS = ("source", "regions", "countries", "continents", "anchors", "ms_per_km")
# Round-trip milliseconds per great-circle kilometre, inside an anchored country: light in
# fibre covers about 200 km/ms one way (0.01 ms/km round trip), and routes run about 1.5x
# the great-circle distance. The shipped US row agrees: us-east-2 -> us-west-2 is 51 ms
# for 3,030 km, 0.017 ms/km; us-east-1 -> eu-west-1, 0.012 ms/km.
DEFAULT_MS_PER_KM = 0.015

Row = Mapping[str, float]


class LatencyTable:
    """RTT in milliseconds from a country or continent to each region it has a figure for."""

    __slots__ = ("anchors", "continents", "countries", "file", "ms_per_km", "regions", "source")

    def __init__(
        self,
        regions: Iterable[str],
        countries: Mapping[str, Mapping[str, float]],
        continents: Mapping[str, Mapping[str, float]],
        source: str = "",
        file: str = "",
        anchors: Mapping[str, tuple[float, float]] | None = None,
        ms_per_km: float = DEFAULT_MS_PER_KM,
    ) -> None:
        self.regions: tuple[str, ...] = tuple(regions)
        # Read-only views: one table is shared by every service and worker.
        self.countries: Mapping[str, Row] = MappingProxyType(
            {k: MappingProxyType(dict(v)) for k, v in countries.items()}
        )
        self.continents: Mapping[str, Row] = MappingProxyType(
            {k: MappingProxyType(dict(v)) for k, v in continents.items()}
        )
        self.source = source
        self.file = file
        # Country code -> (lat, lon) where its row's figures hold: inside such a country a
        # client's figure to a region is corrected by how much nearer to (or farther from)
        # the region the client is than the anchor (geodns.routing.estimate).
        self.anchors: Mapping[str, tuple[float, float]] = MappingProxyType(dict(anchors or {}))
        self.ms_per_km = ms_per_km

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> LatencyTable:
        """Read and validate a table; ConfigErrors (a ConfigError) lists every problem by line.

        A file unchanged since it was last read is not read again: a zone load validates
        the table and the server then uses it, and every reload does both again.
        """
        try:
            st = os.stat(path)
        except OSError:
            return _read(os.fspath(path), 0, 0)  # says what is wrong with the file
        return _read(os.fspath(path), st.st_mtime_ns, st.st_size)

    @classmethod
    def default(cls) -> LatencyTable:
        """The table shipped in geodns/data/latency.yaml (AWS regions)."""
        return _default()

    def __reduce__(self) -> tuple[object, ...]:
        # Mapping proxies don't pickle; the scope builder gets tables in a child process.
        return (
            LatencyTable,
            (
                self.regions,
                {k: dict(v) for k, v in self.countries.items()},
                {k: dict(v) for k, v in self.continents.items()},
                self.source,
                self.file,
                dict(self.anchors),
                self.ms_per_km,
            ),
        )

    def rtt(self, country: str | None, continent: str | None, region: str) -> float | None:
        """The country row's RTT to `region` if it has one, else the continent row's, else None."""
        if country is not None:
            row = self.countries.get(country)
            if row is not None and region in row:
                return row[region]
        if continent is not None:
            row = self.continents.get(continent)
            if row is not None and region in row:
                return row[region]
        return None

    def covers(
        self, country: str | None, continent: str | None, regions: Iterable[str]
    ) -> Literal["country", "continent"] | None:
        """Which row has a figure for every one of `regions`: "country", "continent" or None.

        Orders compare figures from one row only: a country row that lacks a candidate is
        not mixed with its continent's figures, which were measured another way.
        """
        regions = tuple(regions)
        if country is not None:
            row = self.countries.get(country)
            if row is not None and all(r in row for r in regions):
                return "country"
        if continent is not None:
            row = self.continents.get(continent)
            if row is not None and all(r in row for r in regions):
                return "continent"
        return None

    def __repr__(self) -> str:
        return (
            f"LatencyTable({self.file!r}, {len(self.regions)} regions,"
            f" {len(self.countries)} countries, {len(self.continents)} continents)"
        )


@functools.lru_cache(maxsize=32)
def _read(path: str, mtime_ns: int, size: int) -> LatencyTable:
    # Keyed by the file's modification time and size too, so that an edit is read anew;
    # a table that fails to load raises, and lru_cache keeps nothing of it.
    return _Builder(read_document(path)).build()


@functools.cache
def _default() -> LatencyTable:
    return LatencyTable.load(shipped("latency.yaml"))


class _Builder:
    """Validates one document, collecting every error before raising."""

    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self.errors: list[ConfigError] = []

    def fail(self, path: tuple[str | int, ...], message: str) -> None:
        self.errors.append(self.doc.error(path, message))

    def build(self) -> LatencyTable:
        data: dict[str, Any] = self.doc.data
        for key in data:
            if key not in _KEYS:
                self.fail((key,), f"unknown key (expected one of: {', '.join(_KEYS)})")
        source = data.get("source", "")
        if source is None:
            source = ""
        if not isinstance(source, str):
            self.fail(("source",), "expected text: where the figures come from")
            source = ""
        regions = self.regions(data.get("regions"))
        known = set(regions)
        countries = self.rows(data, "countries", known)
        continents = self.rows(data, "continents", known)
        anchors = self.anchors(data.get("anchors"), countries)
        ms_per_km = data.get("ms_per_km", DEFAULT_MS_PER_KM)
        if (
            isinstance(ms_per_km, bool)
            or not isinstance(ms_per_km, int | float)
            or not 0 <= ms_per_km <= 1
        ):
            self.fail(
                ("ms_per_km",), f"expected a number of ms per km from 0 to 1, got {ms_per_km!r}"
            )
            ms_per_km = DEFAULT_MS_PER_KM
        if self.errors:
            raise ConfigErrors(sorted(self.errors, key=lambda e: e.line))
        return LatencyTable(
            regions, countries, continents, source, self.doc.file, anchors, float(ms_per_km)
        )

    def anchors(
        self, value: Any, countries: dict[str, dict[str, float]]
    ) -> dict[str, tuple[float, float]]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.fail(("anchors",), "expected a mapping of country codes to {lat, lon}")
            return {}
        out = {}
        for code, spec in value.items():
            path = ("anchors", code)
            if code not in countries:
                self.fail(path, f"no row in `countries` for {code}: an anchor places a row")
                continue
            if not isinstance(spec, dict) or set(spec) != {"lat", "lon"}:
                self.fail(path, "expected {lat: DEGREES, lon: DEGREES}")
                continue
            lat, lon = spec["lat"], spec["lon"]
            if not all(isinstance(x, int | float) and not isinstance(x, bool) for x in (lat, lon)):
                self.fail(path, "lat and lon must be numbers of degrees")
            elif not (-90 <= lat <= 90 and -180 <= lon <= 180):
                self.fail(path, f"({lat}, {lon}) is not a place on Earth")
            else:
                out[code] = (float(lat), float(lon))
        return out

    def regions(self, value: Any) -> list[str]:
        if value is None:
            self.fail(("regions",), "missing: list every region name the table uses")
            return []
        if not isinstance(value, list) or not value:
            self.fail(("regions",), "expected a non-empty list of region names")
            return []
        out: list[str] = []
        for i, name in enumerate(value):
            if not isinstance(name, str) or not name:
                self.fail(("regions", i), f"expected a region name, got {name!r}")
            elif name in out:
                self.fail(("regions", i), f"{name} is listed twice")
            else:
                out.append(name)
        return out

    def rows(self, data: dict[str, Any], key: str, known: set[str]) -> dict[str, dict[str, float]]:
        value = data.get(key)
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.fail((key,), "expected a mapping of codes to rows")
            return {}
        out: dict[str, dict[str, float]] = {}
        for code, row in value.items():
            if key == "countries" and not COUNTRY_CODE.fullmatch(code):
                self.fail((key, code), "not an ISO 3166-1 alpha-2 code in upper case (like DE)")
                continue
            if key == "continents" and code not in CONTINENTS:
                self.fail((key, code), f"not a continent code ({' '.join(sorted(CONTINENTS))})")
                continue
            if not isinstance(row, dict) or not row:
                self.fail((key, code), "expected a non-empty mapping of region -> RTT ms")
                continue
            parsed: dict[str, float] = {}
            for region, ms in row.items():
                path = (key, code, region)
                if region not in known:
                    self.fail(path, f"region {region} is not in `regions`")
                elif (
                    isinstance(ms, bool)
                    or not isinstance(ms, int | float)
                    or not math.isfinite(ms)
                    or ms <= 0
                ):
                    self.fail(path, f"RTT must be a positive number of milliseconds, got {ms!r}")
                else:
                    parsed[region] = float(ms)
            out[code] = parsed
        return out
