"""Load and validate zone YAML files into immutable Zones, collecting every error."""

from __future__ import annotations

import dataclasses
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
import dns.rrset

from geodns.errors import ConfigError, ConfigErrors
from geodns.geo.latency import LatencyTable
from geodns.yamlsource import Document, Path, read_yaml_file
from geodns.zones import fastparse, keys
from geodns.zones.collector import Collector
from geodns.zones.model import Service, Zone, ZoneSet, region_host, srv_name
from geodns.zones.rdatavalues import (
    DNSSEC_SIGNED_TYPES,
    META_TYPES,
    RecordValues,
    rdatatype,
    zone_type_names,
)
from geodns.zones.services import build_service

IN = dns.rdataclass.IN
RT = dns.rdatatype.RdataType

MAX_TTL = keys.MAX_TTL
DEFAULT_TTL = keys.ZONE.default("ttl")
SOA_TIMERS = ("refresh", "retry", "expire", "minimum")


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
        self.err = Collector(doc)
        self.default_serial = default_serial
        self.origin = dns.name.root
        self.parse = RecordValues(self.err, self.origin)
        self.ttl = DEFAULT_TTL
        # owner -> rdtype -> (ttl, [rdata], path of the RRset)
        self.data: dict[dns.name.Name, dict[RT, tuple[int, list[dns.rdata.Rdata], Path]]] = {}
        self.services: dict[dns.name.Name, Service] = {}
        self.service_paths: dict[dns.name.Name, Path] = {}
        self.debug = False

    def build(self) -> Zone:
        data = self.doc.data
        if not isinstance(data, dict):
            self.err.add((), "a zone file must be a mapping with at least `zone`, `soa` and `ns`")
            raise self.err.fail()
        self.err.unknown_keys((), data, keys.ZONE.names)
        origin = data.get("zone")
        if not isinstance(origin, str) or not origin.strip():
            self.err.add(("zone",), "missing zone origin, e.g. `zone: example.com`")
            raise self.err.fail()
        try:
            self.origin = dns.name.from_text(origin.strip()).canonicalize()
        except dns.exception.DNSException as exc:
            self.err.add(("zone",), f"{origin!r} is not a domain name: {exc}")
            raise self.err.fail() from None
        self.parse = RecordValues(self.err, self.origin)
        ttl = keys.ZONE.value(self.err, (), data, "ttl")
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
        self.debug = bool(keys.ZONE.value(self.err, (), data, "debug"))
        services = data.get("services", {}) or {}
        if not isinstance(services, dict):
            self.err.add(("services",), "must be a mapping of service name -> service")
        else:
            for name_text, spec in services.items():
                self.build_service(("services", name_text), name_text, spec)
        self.check_tree()
        if self.err.errors or soa is None:
            raise self.err.fail()
        return self.freeze(soa)

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
        self.err.unknown_keys(path, spec, keys.SOA.names)
        for key in keys.SOA.keys:
            if key.required and key.name not in spec:
                self.err.add(path, f"missing `{key.name}`")
        mname = self.parse.name((*path, "mname"), spec.get("mname", "@"))
        rname_text = spec.get("rname", "@")
        if isinstance(rname_text, str) and "@" in rname_text.strip("@"):
            # Accept the familiar mailbox form: hostmaster@example.com.
            local, _, domain = rname_text.partition("@")
            rname_text = local.replace(".", "\\.") + "." + domain.rstrip(".") + "."
        rname = self.parse.name((*path, "rname"), rname_text)
        serial = spec.get("serial", keys.SOA.default("serial"))
        if serial == "auto":
            serial = self.default_serial % 2**32
        else:
            serial = self.err.int_value(
                (*path, "serial"), serial, 0, keys.MAX_SERIAL, "a serial number"
            )
        timers = {key: keys.SOA.value(self.err, path, spec, key) for key in SOA_TIMERS}
        ttl = self.err.ttl_value((*path, "ttl"), spec.get("ttl", self.ttl), self.ttl)
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
            target = self.parse.name((*path, i), value)
            if target is not None:
                rdatas.append(dns.rdata.from_text(IN, RT.NS, target.to_text()))
        self.add_rdata(path, self.origin, RT.NS, ttl, rdatas)

    # --- records ----------------------------------------------------------------------

    def ttl_and_values(self, path: Path, spec: dict[str, Any]) -> tuple[int, Any]:
        for key in spec:
            if key not in keys.TTL_VALUES.names:
                self.err.add((*path, key), keys.unknown_key(key, keys.TTL_VALUES.names))
        ttl = self.err.ttl_value((*path, "ttl"), spec.get("ttl", self.ttl), self.ttl)
        if "values" not in spec:
            self.err.add(path, "missing `values`")
            return ttl, []
        return ttl, spec["values"]

    def build_owner(self, path: Path, owner_text: str, rrsets: Any) -> None:
        owner = self.parse.owner(path, owner_text)
        if owner is None:
            return
        if not isinstance(rrsets, dict):
            self.err.add(path, "must be a mapping of record type -> data, e.g. {A: 192.0.2.1}")
            return
        owner_ttl = self.ttl
        if "ttl" in rrsets:
            owner_ttl = self.err.ttl_value((*path, "ttl"), rrsets["ttl"], self.ttl)
        for type_text, spec in rrsets.items():
            if type_text == "ttl":
                continue
            tpath = (*path, type_text)
            rdtype = rdatatype(type_text)
            if rdtype is None:
                near = keys.nearest(str(type_text).upper(), zone_type_names())
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
                rdata = self.parse.rdata((*tpath, i), rdtype, value)
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

    # --- services ---------------------------------------------------------------------

    def build_service(self, path: Path, name_text: str, spec: Any) -> None:
        name = self.parse.owner(path, name_text)
        if name is None:
            return
        service = build_service(self.err, path, name, spec)
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
