"""RFC 1035 master files to geodns zone YAML and back, for `geodns import` and `geodns export`."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from typing import Any

import dns.exception
import dns.name
import dns.rdata
import dns.rdataset
import dns.rdatatype
import dns.rrset
import dns.zone
import dns.zonefile
import yaml

from geodns.errors import ConfigError, ConfigErrors
from geodns.zones.masterreader import MasterReader
from geodns.zones.model import Zone

RT = dns.rdatatype.RdataType

# The loader reads these as text, not presentation format: a string is the record's content.
_TEXT_TYPES = {RT.TXT, RT.SPF}
# A YAML key per type cannot hold one RRset per covered type, and signatures made for another
# server's answers are of no use to geodns.
_SIGNATURE_TYPES = {RT.RRSIG, RT.SIG}

# Plain scalars that a YAML 1.2 core-schema reader (the loader, editors) would not read as a
# string. PyYAML quotes YAML 1.1 lookalikes (`yes`, `1:20`) by itself, but not these (`1e5`).
_NOT_STRING = re.compile(
    r"~|null|Null|NULL|true|True|TRUE|false|False|FALSE"
    r"|[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+"
    r"|[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?"
    r"|[-+]?\.(inf|Inf|INF)|\.(nan|NaN|NAN)"
)


# --- import ------------------------------------------------------------------------------


def import_master_file(path: str, origin: str | None = None) -> str:
    """Read the master file at `path` and return it as a geodns zone YAML document.

    The origin is `origin` if given, else the file's first `$ORIGIN`. A relative `$INCLUDE`
    path is opened from the directory of the file that names it (as Knot does). Raises
    ConfigErrors with every bad record (`file:line: owner TYPE: problem`), or ConfigError for
    anything else geodns cannot hold.
    """
    zone = _read_master_file(path, origin)
    return _Importer(zone, path).yaml()


def _read_master_file(path: str, origin: str | None) -> dns.zone.Zone:
    zone_origin = None
    if origin is not None:
        try:
            zone_origin = dns.name.from_text(origin)
        except dns.exception.DNSException as exc:
            raise ConfigError(f"origin {origin!r} is not a domain name: {exc}", path) from None
    zone = dns.zone.Zone(zone_origin, relativize=False)
    try:
        with open(path, encoding="utf-8") as handle, zone.writer(True) as txn:
            reader = MasterReader(path, handle, txn)
            reader.read()
            if reader.errors:
                # Raised inside the transaction, so that nothing of a bad file is kept.
                raise ConfigErrors(
                    [ConfigError(e.message, e.file, e.line, e.key) for e in reader.errors]
                )
        zone.check_origin()
    except dns.zonefile.UnknownOrigin:
        raise ConfigError(
            "the zone origin is unknown: pass the origin (--origin example.com) "
            "or start the file with `$ORIGIN example.com.`",
            path,
        ) from None
    except dns.zone.NoSOA:
        raise ConfigError("no SOA record at the zone origin", path) from None
    except dns.zone.NoNS:
        raise ConfigError("no NS records at the zone origin", path) from None
    except dns.exception.DNSException as exc:
        raise ConfigError(str(exc), path) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text: {exc.reason}", path) from None
    except OSError as exc:
        raise ConfigError(exc.strerror or str(exc), exc.filename or path) from None
    return zone


class _Quoted(str):
    """A string scalar of record data, always double-quoted so that no reader retypes it."""


class _Dumper(yaml.SafeDumper):
    # Indent lists under their key, as people write them.
    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        return super().increase_indent(flow, False)


def _represent_quoted(dumper: yaml.SafeDumper, data: _Quoted) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", str(data), style='"')


def _represent_key(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    # Keys are owner names and fixed words; quote only those other readers would retype.
    style = '"' if _NOT_STRING.fullmatch(data) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(_Quoted, _represent_quoted)
_Dumper.add_representer(str, _represent_key)


class _Importer:
    def __init__(self, zone: dns.zone.Zone, path: str) -> None:
        assert zone.origin is not None  # from_file sets it or raises UnknownOrigin
        self.zone = zone
        self.origin: dns.name.Name = zone.origin
        self.path = path
        self.rdatasets = [
            (name, rdataset) for name, node in zone.nodes.items() for rdataset in node
        ]
        self.ttl = _most_common_ttl(
            (rdataset.ttl for _, rdataset in self.rdatasets), self._rdataset(RT.SOA).ttl
        )

    def _rdataset(self, rdtype: RT) -> dns.rdataset.Rdataset:
        rdataset = self.zone.get_rdataset(self.origin, rdtype)
        assert rdataset is not None  # from_file checks the origin has SOA and NS
        return rdataset

    def yaml(self) -> str:
        doc: dict[str, Any] = {
            "zone": _Quoted(self.origin.to_text()),
            "ttl": self.ttl,
            "soa": self.soa(),
            "ns": self.apex_ns(),
        }
        records = self.records()
        if records:
            doc["records"] = records
        source = " ".join(self.path.split())  # a newline in the path would end the comment
        header = f"# Imported by geodns from {source}.\n"
        body = yaml.dump(
            doc,
            Dumper=_Dumper,
            sort_keys=False,
            default_flow_style=False,
            allow_unicode=True,
            width=1_000_000,  # never fold a long TXT string over lines
        )
        return header + body

    def soa(self) -> dict[str, Any]:
        rdataset = self._rdataset(RT.SOA)
        soa = rdataset[0]
        out: dict[str, Any] = {
            "mname": _Quoted(soa.mname.to_text()),
            "rname": _Quoted(soa.rname.to_text()),
            "serial": soa.serial,
            "refresh": soa.refresh,
            "retry": soa.retry,
            "expire": soa.expire,
            "minimum": soa.minimum,
        }
        if rdataset.ttl != self.ttl:
            out["ttl"] = rdataset.ttl
        return out

    def apex_ns(self) -> Any:
        rdataset = self._rdataset(RT.NS)
        values = [_Quoted(rdata.target.to_text()) for rdata in rdataset]
        if rdataset.ttl != self.ttl:
            return {"ttl": rdataset.ttl, "values": values}
        return values

    def records(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        # Canonical order puts the apex first and keeps each subtree together.
        for name in sorted(self.zone.nodes):
            rrsets: dict[str, Any] = {}
            for rdataset in sorted(self.zone.nodes[name], key=lambda r: r.rdtype):
                if name == self.origin and rdataset.rdtype in (RT.SOA, RT.NS):
                    continue  # the top-level `soa:` and `ns:` keys hold these
                key = dns.rdatatype.to_text(rdataset.rdtype)
                rrsets[key] = self.rrset_value(name, rdataset)
            if rrsets:
                out[self.owner_key(name)] = rrsets
        return out

    def owner_key(self, name: dns.name.Name) -> str:
        if name == self.origin:
            return "@"
        if self.origin == dns.name.root:
            return name.to_text()
        relative = name.relativize(self.origin)
        # The loader reads a relative name that already ends in the origin's labels as
        # absolute (`www.example.com` in example.com.), so such owners must be absolute.
        if relative.is_subdomain(self.origin.relativize(dns.name.root)):
            return name.to_text()
        return relative.to_text()

    def rrset_value(self, name: dns.name.Name, rdataset: dns.rdataset.Rdataset) -> Any:
        if rdataset.rdtype in _SIGNATURE_TYPES:
            raise ConfigError(
                f"{name}: {rdataset.rdtype.name} records found: geodns does not serve "
                "pre-signed zones, import the unsigned zone",
                self.path,
            )
        values = [self.rdata_value(name, rdataset.rdtype, rdata) for rdata in rdataset]
        if rdataset.ttl != self.ttl:
            return {"ttl": rdataset.ttl, "values": values}
        # A lone multi-string TXT record stays in a list: a bare list would be one record
        # per string.
        if len(values) == 1 and not isinstance(values[0], list):
            return values[0]
        return values

    def rdata_value(self, name: dns.name.Name, rdtype: RT, rdata: dns.rdata.Rdata) -> Any:
        if rdtype in _TEXT_TYPES:
            strings = [self.utf8(name, rdtype, part) for part in rdata.strings]
            return strings[0] if len(strings) == 1 else strings
        text = rdata.to_text(relativize=False)
        if rdtype == RT.CAA and "\\" in text:
            # The loader does not unescape the quoted CAA value of the one-string form, so a
            # value that needs escapes goes in the mapping form, as plain text.
            return {
                "flags": rdata.flags,
                "tag": _Quoted(rdata.tag.decode("ascii")),
                "value": self.utf8(name, rdtype, rdata.value),
            }
        return _Quoted(text)

    def utf8(self, name: dns.name.Name, rdtype: RT, data: bytes) -> _Quoted:
        try:
            return _Quoted(data.decode("utf-8"))
        except UnicodeDecodeError:
            raise ConfigError(
                f"{name}: {rdtype.name} data {data!r} is not UTF-8 text, "
                "which a geodns zone file cannot hold",
                self.path,
            ) from None


def _most_common_ttl(ttls: Iterable[int], prefer: int) -> int:
    """The TTL most RRsets have; on a tie `prefer` (the SOA's TTL) if tied, else the lowest."""
    counts = Counter(ttls)
    if not counts:
        return prefer
    return max(counts, key=lambda ttl: (counts[ttl], ttl == prefer, -ttl))


# --- export ------------------------------------------------------------------------------


def export_master_file(zone: Zone) -> str:
    """The static records of `zone` as an RFC 1035 master file, SOA first.

    Services are left out: their answers depend on the client, which a master file cannot
    say. A leading comment names them.
    """
    origin = zone.origin
    rrsets = [rrset for node in zone.nodes.values() for rrset in node.values()]
    ttl = _most_common_ttl((rrset.ttl for rrset in rrsets), zone.soa.ttl)
    source = " ".join(zone.file.split())
    lines = [f"; {origin} exported by geodns from {source}"]
    if zone.services:
        names = " ".join(str(name) for name in sorted(zone.services))
        lines.append(f"; services not exported (answered per client from their regions): {names}")
    lines += [f"$ORIGIN {origin}", f"$TTL {ttl}"]
    for rrset in _export_order(zone):
        lines.append(rrset.to_text(origin=origin, relativize=True))
    return "\n".join(lines) + "\n"


def _export_order(zone: Zone) -> Iterable[dns.rrset.RRset]:
    # RFC 1035 5.2: the SOA is the first record; the apex NS next reads as a zone header.
    apex = zone.nodes[zone.origin]
    yield apex[RT.SOA]
    if RT.NS in apex:
        yield apex[RT.NS]
    for name in sorted(zone.nodes):
        for rdtype in sorted(zone.nodes[name]):
            if name == zone.origin and rdtype in (RT.SOA, RT.NS):
                continue
            yield zone.nodes[name][rdtype]
