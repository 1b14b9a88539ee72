"""Build merged-scope runs (geodns.geo.scopes) for one database file and some services.

Too slow for a serving process: the embedded DB-IP City Lite file has 11.6 million tree
nodes and 493,000 distinct records, and reading one record costs about 13 us with the C
reader, so a first build takes about 20 s of CPU. It runs in a child process at the lowest
priority (`python -m geodns.control.scopebuild`, fed a pickled BuildRequest on stdin) and keeps
its results in a cache directory: each record's location once per database file, and the
runs once per database file and service class fingerprint. A server restarted on the same
file and config loads its runs from the cache in milliseconds.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import os
import pickle
import sys
import time
from dataclasses import dataclass

import numpy as np

from geodns.geo.geoip import GeoRecord, current_file_key, geo_record, open_reader
from geodns.geo.latency import DEFAULT_MS_PER_KM, LatencyTable
from geodns.geo.mmdbtree import ALIAS, EMPTY, Networks, networks, read_tree
from geodns.geo.scopes import NO_WIDENING, ScopeRuns, build_runs, key_value
from geodns.lifetime import die_with_parent
from geodns.routing.classes import (
    candidates,
    default_order,
    profile,
    residency_index,
    row_plan,
)
from geodns.routing.estimate import EARTH_RADIUS_KM, great_circle_km
from geodns.zones.model import Service

log = logging.getLogger("geodns.scopes")

PARENT_ENV = "GEODNS_SCOPE_BUILD_PARENT"  # the server's pid, set by geodns.control.scopes
KEEP_FILES = 24  # cache files kept per kind (more if one build makes more); older removed
TIE_KM = 1e-6  # closer than this, two regions' distances count as tied (numpy vs math)
TIE_MS = 1e-6  # likewise two estimates, or an estimate gap and a cost budget


def default_cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "geodns")


@dataclass(frozen=True)
class ClassSpec:
    """One service class: its fingerprint, and a service and table that have it."""

    fingerprint: str
    service: Service
    latency: LatencyTable | None


@dataclass(frozen=True)
class BuildRequest:
    database: str
    file_key: str  # the version of the file the serving processes have open
    classes: tuple[ClassSpec, ...]
    cache_dir: str


def result_path(cache_dir: str, key: str, fingerprint: str) -> str:
    return os.path.join(cache_dir, f"scopes-{key}-{fingerprint}.npz")


def cached(request: BuildRequest) -> dict[str, str] | None:
    """{fingerprint: runs file} when every class is in the cache already, else None.

    A file that does not load (a disk error, someone's editing) is removed, so that it
    is built again rather than refused by every worker forever.
    """
    out = {}
    for spec in request.classes:
        path = result_path(request.cache_dir, request.file_key, spec.fingerprint)
        if not os.path.exists(path):
            return None
        try:
            ScopeRuns.load(path)
        except Exception:  # zipfile.BadZipFile, KeyError, ValueError, OSError ...
            with contextlib.suppress(OSError):
                os.remove(path)
            return None
        out[spec.fingerprint] = path
    return out


@dataclass(frozen=True)
class Features:
    """What routing reads of each distinct record, as arrays (the last entry: unlocated)."""

    offsets: np.ndarray  # data-section offsets, sorted
    located: np.ndarray  # bool: the record has a country, continent or location
    country: np.ndarray  # 'U8', "" for none
    continent: np.ndarray
    lat: np.ndarray  # float64, NaN for none
    lon: np.ndarray


def record_features(records: list[GeoRecord | None], offsets: np.ndarray) -> Features:
    rows = [*records, None]  # the unlocated class, for networks without data
    return Features(
        offsets,
        np.array([r is not None for r in rows], bool),
        np.array([(r.country or "") if r else "" for r in rows], "U8"),
        np.array([(r.continent or "") if r else "" for r in rows], "U8"),
        np.array([r.lat if r and r.lat is not None else np.nan for r in rows], np.float64),
        np.array([r.lon if r and r.lon is not None else np.nan for r in rows], np.float64),
    )


def record_classes(f: Features, service: Service, latency: LatencyTable | None) -> np.ndarray:
    """A class id per record: equal ids exactly where routing.classes.client_class is equal
    (or a record of its own, where two estimates are too close to call in floating point)."""
    pair_text = np.char.add(np.char.add(f.country, "|"), f.continent)
    pairs, pair_of = np.unique(pair_text, return_inverse=True)
    pair_of = pair_of.ravel()
    # A profile's id (routing.classes.Profile), shared by every way to reach it.
    orders: dict[tuple[tuple[int, ...], int], int] = {}
    groups: dict[tuple[object, ...], int] = {}
    group = np.empty(len(pairs), np.int64)
    pair_rule = np.empty(len(pairs), np.int64)
    pair_last = np.full(len(pairs), -1, np.int64)  # -1: rows decide, no order needed
    needs_position = np.zeros(len(pairs), bool)
    # Pairs whose anchored country row's profile depends on the location: (country, the
    # regions it holds, whether it is the class's last column) -> pair indexes.
    anchored: dict[tuple[str, tuple[int, ...], bool], list[int]] = {}
    for i, text in enumerate(pairs.tolist()):
        country, continent = (x or None for x in text.split("|"))
        rule = residency_index(service, country, continent)
        among = candidates(service, rule)
        rows = None
        if len(among) <= 1:
            pair_last[i] = orders.setdefault((among, 0), len(orders))
        else:
            plan = row_plan(service, latency, country, continent, among)
            rows = plan.rows
            if plan.anchored is not None:
                key = (plan.anchored, plan.anchored_among, plan.rows is None)
                anchored.setdefault(key, []).append(i)
            elif plan.rows is None and plan.decided:
                flat = plan.flat or {}
                flat_profile = profile(service, among, flat.__getitem__)
                pair_last[i] = orders.setdefault(flat_profile, len(orders))
            if not plan.decided:
                needs_position[i] = True
                fallback = (default_order(service, among), 0)
                pair_last[i] = orders.setdefault(fallback, len(orders))
        group[i] = groups.setdefault((rule, rows), len(groups))
        pair_rule[i] = rule
    first = group[pair_of]
    mid = np.full(len(first), -1, np.int64)
    last = pair_last[pair_of]
    rules = pair_rule[pair_of]
    located = f.located & ~np.isnan(f.lat)
    for (country, held, is_last), members in anchored.items():
        assert latency is not None
        which = np.flatnonzero(np.isin(pair_of, members))
        codes = _anchored_codes(f, service, latency, country, held, which, located, orders)
        (last if is_last else mid)[which] = codes
    has_xy = located & needs_position[pair_of]
    k = latency.ms_per_km if latency is not None else DEFAULT_MS_PER_KM
    for rule in np.unique(rules[has_xy]).tolist():
        which = np.flatnonzero(has_xy & (rules == rule))
        among = candidates(service, rule)
        km = _km_matrix(f, service, among, which)
        last[which] = _profile_codes(km, km * k, service, among, which, orders, TIE_KM)
    # Unlocated: as client_class(None).
    first[~f.located] = groups.setdefault((-1, None), len(groups))
    mid[~f.located] = -1
    everyone = (default_order(service, candidates(service, -1)), 0)
    last[~f.located] = orders.setdefault(everyone, len(orders))
    _, ids = np.unique(np.stack([first, mid, last], axis=1), axis=0, return_inverse=True)
    return ids.ravel().astype(np.int64)


def _km_matrix(
    f: Features, service: Service, among: tuple[int, ...], which: np.ndarray
) -> np.ndarray:
    """Great-circle km from each record `which` to each region `among` (inf: no location)."""
    lat, lon = f.lat[which], f.lon[which]
    km = np.full((len(which), len(among)), np.inf)
    p1 = np.radians(lat)
    for j, i in enumerate(among):
        r = service.regions[i]
        if r.lat is None or r.lon is None:
            continue
        p2 = np.radians(r.lat)
        dp = p2 - p1
        dl = np.radians(r.lon - lon)
        a = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
        km[:, j] = 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(a))
    return km


def _anchored_codes(
    f: Features,
    service: Service,
    latency: LatencyTable,
    country: str,
    held: tuple[int, ...],
    which: np.ndarray,
    located: np.ndarray,
    orders: dict[tuple[tuple[int, ...], int], int],
) -> np.ndarray:
    """The id of each record's profile of the regions `held` by the anchored row of
    `country` (routing.classes.anchored_profile): corrected by its location, or the
    row's flat figures for a record without one."""
    figures = latency.countries[country]
    regions = service.regions
    out = np.empty(len(which), np.int64)
    flat = profile(service, held, lambda i: figures[regions[i].name])
    here = located[which]
    out[~here] = orders.setdefault(flat, len(orders))
    if here.any():
        xy = which[here]
        anchor = latency.anchors[country]
        km = _km_matrix(f, service, held, xy)
        ms = np.empty_like(km)
        for j, i in enumerate(held):
            r = regions[i]
            base = figures[r.name]
            if r.lat is None or r.lon is None:
                ms[:, j] = base  # no location: the row's figure, as estimate.in_country
            else:
                there = great_circle_km(anchor[0], anchor[1], r.lat, r.lon)
                ms[:, j] = base + latency.ms_per_km * (km[:, j] - there)
        out[here] = _profile_codes(ms, ms, service, held, xy, orders, TIE_MS)
    return out


def _profile_codes(
    rank_by: np.ndarray,
    compare: np.ndarray,
    service: Service,
    among: tuple[int, ...],
    which: np.ndarray,
    orders: dict[tuple[tuple[int, ...], int], int],
    tie: float,
) -> np.ndarray:
    """The id of each record's profile of the regions `among`: its ranking by `rank_by`
    and, with a cost budget, the pairs `compare` puts within it (routing.classes.profile)."""
    # Stable: equal values keep config order, as the order step's sort does.
    columns = np.argsort(rank_by, axis=1, kind="stable")
    ranked = np.take_along_axis(rank_by, columns, axis=1)
    with np.errstate(invalid="ignore"):
        gaps = ranked[:, 1:] - ranked[:, :-1]
    tied = ((gaps < tie) & np.isfinite(ranked[:, 1:])).any(axis=1)
    m, n = len(among), len(service.regions)
    pairs = [(a, b) for a in range(m) for b in range(m) if a != b]
    table = columns
    if service.cost is not None and pairs:
        budget = service.cost.within_ms
        finite = np.isfinite(compare)
        flags = []
        with np.errstate(invalid="ignore"):
            for a, b in pairs:
                both = finite[:, a] & finite[:, b]
                diff = compare[:, b] - compare[:, a]
                flags.append(both & (diff <= budget))
                # Near the budget's edge, numpy and the cost rule's math may disagree.
                tied |= both & (np.abs(diff - budget) < tie)
        table = np.concatenate([columns, np.stack(flags, axis=1).astype(columns.dtype)], axis=1)
    else:
        pairs = []
    distinct, codes = np.unique(table, axis=0, return_inverse=True)
    ids = []
    for row in distinct.tolist():
        bits = 0
        for (a, b), flag in zip(pairs, row[m:], strict=True):
            if flag:
                bits |= 1 << (among[a] * n + among[b])
        ranking = tuple(among[j] for j in row[:m])
        ids.append(orders.setdefault((ranking, bits), len(orders)))
    out = np.array(ids, np.int64)[codes.ravel()]
    # A near tie may be ordered differently by numpy and by the order step's math: such a
    # record gets a class of its own, so it never widens anyone's scope.
    out[tied] = 1_000_000_000 + which[tied]
    return out


def _features(reader: object, nets: dict[int, Networks], cache_dir: str, key: str) -> Features:
    path = os.path.join(cache_dir, f"features-{key}.npz")
    try:
        with np.load(path) as d:
            return Features(*(d[name] for name in Features.__dataclass_fields__))
    except Exception:  # missing or damaged (zipfile.BadZipFile among others): read again
        pass
    records = [(fam, n.records, n.starts) for fam, n in nets.items()]
    offsets = np.unique(np.concatenate([r[1] for r in records]))
    offsets = offsets[offsets >= 0]
    # One address per record: the first network holding it.
    where: dict[int, ipaddress.IPv4Address | ipaddress.IPv6Address] = {}
    for fam, recs, starts in records:
        keep = recs >= 0
        uniq, first = np.unique(recs[keep], return_index=True)
        firsts = starts[keep][first]
        for off, start in zip(uniq.tolist(), firsts.tolist(), strict=True):
            if off in where:
                continue
            if fam == 4:
                where[off] = ipaddress.IPv4Address(start)
            else:
                where[off] = ipaddress.IPv6Address(key_value(start, 128))
    get = reader.get  # type: ignore[attr-defined]
    decoded = [geo_record(get(where[off])) for off in offsets.tolist()]
    feats = record_features(decoded, offsets)
    _save(path, {name: getattr(feats, name) for name in Features.__dataclass_fields__})
    return feats


def _save(path: str, arrays: dict[str, np.ndarray]) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
    os.replace(tmp, path)


def build(request: BuildRequest) -> dict[str, str]:
    """Build (or find) the runs of every class in `request`: {fingerprint: runs file}."""
    os.makedirs(request.cache_dir, exist_ok=True)
    found = cached(request)
    if found is not None:
        return found
    key = request.file_key
    if current_file_key(request.database) != key:
        raise RuntimeError(f"{request.database} changed since the server opened it")
    reader = open_reader(request.database)
    try:
        meta = reader.metadata()
        tree = read_tree(request.database, meta.node_count, meta.record_size, meta.ip_version)
        nets = networks(tree)
        del tree
        feats = _features(reader, nets, request.cache_dir, key)
    finally:
        reader.close()
    if current_file_key(request.database) != key:
        raise RuntimeError(f"{request.database} changed during the build")
    out = {}
    for spec in request.classes:
        classes = record_classes(feats, spec.service, spec.latency)
        unlocated = classes[-1]
        per_family = {}
        for fam, net in nets.items():
            slot = np.searchsorted(feats.offsets, net.records)
            leaf = classes[slot]
            leaf[net.records == EMPTY] = unlocated
            leaf[net.records == ALIAS] = NO_WIDENING
            per_family[fam] = build_runs(
                net, leaf, special_class=unlocated, has_data=net.records != EMPTY
            )
        runs = ScopeRuns(per_family[4], per_family.get(6))
        path = result_path(request.cache_dir, key, spec.fingerprint)
        runs.save(path)
        out[spec.fingerprint] = path
    _prune(request.cache_dir, max(KEEP_FILES, len(out)))
    return out


def _prune(cache_dir: str, keep: int) -> None:
    for prefix in ("scopes-", "features-"):
        files = []
        for name in os.listdir(cache_dir):
            if name.startswith(prefix) and name.endswith(".npz"):
                path = os.path.join(cache_dir, name)
                try:
                    files.append((os.stat(path).st_mtime, path))
                except OSError:
                    continue
        files.sort(reverse=True)
        for _, path in files[keep:]:
            with contextlib.suppress(OSError):
                os.remove(path)


def main() -> int:
    """The child process: a pickled BuildRequest on stdin, {fingerprint: path} JSON out."""
    with contextlib.suppress(OSError):
        os.nice(19)  # the serving processes come first
    # A server killed with -9 leaves no build behind.
    die_with_parent(int(os.environ.get(PARENT_ENV, "0")) or None)
    request = pickle.load(sys.stdin.buffer)
    started = time.monotonic()
    try:
        out = build(request)
    except Exception as exc:
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
        return 1
    print(json.dumps({"files": out, "seconds": round(time.monotonic() - started, 2)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
