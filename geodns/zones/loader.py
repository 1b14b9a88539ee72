"""Load and validate zone YAML files into immutable Zones, collecting every error."""

from __future__ import annotations

import dataclasses
import functools
import gc
import os
from collections.abc import Iterable
from pathlib import Path as FsPath
from typing import Any, cast

import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TXT
import dns.rrset

from geodns.errors import ConfigError, ConfigErrors
from geodns.geo.latency import LatencyTable
from geodns.yamlsource import Document, Path, read_yaml_file
from geodns.zones import fastparse, keys
from geodns.zones.model import Service, Zone, ZoneSet, region_host, srv_name
from geodns.zones.services import build_service, parse_address

IN = dns.rdataclass.IN
RT = dns.rdatatype.RdataType

MAX_TTL = keys.MAX_TTL
DEFAULT_TTL = keys.ZONE.default("ttl")
SOA_TIMERS = ("refresh", "retry", "expire", "minimum")

# Types that only exist in messages, never in a zone.
META_TYPES = {RT[t] for t in keys.MESSAGE_TYPES}
# Signatures and denial records come from signing, which geodns does not do (yet).
DNSSEC_SIGNED_TYPES = {RT[t] for t in keys.SIGNED_TYPES}
# Names in the data of these types are written like owner names (see docs/zones.md: "Names").
NAME_TYPES = {RT.CNAME, RT.NS, RT.PTR, RT.DNAME}


_TYPES: dict[Any, RT | None] = {}


def _rdatatype(text: Any) -> RT | None:
    """The type a record type key names (`A`, `aaaa`, `TYPE65`), else None; remembered, as
    a zone names the same few types thousands of times."""
    try:
        return _TYPES[text]
    except KeyError:
        pass
    try:
        rdtype: RT | None = dns.rdatatype.from_text(str(text).upper())
    except dns.exception.DNSException:
        rdtype = None
    if len(_TYPES) < 1000:  # keys are text from zone files: keep a broken one from growing it
        _TYPES[text] = rdtype
    return rdtype


@functools.cache
def _zone_type_names() -> frozenset[str]:
    """The names of the types a zone can hold, for "did you mean" on a misspelt type."""
    barred = META_TYPES | DNSSEC_SIGNED_TYPES | {RT.SOA}
    return frozenset(t.name for t in RT if t not in barred)


class _Collector:
    """Gathers errors for one document so that a load reports all of them at once."""

    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self.errors: list[ConfigError] = []

    def add(self, path: Path, message: str) -> None:
        self.errors.append(self.doc.error(path, message))


def load_zones(paths: Iterable[str | os.PathLike[str]]) -> ZoneSet:
    """Load every zone file named (directories give their *.yaml / *.yml files).

    Raises ConfigErrors with every problem in every file when anything is wrong.
    """
    # A zone of 10,000 records is some 200,000 new objects and no reference cycles: the
    # collector, triggered every 700 allocations, would walk them again and again while
    # they are made (a quarter of the load's CPU in a server, half in a fresh process).
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _load_zones(paths)
    finally:
        if collecting:
            gc.enable()


def _load_zones(paths: Iterable[str | os.PathLike[str]]) -> ZoneSet:
    paths = list(paths)
    files = list(zone_files(paths))
    errors: list[ConfigError] = []
    zones: dict[dns.name.Name, Zone] = {}
    seen: dict[dns.name.Name, str] = {}
    if not files:
        raise ConfigErrors([ConfigError("no zone files found", ", ".join(map(str, paths)))])
    for file in files:
        try:
            zone = load_zone_file(file)
        except ConfigErrors as exc:
            errors.extend(exc.errors)
            continue
        if zone.origin in seen:
            errors.append(
                ConfigError(
                    f"duplicate zone {zone.origin}: already defined in {seen[zone.origin]}",
                    zone.file,
                    1,
                    "zone",
                )
            )
            continue
        seen[zone.origin] = zone.file
        zones[zone.origin] = zone
    if errors:
        raise ConfigErrors(errors)
    return ZoneSet(zones)


def zone_files(paths: Iterable[str | os.PathLike[str]]) -> Iterable[str]:
    for p in paths:
        path = FsPath(p)
        if path.is_dir():
            for child in sorted(path.iterdir()):
                if child.suffix in (".yaml", ".yml") and child.is_file():
                    yield str(child)
        else:
            yield str(path)


def load_zone_file(file: str | os.PathLike[str]) -> Zone:
    doc = read_yaml_file(file)
    try:
        mtime = int(os.stat(file).st_mtime)
    except OSError as exc:
        raise ConfigErrors([ConfigError(exc.strerror or str(exc), str(file))]) from exc
    return build_zone(doc, default_serial=mtime)


def build_zone(doc: Document, default_serial: int = 1) -> Zone:
    """Validate a parsed document and build its Zone, or raise ConfigErrors with every problem."""
    return _ZoneBuilder(doc, default_serial).build()


class _ZoneBuilder:
    def __init__(self, doc: Document, default_serial: int) -> None:
        self.doc = doc
        self.err = _Collector(doc)
        self.default_serial = default_serial
        self.origin = dns.name.root
        self.ttl = DEFAULT_TTL
        # owner -> rdtype -> (ttl, [rdata], path of the RRset)
        self.data: dict[dns.name.Name, dict[RT, tuple[int, list[dns.rdata.Rdata], Path]]] = {}
        self.services: dict[dns.name.Name, Service] = {}
        self.service_paths: dict[dns.name.Name, Path] = {}
        self.debug = False

    def fail(self) -> ConfigErrors:
        return ConfigErrors(sorted(self.err.errors, key=lambda e: e.line))

    def build(self) -> Zone:
        data = self.doc.data
        if not isinstance(data, dict):
            self.err.add((), "a zone file must be a mapping with at least `zone`, `soa` and `ns`")
            raise self.fail()
        self.unknown_keys((), data, keys.ZONE.names)
        origin = data.get("zone")
        if not isinstance(origin, str) or not origin.strip():
            self.err.add(("zone",), "missing zone origin, e.g. `zone: example.com`")
            raise self.fail()
        try:
            self.origin = dns.name.from_text(origin.strip()).canonicalize()
        except dns.exception.DNSException as exc:
            self.err.add(("zone",), f"{origin!r} is not a domain name: {exc}")
            raise self.fail() from None
        ttl = keys.ZONE.value(self, (), data, "ttl")
        self.ttl = self.ttl if ttl is None else ttl
        soa = self.build_soa(data.get("soa"))
        self.build_apex_ns(data.get("ns"))
        records = data.get("records", {})
        if records is None:
            records = {}
        if not isinstance(records, dict):
            self.err.add(("records",), "must be a mapping of owner name -> {TYPE: data}")
        else:
            for owner_text, rrsets in records.items():
                self.build_owner(("records", owner_text), owner_text, rrsets)
        self.debug = bool(keys.ZONE.value(self, (), data, "debug"))
        services = data.get("services", {}) or {}
        if not isinstance(services, dict):
            self.err.add(("services",), "must be a mapping of service name -> service")
        else:
            for name_text, spec in services.items():
                self.build_service(("services", name_text), name_text, spec)
        self.check_tree()
        if self.err.errors or soa is None:
            raise self.fail()
        return self.freeze(soa)

    # --- values -----------------------------------------------------------------

    def unknown_keys(self, path: Path, spec: dict[str, Any], allowed: Iterable[str]) -> None:
        allowed = frozenset(allowed)
        for key in spec:
            if key not in allowed:
                self.err.add((*path, key), keys.unknown_key(key, allowed))

    def ttl_value(self, path: Path, value: Any, default: int) -> int:
        ttl = keys.TTL.parse(self, path, value)
        return default if ttl is None else ttl

    def int_value(self, path: Path, value: Any, low: int, high: int, what: str) -> int | None:
        return keys.Int(low, high, what).parse(self, path, value)

    def name_value(self, path: Path, text: Any) -> dns.name.Name | None:
        """A domain name in record data: absolute with a trailing dot or when it already
        ends in the zone origin, otherwise relative to the origin; `@` is the origin."""
        if not isinstance(text, str) or not text.strip():
            self.err.add(path, f"{text!r} is not a domain name")
            return None
        text = text.strip()
        if text == "@":
            return self.origin
        fast = fastparse.relative_name(text, self.origin, canonical=False)
        if fast is not None:
            return fast
        try:
            if text.endswith("."):
                return dns.name.from_text(text)
            name = dns.name.from_text(text, origin=None)
            if name.is_subdomain(self.origin.relativize(dns.name.root)):
                return name.derelativize(dns.name.root)
            return name.derelativize(self.origin)
        except dns.exception.DNSException as exc:
            self.err.add(path, f"{text!r} is not a domain name: {exc}")
            return None

    def owner_name(self, path: Path, text: Any) -> dns.name.Name | None:
        if isinstance(text, str):
            # Most owners are plain labels under the origin: inside the zone, made canonical.
            fast = fastparse.relative_name(text.strip(), self.origin, canonical=True)
            if fast is not None:
                return fast
        name = self.name_value(path, text)
        if name is not None and not name.is_subdomain(self.origin):
            self.err.add(path, f"{name.to_text()} is outside the zone {self.origin.to_text()}")
            return None
        return None if name is None else name.canonicalize()

    # --- SOA and apex NS --------------------------------------------------------------

    def build_soa(self, spec: Any) -> dns.rdata.Rdata | None:
        path: Path = ("soa",)
        if spec is None:
            self.err.add(
                path, "missing SOA: add `soa: {mname: ns1.<zone>, rname: hostmaster.<zone>}`"
            )
            return None
        if not isinstance(spec, dict):
            self.err.add(path, "must be a mapping with mname, rname and optional timers")
            return None
        self.unknown_keys(path, spec, keys.SOA.names)
        for key in keys.SOA.keys:
            if key.required and key.name not in spec:
                self.err.add(path, f"missing `{key.name}`")
        mname = self.name_value((*path, "mname"), spec.get("mname", "@"))
        rname_text = spec.get("rname", "@")
        if isinstance(rname_text, str) and "@" in rname_text.strip("@"):
            # Accept the familiar mailbox form: hostmaster@example.com.
            local, _, domain = rname_text.partition("@")
            rname_text = local.replace(".", "\\.") + "." + domain.rstrip(".") + "."
        rname = self.name_value((*path, "rname"), rname_text)
        serial = spec.get("serial", keys.SOA.default("serial"))
        if serial == "auto":
            serial = self.default_serial % 2**32
        else:
            serial = self.int_value(
                (*path, "serial"), serial, 0, keys.MAX_SERIAL, "a serial number"
            )
        timers = {key: keys.SOA.value(self, path, spec, key) for key in SOA_TIMERS}
        ttl = self.ttl_value((*path, "ttl"), spec.get("ttl", self.ttl), self.ttl)
        if mname is None or rname is None or serial is None or None in timers.values():
            return None
        rdata = dns.rdata.from_text(
            IN,
            RT.SOA,
            f"{mname} {rname} {serial} {timers['refresh']} {timers['retry']} "
            f"{timers['expire']} {timers['minimum']}",
        )
        self.add_rdata(path, self.origin, RT.SOA, ttl, [rdata])
        return rdata

    def build_apex_ns(self, spec: Any) -> None:
        path: Path = ("ns",)
        if spec is None:
            self.err.add(path, "missing apex NS: add `ns: [ns1.<zone>, ns2.<zone>]`")
            return
        ttl = self.ttl
        values = spec
        if isinstance(spec, dict):
            ttl, values = self.ttl_and_values(path, spec)
        if isinstance(values, str):
            values = [values]
        if not isinstance(values, list) or not values:
            self.err.add(path, "must list at least one name server")
            return
        rdatas = []
        for i, value in enumerate(values):
            target = self.name_value((*path, i), value)
            if target is not None:
                rdatas.append(dns.rdata.from_text(IN, RT.NS, target.to_text()))
        self.add_rdata(path, self.origin, RT.NS, ttl, rdatas)

    # --- records ----------------------------------------------------------------------

    def ttl_and_values(self, path: Path, spec: dict[str, Any]) -> tuple[int, Any]:
        for key in spec:
            if key not in keys.TTL_VALUES.names:
                self.err.add((*path, key), keys.unknown_key(key, keys.TTL_VALUES.names))
        ttl = self.ttl_value((*path, "ttl"), spec.get("ttl", self.ttl), self.ttl)
        if "values" not in spec:
            self.err.add(path, "missing `values`")
            return ttl, []
        return ttl, spec["values"]

    def build_owner(self, path: Path, owner_text: str, rrsets: Any) -> None:
        owner = self.owner_name(path, owner_text)
        if owner is None:
            return
        if not isinstance(rrsets, dict):
            self.err.add(path, "must be a mapping of record type -> data, e.g. {A: 192.0.2.1}")
            return
        owner_ttl = self.ttl
        if "ttl" in rrsets:
            owner_ttl = self.ttl_value((*path, "ttl"), rrsets["ttl"], self.ttl)
        for type_text, spec in rrsets.items():
            if type_text == "ttl":
                continue
            tpath = (*path, type_text)
            rdtype = _rdatatype(type_text)
            if rdtype is None:
                near = keys.nearest(str(type_text).upper(), _zone_type_names())
                hint = f" (did you mean {near}?)" if near else ""
                self.err.add(tpath, f"unknown record type {type_text!r}{hint}")
                continue
            if rdtype in META_TYPES:
                self.err.add(tpath, f"{type_text} is not a record type a zone can hold")
                continue
            if rdtype in DNSSEC_SIGNED_TYPES:
                self.err.add(
                    tpath,
                    f"{type_text} records come from DNSSEC signing, which geodns "
                    "does not do: remove them",
                )
                continue
            if rdtype in (RT.SOA, RT.NS) and owner == self.origin:
                key = "soa" if rdtype == RT.SOA else "ns"
                self.err.add(tpath, f"the apex {type_text} goes in the top-level `{key}:` key")
                continue
            if rdtype == RT.SOA:
                self.err.add(tpath, "SOA is only allowed at the zone apex (`soa:`)")
                continue
            ttl = owner_ttl
            values = spec
            if isinstance(spec, dict) and "values" in spec:
                ttl, values = self.ttl_and_values(tpath, spec)
                ttl = ttl if "ttl" in spec else owner_ttl
            if not isinstance(values, list):
                values = [values]
            if not values:
                self.err.add(tpath, "no values")
                continue
            rdatas = []
            for i, value in enumerate(values):
                rdata = self.rdata((*tpath, i), rdtype, value)
                if rdata is not None:
                    rdatas.append(rdata)
            self.add_rdata(tpath, owner, rdtype, ttl, rdatas)

    def add_rdata(
        self, path: Path, owner: dns.name.Name, rdtype: RT, ttl: int, rdatas: list[dns.rdata.Rdata]
    ) -> None:
        node = self.data.setdefault(owner, {})
        if rdtype in node:
            # One owner written twice (`www`, `www.example.com.`): merge, as a master file does.
            old_ttl, old, old_path = node[rdtype]
            node[rdtype] = (min(old_ttl, ttl), old + rdatas, old_path)
        else:
            node[rdtype] = (ttl, rdatas, path)

    def rdata(self, path: Path, rdtype: RT, value: Any) -> dns.rdata.Rdata | None:
        if rdtype == RT.A:
            return self.address(path, value, 4)
        if rdtype == RT.AAAA:
            return self.address(path, value, 6)
        if rdtype == RT.TXT or rdtype == RT.SPF:
            return self.txt(path, rdtype, value)
        if rdtype in NAME_TYPES:
            target = self.name_value(path, value)
            return None if target is None else fastparse.name_rdata(rdtype, target)
        if rdtype == RT.MX:
            return self.fields(path, rdtype, value, keys.MX)
        if rdtype == RT.SRV:
            return self.fields(path, rdtype, value, keys.SRV)
        if rdtype == RT.CAA:
            return self.fields(path, rdtype, value, keys.CAA)
        return self.presentation(path, rdtype, value)

    def address(self, path: Path, value: Any, version: int) -> dns.rdata.Rdata | None:
        if version == 4 and isinstance(value, str):
            text = value.strip()
            if fastparse.ipv4_text(text):
                return fastparse.a_rdata(text)
        family = "IPv4" if version == 4 else "IPv6"
        ip = parse_address(value)
        if ip is None or ip.version != version:
            self.err.add(path, f"{value!r} is not an {family} address")
            return None
        if version == 6:
            return fastparse.aaaa_rdata(ip.packed)
        return dns.rdata.from_text(IN, RT.A, str(ip))

    def txt(self, path: Path, rdtype: RT, value: Any) -> dns.rdata.Rdata | None:
        # A string is one record; a list of strings is one record of several strings.
        parts = value if isinstance(value, list) else [value]
        chunks: list[bytes] = []
        if not parts:
            self.err.add(path, "an empty TXT record: give at least one string")
            return None
        for part in parts:
            if isinstance(part, float):
                # YAML reads 1.10 as 1.1: the text would change silently.
                self.err.add(path, f"{part!r} reads as a number: quote it to keep the text")
                return None
            if isinstance(part, bool) or not isinstance(part, str | int):
                self.err.add(path, f"{part!r} is not text")
                return None
            raw = str(part).encode("utf-8")
            # RFC 1035 character-strings hold 255 bytes: split longer text (RFC 7208 3.3).
            chunks.extend(raw[i : i + 255] for i in range(0, len(raw), 255))
            if not raw:
                chunks.append(b"")
        return dns.rdtypes.ANY.TXT.TXT(IN, rdtype, chunks)

    def fields(
        self, path: Path, rdtype: RT, value: Any, section: keys.Section
    ) -> dns.rdata.Rdata | None:
        """A record written as a mapping of its fields (`{preference: 10, exchange: mail}`),
        or as their text in order; the section declares the fields."""
        spec = section.keys
        names = [k.name for k in spec]
        if isinstance(value, str) and rdtype == RT.CAA:
            return self.presentation(path, rdtype, value)  # no names in it: as a master file has it
        if isinstance(value, str):
            tokens = value.split(None, len(spec) - 1)
            if len(tokens) != len(spec):
                self.err.add(
                    path, f"{value!r} is not a {rdtype.name} record (expected: {' '.join(names)})"
                )
                return None
            value = dict(zip(names, tokens, strict=True))
            for key in spec:
                if isinstance(key.kind, keys.Int) and value[key.name].isdigit():
                    value[key.name] = int(value[key.name])
        if not isinstance(value, dict):
            self.err.add(path, f"must be a string or a mapping with {', '.join(names)}")
            return None
        self.unknown_keys(path, value, section.names)
        texts = []
        for key in spec:
            name = key.name
            fpath = (*path, name)
            if name not in value:
                self.err.add(path, f"missing `{name}`")
                return None
            v = value[name]
            if isinstance(key.kind, keys.Int):
                n = key.kind.parse(self, fpath, v)
                if n is None:
                    return None
                texts.append(str(n))
            elif key.kind is keys.NAME:
                target = self.name_value(fpath, v)
                if target is None:
                    return None
                texts.append(target.to_text())
            elif key.kind is keys.WORD:
                texts.append(str(v))
            else:
                texts.append('"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"')
        return self.presentation(path, rdtype, " ".join(texts))

    def presentation(self, path: Path, rdtype: RT, value: Any) -> dns.rdata.Rdata | None:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            self.err.add(path, f"{value!r} is not {rdtype.name} data in presentation format")
            return None
        try:
            return dns.rdata.from_text(IN, rdtype, str(value), origin=self.origin, relativize=False)
        except (dns.exception.DNSException, ValueError) as exc:
            self.err.add(path, f"bad {rdtype.name} data {value!r}: {exc}")
            return None

    # --- services ---------------------------------------------------------------------

    def add_error(self, path: Path, message: str) -> None:
        self.err.add(path, message)

    def build_service(self, path: Path, name_text: str, spec: Any) -> None:
        name = self.owner_name(path, name_text)
        if name is None:
            return
        service = build_service(self, path, name, spec)
        if service is not None and service.latency not in (None, "default"):
            service = self.latency_file(path, service)
        if service is not None:
            self.services[name] = service
            self.service_paths[name] = path

    def latency_file(self, path: Path, service: Service) -> Service | None:
        """A latency table named by path: relative to the zone file, and loaded now so that a
        broken table is a config error, not a failure at query time."""
        file = os.path.join(os.path.dirname(self.doc.file), str(service.latency))
        try:
            LatencyTable.load(file)
        except ConfigError as exc:
            self.err.add((*path, "latency"), f"cannot use {file}: {exc}")
            return None
        return dataclasses.replace(service, latency=file)

    # --- the tree as a whole ------------------------------------------------------------

    def check_tree(self) -> None:
        self.service_owned = {}
        for service in self.services.values():
            self.service_owned[srv_name(service)] = f"SRV name of service {service.key}"
            for region in service.regions:
                host = region_host(service, region.name)
                self.service_owned[host] = f"host name of region {region.name} of {service.key}"
        # Every name here is canonical (lowercase), so equal names have equal labels, and a
        # tuple of bytes hashes and compares in C where a Name does it label by label.
        owned = {name.labels: what for name, what in self.service_owned.items()}
        service_names = {name.labels for name in self.services}
        for owner, node in self.data.items():
            if RT.CNAME in node:
                _, rdatas, path = node[RT.CNAME]
                if owner == self.origin:
                    self.err.add(path, "CNAME is not allowed at the zone apex (RFC 1912 2.4)")
                    continue
                others = [t.name for t in node if t not in (RT.CNAME, RT.RRSIG, RT.NSEC)]
                if others:
                    self.err.add(
                        path,
                        f"CNAME cannot coexist with other data ({', '.join(others)}) "
                        "at the same name (RFC 1034 3.6.2)",
                    )
                if len(rdatas) > 1:
                    self.err.add(path, "a name can have only one CNAME")
            taken = owned.get(owner.labels)
            if taken is not None:
                _, _, path = next(iter(node.values()))
                self.err.add(path, f"{owner} is the {taken}: a service's names are its own")
            if owner.labels in service_names:
                self.err.add(
                    self.service_paths[owner],
                    f"service name {owner} also has records under `records:`",
                )
        cuts = {o for o, n in self.data.items() if RT.NS in n and o != self.origin}
        for owner, node in self.data.items():
            labels = owner.labels
            for cut in cuts:
                if labels == cut.labels:
                    for rdtype, (_, _, path) in node.items():
                        if rdtype not in (RT.NS, RT.DS):
                            self.err.add(
                                path,
                                f"{rdtype.name} at the delegation {cut} would never "
                                "be answered (only NS and DS belong at a zone cut)",
                            )
                elif labels[-len(cut.labels) :] == cut.labels:
                    for rdtype, (_, _, path) in node.items():
                        if rdtype not in (RT.A, RT.AAAA):
                            self.err.add(
                                path,
                                f"{owner} is below the delegation at {cut}: only "
                                "glue (A, AAAA) may be here",
                            )
        for name, path in self.service_paths.items():
            for cut in cuts:
                if name.is_subdomain(cut):
                    self.err.add(path, f"service {name} is at or below the delegation at {cut}")

    def freeze(self, soa: dns.rdata.Rdata) -> Zone:
        # Each owner's node becomes its RRsets in place, so that `nodes` is a copy of `data`
        # that reuses the names' hashes (a Name hashes itself character by character).
        empty = []
        for owner, node in self.data.items():
            rrsets = cast(dict[RT, Any], node)
            for rdtype, (ttl, rdatas, _) in list(node.items()):
                if rdatas:
                    rrsets[rdtype] = fastparse.rrset(owner, ttl, rdatas)
                else:
                    del rrsets[rdtype]
            if not node:
                empty.append(owner)
        nodes = cast(dict[dns.name.Name, dict[RT, dns.rrset.RRset]], dict(self.data))
        for owner in empty:
            del nodes[owner]
        # Each region gets a host name under its service (us-east-1.inference.example.com),
        # the targets of the service's SRV RRset and a way to reach one region by name.
        for service in self.services.values():
            for region in service.regions:
                host = region_host(service, region.name)
                node = nodes.setdefault(host, {})
                for rdtype, addresses in ((RT.A, region.ipv4), (RT.AAAA, region.ipv6)):
                    if addresses:
                        node[rdtype] = dns.rrset.from_text_list(
                            host, service.ttl, "IN", rdtype.name, list(addresses)
                        )
        # Every owner exists (a set made from the dict reuses its hashes), the origin among
        # them (its SOA), so the walk up from a name in the zone stops at the origin at the
        # latest; a name right under the origin needs no walk at all.
        existing: set[dns.name.Name] = set(nodes)
        child = len(self.origin.labels) + 1
        dynamic = [*self.services, *(srv_name(s) for s in self.services.values())]
        for owner in nodes:
            if len(owner.labels) > child:
                name = fastparse.parent(owner)
                while name not in existing:
                    existing.add(name)
                    name = fastparse.parent(name)
        for owner in dynamic:
            name = owner
            while name not in existing:
                existing.add(name)
                name = fastparse.parent(name)
        cuts = frozenset(o for o, n in nodes.items() if RT.NS in n and o != self.origin)
        return Zone(
            origin=self.origin,
            file=self.doc.file,
            soa=nodes[self.origin][RT.SOA],
            nodes=nodes,
            services=dict(self.services),
            debug=self.debug,
            existing=frozenset(existing),
            delegations=cuts,
        )
