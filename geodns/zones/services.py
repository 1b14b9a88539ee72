"""The `services:` section of a zone file: regions, residency, capacity, order, validated."""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Iterable
from typing import Any, Protocol

import dns.name

from geodns.errors import ConfigError, GeoIPDatabaseError
from geodns.geo.groups import country_groups
from geodns.geo.overrides import AsnDatabase
from geodns.yamlsource import Document, Path
from geodns.zones import keys
from geodns.zones.healthspec import Fields, health_fields, merge_health
from geodns.zones.model import (
    Capacity,
    ClientMatch,
    CostPolicy,
    FailClosed,
    IPNetwork,
    Preference,
    Quorum,
    Region,
    ResidencyRule,
    Service,
    Signal,
    VersionPolicy,
)

# The keys of each mapping, their defaults and the checks of plain values are declared in
# keys.py; this module checks what involves more than one value.
DEFAULT_SERVICE_TTL = keys.SERVICE.default("ttl")
MAX_ASN = keys.MAX_ASN
CONTINENTS = set(keys.CONTINENTS)
WHEN_NONE = keys.WHEN_NONE
_LABEL = re.compile(keys.LABEL)


class Builder(Protocol):
    """What the zone builder lends (its collector, geodns/zones/collector.py): error collection
    and value checks."""

    doc: Document  # the file being read: paths in it are relative to its directory

    def add_error(self, path: Path, message: str) -> None: ...
    def unknown_keys(self, path: Path, spec: dict[str, Any], allowed: Iterable[str]) -> None: ...
    def ttl_value(self, path: Path, value: Any, default: int) -> int: ...
    def int_value(self, path: Path, value: Any, low: int, high: int, what: str) -> int | None: ...


def parse_address(text: Any) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An IP address as a zone may hold it, else None; a scope ID (fe80::1%eth0) means
    nothing to other hosts, so it is refused."""
    if not isinstance(text, str):
        return None
    try:
        ip = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    return None if "%" in str(ip) else ip


def build_service(b: Builder, path: Path, name: dns.name.Name, spec: Any) -> Service | None:
    if not isinstance(spec, dict):
        b.add_error(path, "must be a mapping with `regions`")
        return None
    b.unknown_keys(path, spec, keys.SERVICE.names)
    ttl = keys.SERVICE.value(b, path, spec, "ttl")
    if ttl is None:
        ttl = DEFAULT_SERVICE_TTL
    answers = keys.SERVICE.value(b, path, spec, "answers")
    port = keys.SERVICE.value(b, path, spec, "port")
    regions_spec = spec.get("regions")
    if not isinstance(regions_spec, dict) or not regions_spec:
        b.add_error((*path, "regions"), "a service needs at least one region")
        return None
    zone_dir = os.path.dirname(b.doc.file)
    # The service's `health:` holds defaults for its regions' checks; checked once, here.
    health_defaults = health_fields(b, (*path, "health"), spec.get("health"), zone_dir)
    regions = []
    for region_name, rspec in regions_spec.items():
        region = _region(
            b, (*path, "regions", region_name), region_name, rspec, health_defaults, zone_dir
        )
        if region is not None:
            regions.append(region)
    known = set(regions_spec)
    default_order = _region_list(
        b, (*path, "default_order"), spec.get("default_order", []), known, allow_empty=True
    )
    capacity = _capacity(b, (*path, "capacity"), spec.get("capacity", {}))
    asn_db = _asn_database(b, (*path, "asn_database"), spec.get("asn_database"), zone_dir)
    residency = _residency(b, (*path, "residency"), spec.get("residency", []), known, asn_db)
    prefer = _prefer(b, (*path, "prefer"), spec.get("prefer", []), known, asn_db)
    cost = None
    if spec.get("cost") is not None:
        cost = _cost(b, (*path, "cost"), spec["cost"])
        for region in regions:
            if "cost" not in regions_spec[region.name]:
                b.add_error(
                    (*path, "regions", region.name),
                    "needs `cost:` (relative units): the service's cost budget compares them",
                )
    when_all_down = keys.SERVICE.value(b, path, spec, "when_all_down")
    latency = spec.get("latency", keys.SERVICE.default("latency"))
    if latency is not None and (not isinstance(latency, str) or not latency):
        b.add_error((*path, "latency"), "must be `default`, a file path, or null (no table)")
        latency = None
    version = _version_policy(
        b, (*path, "version"), spec.get("version", keys.SERVICE.default("version"))
    )
    unlocated = None
    if spec.get("unlocated", "route") != "route":
        unlocated = fail_closed(b, (*path, "unlocated"), spec["unlocated"], allow_route=True)
        if residency and any(rule.clients.unlocated for rule in residency):
            b.add_error(
                (*path, "unlocated"),
                "a residency rule already holds unlocated clients (clients: {unlocated: true})",
            )
    quorum = keys.SERVICE.value(b, path, spec, "quorum") or keys.SERVICE.default("quorum")
    if answers is None or port is None or capacity is None or residency is None or version is None:
        return None
    return Service(
        name=name,
        ttl=ttl,
        regions=tuple(regions),
        answers=answers,
        port=port,
        default_order=tuple(default_order or ()),
        capacity=capacity,
        residency=residency,
        when_all_down=when_all_down,
        latency=latency,
        version=version,
        unlocated=unlocated,
        quorum=Quorum(quorum),
        cost=cost,
        prefer=prefer or (),
        asn_database=asn_db,
    )


def _version_policy(b: Builder, path: Path, spec: Any) -> VersionPolicy | None:
    """`consistent` (default), `any`, `{pin: V}`, or a mapping of the VersionPolicy fields."""
    if isinstance(spec, str):
        spec = {"mode": spec}
    if not isinstance(spec, dict):
        b.add_error(path, "must be consistent, any, {pin: VERSION} or a mapping")
        return None
    b.unknown_keys(path, spec, keys.VERSION.names)
    pin = spec.get("pin")
    mode = spec.get("mode", "pin" if pin is not None else "consistent")
    ok = True
    if keys.VERSION["mode"].kind.parse(b, (*path, "mode"), mode) is None:
        ok = False
    if mode == "pin" and (
        pin is None or isinstance(pin, bool) or not isinstance(pin, str | int | float)
    ):
        b.add_error((*path, "pin"), 'pin needs the version to answer, e.g. {pin: "42"}')
        ok = False
    elif mode != "pin" and pin is not None:
        b.add_error((*path, "pin"), f"pin goes with mode pin, not {mode}")
        ok = False
    share = keys.VERSION.value(b, path, spec, "canary_share")
    when_none = keys.VERSION.value(b, path, spec, "when_none")
    if share is None or when_none is None:
        ok = False
    if not ok:
        return None
    return VersionPolicy(mode, None if pin is None else str(pin), float(share), when_none)


def _region(
    b: Builder, path: Path, name: str, spec: Any, health_defaults: Fields, zone_dir: str
) -> Region | None:
    if not isinstance(spec, dict):
        b.add_error(path, "must be a mapping with `addresses` and `location`")
        return None
    if not _LABEL.fullmatch(name):
        # The region's name becomes a DNS label: us-east-1.inference.example.com.
        b.add_error(path, f"region name {name!r} must be a DNS label (letters, digits, hyphens)")
        return None
    b.unknown_keys(path, spec, keys.REGION.names)
    good = _addresses(b, (*path, "addresses"), spec.get("addresses"), "a region")
    if good is None:
        return None
    lat = lon = None
    location = spec.get("location")
    if location is not None:
        if not isinstance(location, dict) or set(location) != keys.LOCATION.names:
            b.add_error((*path, "location"), "must be {lat: DEGREES, lon: DEGREES}")
        else:
            lat, lon = location["lat"], location["lon"]
            for key in keys.LOCATION.keys:
                if key.kind.parse(b, (*path, "location", key.name), location[key.name]) is None:
                    lat = lon = None
    jurisdiction = spec.get("jurisdiction")
    if jurisdiction is not None and not isinstance(jurisdiction, str):
        b.add_error((*path, "jurisdiction"), "must be a label such as EU or US")
        jurisdiction = None
    hpath = (*path, "health")
    own = health_fields(b, hpath, spec.get("health"), zone_dir)
    health = merge_health(b, hpath, health_defaults, own)
    port = keys.REGION.value(b, path, spec, "port") if "port" in spec else None
    version = spec.get("version")
    if version is not None:
        if isinstance(version, bool) or not isinstance(version, str | int | float):
            b.add_error((*path, "version"), f"{version!r} is not a model version")
            version = None
        elif not str(version).strip():
            b.add_error((*path, "version"), "is empty")
            version = None
        else:
            version = str(version).strip()
    cost = None
    if spec.get("cost") is not None:
        cost = keys.REGION.value(b, path, spec, "cost")
    return Region(
        str(name),
        tuple(good),
        lat,
        lon,
        jurisdiction,
        health,
        port,
        version,
        cost=None if cost is None else float(cost),
        gpus=_region_capacity(b, (*path, "capacity"), spec.get("capacity")),
    )


def _region_capacity(b: Builder, path: Path, spec: Any) -> float | None:
    """`capacity: {gpus: N}`: how much load the region absorbs, relative to the others."""
    if spec is None:
        return None
    if not isinstance(spec, dict) or "gpus" not in spec:
        b.add_error(path, "must be {gpus: NUMBER} (its size, relative to the other regions)")
        return None
    b.unknown_keys(path, spec, keys.REGION_CAPACITY.names)
    return keys.REGION_CAPACITY.value(b, path, spec, "gpus")


def _region_list(
    b: Builder, path: Path, value: Any, known: set[str], allow_empty: bool = False
) -> list[str] | None:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or (not value and not allow_empty):
        b.add_error(path, "must list region names of this service")
        return None
    names = []
    for i, item in enumerate(value):
        if item not in known:
            b.add_error(
                (*path, i),
                f"unknown region {item!r} (this service has: {', '.join(sorted(known))})",
            )
        elif item in names:
            b.add_error((*path, i), f"region {item!r} listed twice")
        else:
            names.append(item)
    return names


def _capacity(b: Builder, path: Path, spec: Any) -> Capacity | None:
    if not isinstance(spec, dict):
        b.add_error(path, "must be {low: RATIO, high: RATIO, signals: {KEY: {low, high}}}")
        return None
    b.unknown_keys(path, spec, keys.CAPACITY.names)
    values = {}
    for key in ("low", "high"):
        v = keys.CAPACITY.value(b, path, spec, key)
        if v is None:
            return None
        values[key] = float(v)
    if values["low"] >= values["high"]:
        b.add_error(path, f"low ({values['low']}) must be below high ({values['high']})")
        return None
    signals = _signals(b, (*path, "signals"), spec.get("signals", {}))
    if signals is None:
        return None
    return Capacity(values["low"], values["high"], signals)


def _signals(b: Builder, path: Path, spec: Any) -> tuple[Signal, ...] | None:
    """`signals: {num_requests_waiting: {low: 8, high: 32}}`: numeric health JSON keys."""
    if not isinstance(spec, dict):
        b.add_error(path, "must map a health JSON key -> {low: NUMBER, high: NUMBER}")
        return None
    out = []
    ok = True
    for key, band in spec.items():
        kpath = (*path, key)
        if not isinstance(key, str) or not key or key == "utilization":
            b.add_error(kpath, f"{key!r} is not a JSON key (utilization has low and high above)")
            ok = False
            continue
        if not isinstance(band, dict) or set(band) != keys.BAND.names:
            b.add_error(kpath, "must be {low: NUMBER, high: NUMBER}")
            ok = False
            continue
        bad = [k for k in ("low", "high") if keys.BAND.value(b, kpath, band, k) is None]
        if bad:
            ok = False
        elif band["low"] >= band["high"]:
            b.add_error(kpath, f"low ({band['low']}) must be below high ({band['high']})")
            ok = False
        else:
            out.append(Signal(key, float(band["low"]), float(band["high"])))
    return tuple(out) if ok else None


def _residency(
    b: Builder, path: Path, spec: Any, known: set[str], asn_db: str | None = None
) -> tuple[ResidencyRule, ...] | None:
    # `when_none` defaults to nodata, the mode that never leaks whatever resolvers do
    # (FailClosed says why); `{answer: [...]}` is the one docs/routing.md recommends.
    if not isinstance(spec, list):
        b.add_error(path, "must be a list of rules {clients, regions, when_none}")
        return None
    rules: list[ResidencyRule] = []
    for i, rule_spec in enumerate(spec):
        rpath = (*path, i)
        if not isinstance(rule_spec, dict):
            b.add_error(rpath, "must be a mapping {clients, regions, when_none}")
            continue
        b.unknown_keys(rpath, rule_spec, keys.RESIDENCY_RULE.names)
        clients = _clients(b, (*rpath, "clients"), rule_spec.get("clients"), asn_db)
        regions = _region_list(b, (*rpath, "regions"), rule_spec.get("regions"), known)
        when_none = fail_closed(
            b,
            (*rpath, "when_none"),
            rule_spec.get("when_none", keys.RESIDENCY_RULE.default("when_none")),
        )
        min_old = keys.RESIDENCY_RULE.value(b, rpath, rule_spec, "min_old")
        if clients is None or not regions or when_none is None or min_old is None:
            continue
        for earlier in rules:
            overlap = (clients.countries & earlier.clients.countries) | (
                clients.continents & earlier.clients.continents
            )
            if clients.unlocated and earlier.clients.unlocated:
                overlap = overlap | {"unlocated"}
            overlap |= {f"AS{n}" for n in clients.asns & earlier.clients.asns}
            overlap |= {
                str(net)
                for net in clients.networks
                for other in earlier.clients.networks
                if net.version == other.version and net.overlaps(other)
            }
            if overlap:
                b.add_error(
                    (*rpath, "clients"),
                    f"overlaps rule {earlier.index} ({', '.join(sorted(overlap))}):"
                    " a client must match one rule only",
                )
        rules.append(ResidencyRule(clients, tuple(regions), when_none, min_old, i))
    return tuple(rules)


def fail_closed(b: Builder, path: Path, spec: Any, allow_route: bool = False) -> FailClosed | None:
    """refuse | servfail | nodata | {answer: [ADDRESS, ...]}."""
    expected = "refuse, servfail, nodata or {answer: [ADDRESS, ...]}"
    if allow_route:
        expected = "route, " + expected
    if isinstance(spec, str) and spec in WHEN_NONE:
        return FailClosed(spec)
    if not isinstance(spec, dict) or set(spec) != keys.ANSWER.names:
        b.add_error(path, f"{spec!r} is not one of {expected}")
        return None
    good = _addresses(b, (*path, "answer"), spec["answer"], "an 'unavailable' endpoint")
    if good is None or len(good) != len(_as_list(spec["answer"])):
        return None
    return FailClosed("answer", tuple(good))


def _addresses(b: Builder, path: Path, value: Any, what: str) -> list[str] | None:
    """A list of IP addresses (or one); None when there is none at all, else the good
    ones, each bad one reported."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        b.add_error(path, f"{what} needs at least one address")
        return None
    good = []
    for i, text in enumerate(value):
        ip = parse_address(text)
        if ip is None:
            b.add_error((*path, i), f"{text!r} is not an IP address")
        else:
            good.append(str(ip))
    return good


def _clients(
    b: Builder, path: Path, spec: Any, asn_db: str | None, overrides_only: bool = False
) -> ClientMatch | None:
    if not isinstance(spec, dict) or not spec:
        b.add_error(
            path,
            "must be {networks: [CIDR, ...]} or {asn: [NUMBER, ...]}"
            if overrides_only
            else "must be {continent: EU} or {countries: [DE, FR]} or {group: EEA}"
            " or {networks: [CIDR, ...]} or {asn: [NUMBER, ...]}, optionally with unlocated: true",
        )
        return None
    b.unknown_keys(path, spec, (keys.PREFER_CLIENTS if overrides_only else keys.CLIENTS).names)
    networks = _networks(b, (*path, "networks"), spec.get("networks"))
    asns = _asns(b, (*path, "asn"), spec.get("asn"))
    if asns and asn_db is None:
        b.add_error(
            (*path, "asn"),
            "needs an ASN database: set the service's `asn_database:` to a GeoLite2-ASN or"
            " DB-IP ASN Lite .mmdb file",
        )
    continents: set[str] = set()
    countries: set[str] = set()
    described = []
    for value in _as_list(spec.get("continent")):
        if value not in CONTINENTS:
            b.add_error(
                (*path, "continent"),
                f"{value!r} is not a continent code ({', '.join(sorted(CONTINENTS))})",
            )
        else:
            continents.add(value)
            described.append(f"continent {value}")
    for i, value in enumerate(_as_list(spec.get("countries"))):
        if not isinstance(value, str) or len(value) != 2 or not value.isalpha():
            b.add_error((*path, "countries", i), f"{value!r} is not an ISO 3166 country code")
        else:
            countries.add(value.upper())
    if spec.get("countries"):
        described.append("countries " + ", ".join(sorted(countries)))
    groups = _country_groups(b, path)
    for value in _as_list(spec.get("group")):
        if value not in groups:
            b.add_error(
                (*path, "group"),
                f"unknown country group {value!r} (known: {', '.join(sorted(groups))})",
            )
        else:
            countries |= groups[value]
            described.append(f"group {value}")
    unlocated = bool(keys.CLIENTS.value(b, path, spec, "unlocated"))
    if unlocated:
        described.append("unlocated clients")
    if networks:
        described.append("networks " + ", ".join(str(n) for n in networks))
    if asns:
        described.append("ASNs " + ", ".join(f"AS{n}" for n in sorted(asns)))
    if not continents and not countries and not unlocated and not networks and not asns:
        return None
    return ClientMatch(
        frozenset(continents),
        frozenset(countries),
        "; ".join(described),
        unlocated,
        tuple(networks),
        frozenset(asns),
    )


def _networks(b: Builder, path: Path, value: Any) -> list[IPNetwork]:
    out: list[IPNetwork] = []
    for i, text in enumerate(_as_list(value)):
        try:
            net = ipaddress.ip_network(text.strip() if isinstance(text, str) else "")
        except ValueError as exc:
            b.add_error((*path, i), f"{text!r} is not a network in CIDR notation ({exc})")
            continue
        if net in out:
            b.add_error((*path, i), f"{net} is listed twice")
        else:
            out.append(net)
    return out


def _asns(b: Builder, path: Path, value: Any) -> set[int]:
    out: set[int] = set()
    for i, item in enumerate(_as_list(value)):
        number = item
        if isinstance(item, str) and item.upper().startswith("AS") and item[2:].isdigit():
            number = int(item[2:])
        if isinstance(number, bool) or not isinstance(number, int) or not 0 < number <= MAX_ASN:
            b.add_error((*path, i), f"{item!r} is not an AS number (like 64496 or AS64496)")
        else:
            out.add(number)
    return out


def _asn_database(b: Builder, path: Path, value: Any, zone_dir: str) -> str | None:
    """The ASN database's path, relative to the zone file, opened now: a missing or wrong
    file is a config error, not a failure at query time."""
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        b.add_error(path, "must be the path of a GeoLite2-ASN or DB-IP ASN Lite .mmdb file")
        return None
    file = os.path.join(zone_dir, value)
    try:
        AsnDatabase.load(file)
    except GeoIPDatabaseError as exc:
        b.add_error(path, f"cannot use {exc}")
        return None
    return file


def _prefer(
    b: Builder, path: Path, spec: Any, known: set[str], asn_db: str | None
) -> tuple[Preference, ...] | None:
    if not isinstance(spec, list):
        b.add_error(path, "must be a list of {clients: {networks | asn}, order: [REGION, ...]}")
        return None
    out = []
    for i, item in enumerate(spec):
        ipath = (*path, i)
        if not isinstance(item, dict):
            b.add_error(ipath, "must be a mapping {clients, order}")
            continue
        b.unknown_keys(ipath, item, keys.PREFER_RULE.names)
        # Countries and continents are a latency table's business (rows, anchors): an
        # override here is what GeoIP cannot say.
        clients = _clients(b, (*ipath, "clients"), item.get("clients"), asn_db, True)
        order = _region_list(b, (*ipath, "order"), item.get("order"), known)
        if clients is not None and order:
            out.append(Preference(clients, tuple(order), i))
    return tuple(out)


def _cost(b: Builder, path: Path, spec: Any) -> CostPolicy | None:
    if not isinstance(spec, dict):
        b.add_error(path, "must be {within_ms: MILLISECONDS}")
        return None
    b.unknown_keys(path, spec, keys.COST.names)
    within = keys.COST.value(b, path, spec, "within_ms")
    return None if within is None else CostPolicy(float(within))


def _country_groups(b: Builder, path: Path) -> dict[str, frozenset[str]]:
    try:
        return country_groups()
    except ConfigError as exc:
        b.add_error(path, f"cannot read the country groups: {exc}")
        return {}


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]
