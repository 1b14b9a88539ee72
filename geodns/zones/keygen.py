"""Generate the zone JSON Schema and the docs' key tables from the declaration in keys.py.

python -m geodns.zones.keys --write     # write geodns/schema/zone.schema.json and
                                        # docs/config-keys.md
python -m geodns.zones.keys --check     # exit 1 if either differs from the declaration
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from geodns.zones.keys import (
    MAX_TTL,
    MESSAGE_TYPES,
    RECORD_DATA,
    SECTIONS,
    SIGNED_TYPES,
    UNSET,
    ZONE,
    Key,
    Section,
    one_or_list,
)

PACKAGE = Path(__file__).resolve().parents[1]
SCHEMA_FILE = PACKAGE / "schema" / "zone.schema.json"
DOCS_FILE = PACKAGE.parent / "docs" / "config-keys.md"
COMMAND = "python -m geodns.zones.keys --write"


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/$defs/{name}"}


def _any_case(word: str) -> str:
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else c for c in word)


def _types_pattern(types: tuple[str, ...]) -> str:
    words = [_any_case(t) for t in types]
    return f"^{words[0]}$" if len(words) == 1 else f"^({'|'.join(words)})$"


def _value_defs() -> dict[str, Any]:
    """The $defs of values that are not mappings of keys: names, TTLs, record data."""
    text = {
        "type": ["string", "number"],
        "description": "Text; numbers are turned into text, so quote them to keep them as written.",
    }
    return {
        "ttl": {
            "type": "integer",
            "minimum": 0,
            "maximum": MAX_TTL,
            "description": "A TTL in whole seconds, 0 to 2^31-1 (RFC 2181 section 8).",
        },
        "name": {
            "type": "string",
            "pattern": "\\S",
            "description": "A domain name: absolute with a trailing dot or when it already ends"
            " in the zone origin, else relative to the origin; `@` is the origin.",
        },
        "text": text,
        "presentation": {
            "type": ["string", "number"],
            "description": "Record data in RFC 1035 presentation format, e.g. `1 1 2 abcd...`"
            " or RFC 3597 `\\# 4 0a000001`.",
        },
        "addressA": {"type": "string", "format": "ipv4", "description": "An IPv4 address."},
        "addressAAAA": {"type": "string", "format": "ipv6", "description": "An IPv6 address."},
        "txtRecord": {
            "description": "One TXT record: a string, or a list of strings for one record of"
            " several strings. Text over 255 bytes is split into strings of 255.",
            **one_or_list(_ref("text")),
        },
        "mxRecord": {"anyOf": [{"type": "string"}, _ref("mx")]},
        "srvRecord": {"anyOf": [{"type": "string"}, _ref("srv")]},
        "caaRecord": {"anyOf": [{"type": "string"}, _ref("caa")]},
        "httpStatus": {"type": "integer", "minimum": 100, "maximum": 599},
    }


def _record_defs() -> dict[str, Any]:
    """An owner name's mapping of TYPE -> RRset, from RECORD_DATA."""
    defs: dict[str, Any] = {}
    properties: dict[str, Any] = {
        "ttl": {"$ref": "#/$defs/ttl", "description": "Default TTL of this owner's RRsets."}
    }
    patterns: dict[str, Any] = {}
    other = None
    for data in RECORD_DATA:
        rrset = f"rrset_{data.item}"
        item = _ref(data.item)
        defs[rrset] = {
            "anyOf": [
                *one_or_list(item)["anyOf"],
                {"$ref": "#/$defs/ttlValues", "properties": {"values": one_or_list(item)}},
            ]
        }
        for t in data.listed:
            properties[t] = {"$ref": f"#/$defs/{rrset}", "description": data.doc}
        if data.types:
            patterns[_types_pattern(data.types)] = _ref(rrset)
        else:
            other = rrset
    patterns[_types_pattern(("SOA",))] = {
        "not": {},
        "description": "SOA is only allowed at the zone apex, in the top-level `soa` key.",
    }
    patterns[_types_pattern(MESSAGE_TYPES)] = {
        "not": {},
        "description": "A type that only exists in DNS messages, never in a zone.",
    }
    patterns[_types_pattern(SIGNED_TYPES)] = {
        "not": {},
        "description": "Records that come from DNSSEC signing, which geodns does not do.",
    }
    assert other is not None
    defs["owner"] = {
        "type": "object",
        "description": "The RRsets of one owner name: TYPE -> data. `ttl` sets the default TTL"
        " of this owner's RRsets.",
        "propertyNames": {"pattern": "^([A-Za-z][A-Za-z0-9-]*|TYPE[0-9]+)$"},
        "properties": properties,
        "patternProperties": patterns,
        "additionalProperties": {
            "$ref": f"#/$defs/{other}",
            "description": "Any other type (or TYPEnnn), in RFC 1035 presentation format.",
        },
    }
    defs["apexOwner"] = {
        "description": "Records at the zone apex; its SOA and NS go in the top-level `soa` and"
        " `ns` keys.",
        "$ref": "#/$defs/owner",
        "patternProperties": {
            _types_pattern(("NS",)): {
                "not": {},
                "description": "The apex NS RRset goes in the top-level `ns` key.",
            }
        },
    }
    return defs


def zone_schema() -> dict[str, Any]:
    """The zone file JSON Schema (draft 2020-12), generated from the declaration."""
    schema: dict[str, Any] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "urn:geodns:schema:zone",
        "title": "geodns zone file",
    }
    schema.update(ZONE.schema())
    defs = _value_defs()
    defs.update((s.name, s.schema()) for s in SECTIONS if s is not ZONE)
    defs.update(_record_defs())
    schema["$defs"] = defs
    return schema


def schema_text() -> str:
    return json.dumps(zone_schema(), indent=2, ensure_ascii=False) + "\n"


# --- the docs page --------------------------------------------------------------------------


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _default(key: Key) -> str:
    if key.required:
        return "required"
    if key.default_text:
        return key.default_text
    if key.default is UNSET:
        return "none"
    return f"`{json.dumps(key.default)}`"


def _errors(key: Key) -> str:
    parts = [p for p in (key.kind.errors(), key.errors) if p]
    return "; ".join(parts) if parts else "-"


def _section_md(section: Section) -> list[str]:
    out = [
        f"## {section.name}",
        "",
        f"At {section.where if ' ' in section.where else f'`{section.where}`'}. {section.doc}",
        "",
        "| key | type | default | what it does | errors |",
        "|---|---|---|---|---|",
    ]
    for key in section.keys:
        row = [
            f"`{key.name}`",
            key.kind.text,
            _default(key),
            key.doc,
            _errors(key),
        ]
        out.append("| " + " | ".join(_cell(c) for c in row) + " |")
    out.append("")
    errors = ["an unknown key (with the nearest known key, if one is close)"]
    if section.errors:
        errors.append(section.errors)
    out += [f"Errors of the mapping as a whole: {'; '.join(errors)}.", ""]
    return out


INTRO = f"""\
# Zone file keys

<!-- Generated from geodns/zones/keys.py by `{COMMAND}`: edit the declaration, not this page. -->

Every key a zone file may hold, section by section: its type, its default, what it does
and what makes it an error. The same declaration (`geodns/zones/keys.py`) drives the
validation in `geodns check` and `geodns serve`, this page, and the JSON Schema
`geodns/schema/zone.schema.json` (draft 2020-12); after changing a key, regenerate both
with

```sh
{COMMAND}
```

(the test suite fails, naming this command, while either is stale).

To have VS Code's YAML extension check zones as you type, add to `.vscode/settings.json`:
`"yaml.schemas": {{"./geodns/schema/zone.schema.json": "zones/*.yaml"}}`.

## Errors

A zone is checked whole before it is served or reloaded; every problem is reported at
once, one per line, as `file:line: key: problem`, and `geodns check` exits 2:

```
zones/example.com.yaml:14: records.www.A[1]: '192.0.2.300' is not an IPv4 address
zones/example.com.yaml:21: services.api.health.interval: 0 is out of range (above 0, at most 86400)
zones/example.com.yaml:30: servics: unknown key (did you mean services?)
```

A misspelt key names the nearest declared key when one is close (Python's
`difflib.get_close_matches`), else every key the mapping may hold.

Names in values (CNAME, NS, PTR, DNAME targets, MX exchange, SRV target, SOA `mname`
and `rname`, `ns`) are absolute when they end with a dot *or already end in the zone's
origin*, otherwise relative to the origin; `@` is the origin.
"""


def _records_md() -> list[str]:
    out = [
        "## records",
        "",
        "At `records.OWNER`: the RRsets of one owner name, `TYPE: data`. A type's data is one"
        " value or a list of values (one record each), or `{ttl: N, values: [...]}`"
        " ([ttlValues](#ttlvalues)). `ttl:` beside the types sets the default TTL of this"
        " owner's RRsets; an RRset's TTL is, in order, its own, the owner's, the zone's. Type"
        " names are case-insensitive.",
        "",
        "| type | one record's value |",
        "|---|---|",
    ]
    for data in RECORD_DATA:
        types = ", ".join(data.types) or "any other type"
        out.append(f"| {_cell(types)} | {_cell(data.value)} |")
    out += [
        "",
        "Errors: an unknown record type (with the nearest type, if one is close); a type that"
        " only exists in messages"
        f" ({', '.join(MESSAGE_TYPES)}); DNSSEC records ({', '.join(SIGNED_TYPES)}: geodns"
        " does not sign); the apex SOA or NS here (use `soa:` and `ns:`); SOA anywhere else;"
        " a CNAME at the apex, beside other data or twice at one name; an owner name outside"
        " the zone; data at or below a delegation other than NS and DS at the cut and A/AAAA"
        " glue below it; a name a service owns; data that does not parse as its type.",
        "",
    ]
    return out


def docs_text() -> str:
    lines = INTRO.splitlines()
    lines.append("")
    lines += _section_md(ZONE)
    lines += _records_md()
    for section in SECTIONS:
        if section is not ZONE:
            lines += _section_md(section)
    return "\n".join(lines).rstrip("\n") + "\n"


def _stale() -> list[Path]:
    out = []
    for path, text in ((SCHEMA_FILE, schema_text()), (DOCS_FILE, docs_text())):
        try:
            current = path.read_text(encoding="utf-8")
        except OSError:
            current = None
        if current != text:
            out.append(path)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m geodns.zones.keys",
        description="Generate the zone JSON Schema and docs/config-keys.md from the key"
        " declaration in geodns/zones/keys.py.",
    )
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="write both files")
    mode.add_argument("--check", action="store_true", help="exit 1 if either is stale")
    args = parser.parse_args(argv)
    if not DOCS_FILE.parent.is_dir():
        print(f"no {DOCS_FILE.parent}: run this in a source checkout of geodns", file=sys.stderr)
        return 2
    if args.write:
        SCHEMA_FILE.write_text(schema_text(), encoding="utf-8")
        DOCS_FILE.write_text(docs_text(), encoding="utf-8")
        print(f"wrote {SCHEMA_FILE} and {DOCS_FILE}")
        return 0
    stale = _stale()
    for path in stale:
        print(f"{path} differs from the declaration: run `{COMMAND}`", file=sys.stderr)
    return 1 if stale else 0
