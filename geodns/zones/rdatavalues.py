"""The values of a zone document's records as DNS data: record types, domain names relative to
the origin, and each record value as dnspython rdata."""

from __future__ import annotations

import functools
from typing import Any

import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TXT

from geodns.yamlsource import Path
from geodns.zones import fastparse, keys
from geodns.zones.collector import Collector
from geodns.zones.services import parse_address

IN = dns.rdataclass.IN
RT = dns.rdatatype.RdataType

# Types that only exist in messages, never in a zone.
META_TYPES = {RT[t] for t in keys.MESSAGE_TYPES}
# Signatures and denial records come from signing, which geodns does not do (yet).
DNSSEC_SIGNED_TYPES = {RT[t] for t in keys.SIGNED_TYPES}
# Names in the data of these types are written like owner names (see docs/zones.md: "Names").
NAME_TYPES = {RT.CNAME, RT.NS, RT.PTR, RT.DNAME}


_TYPES: dict[Any, RT | None] = {}


def rdatatype(text: Any) -> RT | None:
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
def zone_type_names() -> frozenset[str]:
    """The names of the types a zone can hold, for "did you mean" on a misspelt type."""
    barred = META_TYPES | DNSSEC_SIGNED_TYPES | {RT.SOA}
    return frozenset(t.name for t in RT if t not in barred)


class RecordValues:
    """Reads names and record values written in one zone, relative to its origin; a bad
    value is reported to the collector and read as None."""

    def __init__(self, err: Collector, origin: dns.name.Name) -> None:
        self.err = err
        self.origin = origin

    # --- names ------------------------------------------------------------------------

    def name(self, path: Path, text: Any) -> dns.name.Name | None:
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

    def owner(self, path: Path, text: Any) -> dns.name.Name | None:
        if isinstance(text, str):
            # Most owners are plain labels under the origin: inside the zone, made canonical.
            fast = fastparse.relative_name(text.strip(), self.origin, canonical=True)
            if fast is not None:
                return fast
        name = self.name(path, text)
        if name is not None and not name.is_subdomain(self.origin):
            self.err.add(path, f"{name.to_text()} is outside the zone {self.origin.to_text()}")
            return None
        return None if name is None else name.canonicalize()

    # --- record values ----------------------------------------------------------------

    def rdata(self, path: Path, rdtype: RT, value: Any) -> dns.rdata.Rdata | None:
        if rdtype == RT.A:
            return self.address(path, value, 4)
        if rdtype == RT.AAAA:
            return self.address(path, value, 6)
        if rdtype == RT.TXT or rdtype == RT.SPF:
            return self.txt(path, rdtype, value)
        if rdtype in NAME_TYPES:
            target = self.name(path, value)
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
        self.err.unknown_keys(path, value, section.names)
        texts = []
        for key in spec:
            name = key.name
            fpath = (*path, name)
            if name not in value:
                self.err.add(path, f"missing `{name}`")
                return None
            v = value[name]
            if isinstance(key.kind, keys.Int):
                n = key.kind.parse(self.err, fpath, v)
                if n is None:
                    return None
                texts.append(str(n))
            elif key.kind is keys.NAME:
                target = self.name(fpath, v)
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
