"""One zone document's keys as a zone: the origin and default TTL, the SOA and apex NS, each
owner's records, the services; then the tree's checks and the frozen Zone, or every error."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype

from geodns.errors import ConfigError
from geodns.geo.latency import LatencyTable
from geodns.yamlsource import Document, Path
from geodns.zones import keys
from geodns.zones.collector import Collector
from geodns.zones.draft import Draft, add_rrset
from geodns.zones.freeze import freeze
from geodns.zones.model import Service, Zone
from geodns.zones.rdatavalues import (
    DNSSEC_SIGNED_TYPES,
    META_TYPES,
    RecordValues,
    rdatatype,
    zone_type_names,
)
from geodns.zones.services import build_service
from geodns.zones.treecheck import check_tree

IN = dns.rdataclass.IN
RT = dns.rdatatype.RdataType

DEFAULT_TTL = keys.ZONE.default("ttl")
SOA_TIMERS = ("refresh", "retry", "expire", "minimum")


class ZoneBuilder:
    """Builds the Zone of one parsed document, gathering every error on the way."""

    def __init__(self, doc: Document, default_serial: int) -> None:
        self.doc = doc
        self.err = Collector(doc)
        self.default_serial = default_serial
        self.origin = dns.name.root
        # Reads names and values relative to the origin: made again once `zone:` is read.
        self.parse = RecordValues(self.err, self.origin)
        self.ttl = DEFAULT_TTL
        self.draft: Draft = {}
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
        check_tree(self.err, self.origin, self.draft, self.services, self.service_paths)
        if self.err.errors or soa is None:
            raise self.err.fail()
        return freeze(self.origin, self.doc.file, self.draft, self.services, self.debug)

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
        add_rrset(self.draft, path, self.origin, RT.SOA, ttl, [rdata])
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
        add_rrset(self.draft, path, self.origin, RT.NS, ttl, rdatas)

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
            add_rrset(self.draft, tpath, owner, rdtype, ttl, rdatas)

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
