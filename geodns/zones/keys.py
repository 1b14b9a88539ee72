"""Every key of a zone file, declared once: its type, default, meaning and errors.

As Knot declares its whole configuration as one table of rows (src/knot/conf/schema.c),
each mapping of a zone file is a `Section` of `Key` rows. The validators (zonebuild.py,
rdatavalues.py, collector.py, services.py, healthspec.py) take key names, defaults and the
checks of plain values from these rows; geodns/schema/zone.schema.json and
docs/config-keys.md are generated from them:

    python -m geodns.zones.keys --write     # regenerate both after changing a row
    python -m geodns.zones.keys --check     # exit 1 when either is stale (the tests do this)
"""

from __future__ import annotations

import difflib
import functools
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from geodns.yamlsource import Path

MAX_TTL = 2**31 - 1  # RFC 2181 section 8
MAX_SERIAL = 2**32 - 1  # RFC 1982 serial number arithmetic
MAX_ASN = 2**32 - 1  # RFC 6793: four-octet AS numbers
MAX_INTERVAL = 86400.0  # a day: anything longer is not a health check
MAX_COUNT = 100  # rise/fall: more consecutive probes than this would take hours to act
CONTINENTS = ("AF", "AN", "AS", "EU", "NA", "OC", "SA")
WHEN_NONE = ("refuse", "servfail", "nodata")
BODY_FIELDS = ("utilization", "version", "ready")
LABEL = "[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"  # a region name becomes a DNS label


class Errors(Protocol):
    """Where a check reports a problem: the zone builder's error collector."""

    def add_error(self, path: Path, message: str) -> None: ...


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()  # a key without a default value


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/$defs/{name}"}


def one_or_list(item: dict[str, Any], min_items: int = 1) -> dict[str, Any]:
    """The schema of a value written as one item or a list of them."""
    many: dict[str, Any] = {"type": "array", "items": item}
    if min_items:
        many["minItems"] = min_items
    return {"anyOf": [item, many]}


# --- kinds: what a key's value may be -------------------------------------------------------


class Kind:
    """A key's type: its JSON Schema, its name in the docs, and the check of a value."""

    text = "any"

    def schema(self) -> dict[str, Any]:
        raise NotImplementedError

    def errors(self) -> str:
        """The value errors, for the docs ("" when the key's own `errors` say it all)."""
        return ""

    def parse(self, b: Errors, path: Path, value: Any) -> Any:
        """The value, or None after reporting why it is wrong; a kind without a check of
        its own (Shape, Nested) returns it as it is, for its validator to read."""
        return value


@dataclass(frozen=True)
class Int(Kind):
    """A whole number from `low` to `high`; the error reads "V is not WHAT (LOW to HIGH)"."""

    low: int
    high: int
    what: str

    @property
    def text(self) -> str:  # type: ignore[override]
        return f"integer, {self.low} to {self.high}"

    def schema(self) -> dict[str, Any]:
        return {"type": "integer", "minimum": self.low, "maximum": self.high}

    def errors(self) -> str:
        return f"not a whole number from {self.low} to {self.high}"

    def parse(self, b: Errors, path: Path, value: Any) -> int | None:
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or not self.low <= value <= self.high
        ):
            b.add_error(path, f"{value!r} is not {self.what} ({self.low} to {self.high})")
            return None
        return value


@dataclass(frozen=True)
class Ttl(Kind):
    """A TTL in whole seconds (RFC 2181 section 8)."""

    text = "TTL (seconds)"

    def schema(self) -> dict[str, Any]:
        return _ref("ttl")

    def errors(self) -> str:
        return f"not a whole number of seconds from 0 to {MAX_TTL}"

    def parse(self, b: Errors, path: Path, value: Any) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int):
            b.add_error(path, f"{value!r} is not a TTL (whole seconds, 0 to {MAX_TTL})")
            return None
        if not 0 <= value <= MAX_TTL:
            b.add_error(path, f"TTL {value} out of range (0 to {MAX_TTL})")
            return None
        return value


@dataclass(frozen=True)
class Number(Kind):
    """A number in a range; `above`/`below` make an end exclusive. `message` is the error,
    formatted with the value as {value!r}."""

    low: float | None
    high: float | None
    message: str
    above: bool = False
    below: bool = False
    out_of_range: str = ""  # the error for a number outside the range, if not `message`

    @property
    def text(self) -> str:  # type: ignore[override]
        return "number" + (f", {self._range()}" if self._range() else "")

    def _range(self) -> str:
        if self.low is not None and self.high is not None and not self.above and not self.below:
            return f"{_text(self.low)} to {_text(self.high)}"
        parts = []
        if self.low is not None:
            parts.append(f"above {_text(self.low)}" if self.above else f"{_text(self.low)} or more")
        if self.high is not None:
            parts.append(
                f"below {_text(self.high)}" if self.below else f"at most {_text(self.high)}"
            )
        return ", ".join(parts)

    def schema(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "number"}
        if self.low is not None:
            out["exclusiveMinimum" if self.above else "minimum"] = _num(self.low)
        if self.high is not None:
            out["exclusiveMaximum" if self.below else "maximum"] = _num(self.high)
        return out

    def errors(self) -> str:
        return "not a number" + (f", {self._range()}" if self._range() else "")

    def ok(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.above else value < self.low):
            return False
        return not (
            self.high is not None and (value >= self.high if self.below else value > self.high)
        )

    def parse(self, b: Errors, path: Path, value: Any) -> float | None:
        if not self.ok(value):
            message = self.message
            if self.out_of_range and not isinstance(value, bool) and isinstance(value, int | float):
                message = self.out_of_range
            b.add_error(path, message.format(value=value))
            return None
        return float(value)


def _text(x: float) -> str:
    """A bound for people: 1e12 as 10^12, not 1e+12."""
    if x >= 1e6 and math.log10(x).is_integer():
        return f"10^{int(math.log10(x))}"
    return f"{x:g}"


def _num(x: float) -> int | float:
    return int(x) if float(x).is_integer() else x


@dataclass(frozen=True)
class Bool(Kind):
    message: str = "must be true or false"
    text = "true or false"

    def schema(self) -> dict[str, Any]:
        return {"type": "boolean"}

    def errors(self) -> str:
        return "not true or false"

    def parse(self, b: Errors, path: Path, value: Any) -> bool | None:
        if not isinstance(value, bool):
            b.add_error(path, self.message.format(value=value))
            return None
        return value


@dataclass(frozen=True)
class Choice(Kind):
    """One of a few words; the error lists them."""

    choices: tuple[str, ...]

    @property
    def text(self) -> str:  # type: ignore[override]
        return " | ".join(f"`{c}`" for c in self.choices)

    def schema(self) -> dict[str, Any]:
        return {"enum": list(self.choices)}

    def errors(self) -> str:
        return "not one of " + ", ".join(self.choices)

    def parse(self, b: Errors, path: Path, value: Any) -> str | None:
        if isinstance(value, list | dict) or value not in self.choices:
            b.add_error(path, f"{value!r} is not one of {', '.join(self.choices)}")
            return None
        return value


@dataclass(frozen=True)
class Shape(Kind):
    """A value with a structure of its own, checked by its validator (named in `errors` of
    the key); `json` is its JSON Schema, `text` its name in the docs."""

    json: dict[str, Any]
    text: str = "any"  # type: ignore[misc]
    errs: str = ""  # what makes a value wrong, whatever the key

    def schema(self) -> dict[str, Any]:
        return dict(self.json)

    def errors(self) -> str:
        return self.errs


@dataclass(frozen=True)
class Nested(Kind):
    """A mapping of keys declared by another Section."""

    section: str  # its Section's name (the $defs entry)
    nullable: bool = False

    @property
    def text(self) -> str:  # type: ignore[override]
        return f"mapping: [{self.section}](#{self.section.lower()})" + (
            " or null" if self.nullable else ""
        )

    def schema(self) -> dict[str, Any]:
        if self.nullable:
            return {"anyOf": [{"type": "null"}, _ref(self.section)]}
        return _ref(self.section)


@dataclass(frozen=True)
class Key:
    """One key of a mapping: a row of the table."""

    name: str
    kind: Kind
    doc: str  # what it does, and why its default is what it is
    default: Any = UNSET
    required: bool = False
    errors: str = ""  # error conditions beyond the kind's own (the validator checks them)
    default_text: str = ""  # the default for people, when it is not a plain value

    def schema(self) -> dict[str, Any]:
        out = self.kind.schema()
        out["description"] = self.doc
        if self.default is not UNSET:
            out["default"] = self.default
        return out


@dataclass(frozen=True)
class Section:
    """A mapping of a zone file: its keys, and what the JSON Schema adds beyond them."""

    name: str  # the $defs entry of its schema
    where: str  # where it is written, for the docs: `services.NAME.regions.NAME`
    doc: str
    keys: tuple[Key, ...]
    errors: str = ""  # errors about the mapping as a whole
    extra: dict[str, Any] = field(default_factory=dict)  # further JSON Schema keywords
    _by_name: dict[str, Key] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._by_name.update((k.name, k) for k in self.keys)

    @functools.cached_property
    def names(self) -> frozenset[str]:
        return frozenset(self._by_name)

    def __getitem__(self, name: str) -> Key:
        return self._by_name[name]

    def default(self, name: str) -> Any:
        return self._by_name[name].default

    def value(self, b: Errors, path: Path, spec: dict[str, Any], name: str) -> Any:
        """Key `name` of `spec` (its default when absent) checked by its kind: None after
        reporting a bad value at path.name."""
        key = self._by_name[name]
        if name not in spec:
            return key.default
        return key.kind.parse(b, (*path, name), spec[name])

    def schema(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "object", "description": self.doc}
        required = [k.name for k in self.keys if k.required]
        if required:
            out["required"] = required
        out["additionalProperties"] = False
        out["properties"] = {k.name: k.schema() for k in self.keys}
        out.update(self.extra)
        return out


def nearest(word: Any, choices: Iterable[str]) -> str | None:
    """The choice a misspelt word most likely meant, if one is close (difflib's ratio of at
    least 0.6: `servics` -> services, `AAA` -> AAAA)."""
    near = difflib.get_close_matches(str(word), sorted(choices), n=1)
    return near[0] if near else None


def unknown_key(key: Any, allowed: Iterable[str]) -> str:
    """The error for a key no row declares, with the nearest declared one if it is close."""
    allowed = sorted(allowed)
    near = nearest(key, allowed)
    if near:
        return f"unknown key (did you mean {near}?)"
    return f"unknown key (expected one of {', '.join(allowed)})"


# --- the sections ---------------------------------------------------------------------------

NAME = Shape(_ref("name"), "domain name", "not a domain name")
WORD = Shape({"type": "string"}, "word")
TTL = Ttl()
PORT = Int(1, 65535, "a port")
SECONDS = Number(
    0,
    MAX_INTERVAL,
    "{value!r} is not a number of seconds",
    above=True,
    out_of_range=f"{{value!r}} is out of range (above 0, at most {MAX_INTERVAL:g})",
)
REGION_NAMES = Shape(
    {"type": "array", "items": {"type": "string"}, "uniqueItems": True, "minItems": 1},
    "list of region names",
)
ADDRESSES = Shape(
    one_or_list({"type": "string"}),
    "address or list",
)
FAIL_CLOSED = [{"enum": list(WHEN_NONE)}, _ref("answer")]
_NETWORKS = Key(
    "networks",
    Shape(one_or_list({"type": "string"}, 0), "CIDR or list"),
    "Client networks in CIDR notation (the ECS address, else the resolver's): an override of"
    " what GeoIP says.",
    errors="not a network in CIDR notation; listed twice",
)
_ASN_ITEM = {
    "oneOf": [
        {"type": "integer", "minimum": 1, "maximum": MAX_ASN},
        {"type": "string", "pattern": "^(AS|as)[0-9]+$"},
    ]
}
_ASN = Key(
    "asn",
    Shape({"oneOf": [*_ASN_ITEM["oneOf"], {"type": "array", "items": _ASN_ITEM}]}, "AS or list"),
    "Autonomous system numbers (64496 or AS64496), looked up in the service's asn_database.",
    errors="not an AS number (1 to 2^32-1, or AS followed by one); no `asn_database` on the"
    " service",
)

ZONE = Section(
    "zone",
    "the top level of the file",
    "One DNS zone served by geodns: its SOA, apex NS, static records and geo-routed services."
    " To get completion and help in VS Code (YAML extension), start the file with"
    " `# yaml-language-server: $schema=<path to zone.schema.json>`. Domain names in values are"
    " absolute when they end with a dot or already end in the zone origin, else relative to the"
    " origin; `@` is the origin.",
    (
        Key(
            "zone",
            Shape({"type": "string", "pattern": "\\S", "examples": ["example.com"]}, "domain name"),
            "The zone origin, e.g. `example.com` (a trailing dot is optional).",
            required=True,
            errors="missing; not a domain name",
        ),
        Key(
            "ttl",
            TTL,
            "Default TTL in seconds of every RRset that sets none.",
            default=3600,
        ),
        Key("soa", Nested("soa"), "The zone's SOA record.", required=True, errors="missing"),
        Key(
            "ns",
            Shape(
                {
                    "anyOf": [
                        *one_or_list(_ref("name"))["anyOf"],
                        {
                            "$ref": "#/$defs/ttlValues",
                            "properties": {"values": one_or_list(_ref("name"))},
                        },
                    ],
                    "examples": [["ns1.example.com", "ns2.example.com"]],
                },
                "name, list or `{ttl, values}`",
            ),
            "The apex NS RRset: one name server name, a list, or `{ttl, values}`.",
            required=True,
            errors="missing; empty; a name that is not a domain name",
        ),
        Key(
            "records",
            Shape(
                {
                    "type": ["object", "null"],
                    "properties": {"@": _ref("apexOwner")},
                    "additionalProperties": _ref("owner"),
                },
                "owner name -> {TYPE: data}",
            ),
            "Static records: owner name -> {TYPE: data}. Owner names are relative to the zone"
            " (`www`, `_sip._tcp`, `*.cdn`), absolute with a trailing dot, or `@` for the apex."
            " The apex SOA and NS go in the top-level `soa` and `ns` keys.",
            default_text="none",
            errors="see [Records](#records)",
        ),
        Key(
            "services",
            Shape(
                {"type": ["object", "null"], "additionalProperties": _ref("service")},
                "service name -> [service](#service)",
            ),
            "Geo-routed names: service name -> regions. A query for a service name is answered"
            " with the addresses of the regions chosen for the client.",
            default_text="none",
            errors="not a mapping; a service name outside the zone, at or below a delegation, or"
            " that also has records",
        ),
        Key(
            "debug",
            Bool(),
            "Answer TXT queries for service names with the routing decision, step by step. Off"
            " by default: it exposes topology.",
            default=False,
        ),
    ),
    errors="not a mapping; the same zone in two files",
)

SOA = Section(
    "soa",
    "soa",
    "The zone's SOA record (RFC 1035 section 3.3.13).",
    (
        Key("mname", NAME, "The primary name server.", required=True, errors="missing"),
        Key(
            "rname",
            Shape({"type": "string", "pattern": "\\S"}, "mailbox"),
            "The responsible mailbox: `hostmaster@example.com` or the DNS form"
            " `hostmaster.example.com.`.",
            required=True,
            errors="missing; not a domain name",
        ),
        Key(
            "serial",
            Shape(
                {
                    "anyOf": [
                        {"const": "auto"},
                        {"type": "integer", "minimum": 0, "maximum": MAX_SERIAL},
                    ]
                },
                f"`auto` or integer, 0 to {MAX_SERIAL}",
            ),
            "The serial number, or `auto` for the zone file's modification time.",
            default="auto",
            errors=f"not `auto` or a whole number from 0 to {MAX_SERIAL}",
        ),
        Key(
            "refresh",
            Int(0, MAX_TTL, "refresh"),
            "Seconds between secondary refreshes.",
            default=3600,
        ),
        Key(
            "retry",
            Int(0, MAX_TTL, "retry"),
            "Seconds before a failed refresh is retried.",
            default=600,
        ),
        Key(
            "expire",
            Int(0, MAX_TTL, "expire"),
            "Seconds a secondary keeps serving without a refresh.",
            default=604800,
        ),
        Key(
            "minimum",
            Int(0, MAX_TTL, "minimum"),
            "Negative-caching TTL (RFC 2308).",
            default=300,
        ),
        Key("ttl", TTL, "The SOA RRset's TTL.", default_text="the zone `ttl`"),
    ),
    errors="missing; not a mapping",
)

TTL_VALUES = Section(
    "ttlValues",
    "records.OWNER.TYPE, ns",
    "An RRset with its own TTL: `{ttl: 60, values: [...]}`.",
    (
        Key("ttl", TTL, "The RRset's TTL.", default_text="the owner's `ttl`, else the zone's"),
        Key(
            "values",
            Shape({}, "record data or list"),
            "The RRset's records: one, or a list.",
            required=True,
            errors="missing; empty",
        ),
    ),
)

MX = Section(
    "mx",
    "records.OWNER.MX",
    "One MX record as a mapping (or the string `10 mail.example.com.`).",
    (
        Key("preference", Int(0, 65535, "preference"), "Lower is preferred.", required=True),
        Key("exchange", NAME, "The mail server.", required=True),
    ),
)
SRV = Section(
    "srv",
    "records.OWNER.SRV",
    "One SRV record (RFC 2782) as a mapping (or the string `0 5 443 www`).",
    (
        Key("priority", Int(0, 65535, "priority"), "Lower is tried first.", required=True),
        Key(
            "weight",
            Int(0, 65535, "weight"),
            "Relative weight among equal priorities.",
            required=True,
        ),
        Key("port", Int(0, 65535, "port"), "The service's port.", required=True),
        Key("target", NAME, "The host; `.` means the service is not offered.", required=True),
    ),
)
CAA = Section(
    "caa",
    "records.OWNER.CAA",
    'One CAA record (RFC 8659) as a mapping (or the string `0 issue "letsencrypt.org"`).',
    (
        Key("flags", Int(0, 255, "flags"), "128 marks the property critical.", required=True),
        Key(
            "tag",
            WORD,
            "`issue`, `issuewild` or `iodef`.",
            required=True,
        ),
        Key(
            "value",
            Shape(_ref("text"), "text"),
            "The property value, unquoted.",
            required=True,
        ),
    ),
)

SERVICE = Section(
    "service",
    "services.NAME",
    "A geo-routed name, answered with the addresses of the regions chosen for each client.",
    (
        Key(
            "ttl",
            TTL,
            "TTL of the answers: short, so that a failed region leaves resolver caches quickly.",
            default=30,
        ),
        Key(
            "regions",
            Shape(
                {
                    "type": "object",
                    "minProperties": 1,
                    "additionalProperties": _ref("region"),
                    "propertyNames": {"pattern": f"^{LABEL}$"},
                },
                "region name -> [region](#region)",
            ),
            "region name -> where it is and its addresses.",
            required=True,
            errors="missing or empty; a region name that is not a DNS label",
        ),
        Key(
            "answers",
            Int(1, 16, "a count of regions"),
            "How many regions' addresses an answer carries, best first.",
            default=1,
        ),
        Key(
            "port",
            PORT,
            "Port in the service's SRV records (_service._tcp).",
            default=443,
        ),
        Key(
            "default_order",
            Shape(
                {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
                "list of region names",
            ),
            "Order for clients that cannot be located (private, reserved or unknown addresses);"
            " unlisted regions follow in listed order.",
            default_text="the order of `regions`",
            errors="an unknown region; a region listed twice",
        ),
        Key(
            "capacity",
            Nested("capacity"),
            "Load watermarks ([capacity](capacity.md)): the band the capacity controller keeps"
            " each region's smoothed load in, shedding client networks in damped steps toward"
            " the band's middle when outside it; a state file's reading sheds"
            " (u-low)/(high-low) between them, all above high.",
            default_text="`{low: 0.75, high: 0.92}`",
        ),
        Key(
            "residency",
            Shape(
                {"type": "array", "items": _ref("residencyRule")}, "list of [rules](#residencyrule)"
            ),
            "Data-residency rules, tried in order: a client matching a rule is answered only from"
            " its regions, or fails closed.",
            default_text="none",
            errors="not a list; two rules that match the same clients",
        ),
        Key(
            "when_all_down",
            Choice(("answer_all", "servfail")),
            "When every region is down: answer them all (fail open, as gdnsd and Route 53 do)"
            " or SERVFAIL.",
            default="answer_all",
        ),
        Key(
            "latency",
            Shape({"type": ["string", "null"], "minLength": 1}, "`default`, a path or null"),
            "Latency table: `default` (the shipped data/latency.yaml), a file path relative to"
            " the zone file, or null to order by distance only"
            " ([latency and cost](latency-and-cost.md)).",
            default="default",
            errors="not a string or null; a table that cannot be read",
        ),
        Key(
            "health",
            Nested("health"),
            "Defaults for every region's health check (a region's own `health` replaces them"
            " key by key).",
            default_text="none",
        ),
        Key(
            "version",
            Shape(
                {"anyOf": [{"enum": ["consistent", "any"]}, _ref("version")]},
                "`consistent` | `any` | [mapping](#version)",
            ),
            "Which model versions plain answers reach ([rollouts](rollouts.md)): `consistent`"
            " (approved versions only), `any`, `{pin: VERSION}`, or a mapping.",
            default="consistent",
            errors="not one of the words or a mapping",
        ),
        Key(
            "unlocated",
            Shape(
                {"anyOf": [{"const": "route"}, *FAIL_CLOSED]},
                "`route` | `refuse` | `servfail` | `nodata` | `{answer: [...]}`",
            ),
            "Clients that cannot be located and that no residency rule holds: `route`"
            " (default_order over every region), or fail closed: refuse, servfail, nodata,"
            " {answer: [...]}.",
            default="route",
            errors="not one of these; a residency rule already holds unlocated clients",
        ),
        Key(
            "quorum",
            Choice(("majority", "any", "local")),
            "How a fleet's nodes combine their own health checks of a region: `majority` (down"
            " when more than half of the fresh votes say down; a tie keeps it up), `any` (down"
            " when one fresh vote says down) or `local` (this node's checks only). See"
            " [quorum](quorum.md).",
            default="majority",
        ),
        Key(
            "cost",
            Nested("cost"),
            "Cost within a latency budget: among the allowed, healthy regions whose estimated"
            " round trip is within within_ms of the best one's, the cheapest (its region's"
            " `cost`) comes first; outside the budget latency wins. Every region then needs a"
            " `cost`.",
            default_text="off",
            errors="a region without `cost`",
        ),
        Key(
            "prefer",
            Shape({"type": "array", "items": _ref("preferRule")}, "list of [rules](#preferrule)"),
            "Ordering preferences: clients of these networks or ASNs get the listed regions"
            " first, in this order (then the others as ranked); residency, health and shedding"
            " still apply.",
            default_text="none",
            errors="not a list",
        ),
        Key(
            "asn_database",
            Shape({"type": "string"}, "path"),
            "A MaxMind DB file of autonomous systems (MaxMind GeoLite2-ASN, DB-IP ASN Lite),"
            " relative to the zone file: required by `asn` in clients.",
            default_text="none",
            errors="not a path; missing, unreadable or not an ASN database",
        ),
    ),
    errors="not a mapping",
)

REGION = Section(
    "region",
    "services.NAME.regions.NAME",
    "One place the service runs; its name becomes a DNS label (us-east-1.inference.example.com).",
    (
        Key(
            "location",
            Nested("location", nullable=True),
            "Where the region is, to send clients to the nearest one.",
            default_text="none",
        ),
        Key(
            "addresses",
            ADDRESSES,
            "IPv4 and IPv6 addresses answered for this region.",
            required=True,
            errors="missing or empty; not an IP address (scope IDs are refused)",
        ),
        Key(
            "jurisdiction",
            Shape({"type": "string"}, "label"),
            "A label for people (EU, US, ...): residency rules name regions, not labels.",
            default_text="none",
            errors="not a string",
        ),
        Key("health", Nested("health"), "How to check this region.", default_text="none"),
        Key(
            "port",
            PORT,
            "This region's port in the SRV records, when it differs from the service's `port`.",
            default_text="the service's `port`",
        ),
        Key(
            "version",
            Shape({"type": ["string", "number"], "pattern": "\\S"}, "string or number"),
            "The model version the region serves, when its health check does not report one.",
            default_text="none",
            errors="not a string or number; empty",
        ),
        Key(
            "cost",
            Number(0, 1e12, "{value!r} is not a cost (a number, 0 or more)", below=True),
            "The region's cost in relative units (per request, per GPU-hour): compared within"
            " the service's `cost` budget.",
            default_text="none",
        ),
        Key(
            "capacity",
            Nested("regionCapacity"),
            "How much load the region absorbs, relative to the service's other regions"
            " ([capacity](capacity.md)): shed clients go where there is room, weighed by it.",
            default_text="as big as every other",
        ),
    ),
    errors="not a mapping",
)

LOCATION = Section(
    "location",
    "services.NAME.regions.NAME.location",
    "Where the region is: `{lat: DEGREES, lon: DEGREES}`, both required.",
    (
        Key(
            "lat",
            Number(-90, 90, "{value!r} is not a lat (-90 to 90)"),
            "Latitude in degrees.",
            required=True,
        ),
        Key(
            "lon",
            Number(-180, 180, "{value!r} is not a lon (-180 to 180)"),
            "Longitude in degrees.",
            required=True,
        ),
    ),
    errors="not a mapping of exactly lat and lon",
)

REGION_CAPACITY = Section(
    "regionCapacity",
    "services.NAME.regions.NAME.capacity",
    "The region's size, relative to the service's other regions.",
    (
        Key(
            "gpus",
            Number(0, 1e9, "{value!r} is not a positive number", above=True, below=True),
            "Its GPUs (or any unit the service's regions share).",
            required=True,
        ),
    ),
    errors="not a mapping with `gpus`",
)

CAPACITY = Section(
    "capacity",
    "services.NAME.capacity",
    "Load watermarks of the service's regions ([capacity](capacity.md)).",
    (
        Key(
            "low",
            Number(0, 1, "{value!r} is not a utilization ratio (0 to 1)"),
            "Below it a region takes all its clients.",
            default=0.75,
        ),
        Key(
            "high",
            Number(0, 1, "{value!r} is not a utilization ratio (0 to 1)"),
            "Above it a region takes no new clients (unless every region is above it).",
            default=0.92,
        ),
        Key(
            "signals",
            Shape(
                {
                    "type": "object",
                    "propertyNames": {"not": {"const": "utilization"}, "minLength": 1},
                    "additionalProperties": _ref("band"),
                },
                "JSON key -> [band](#band)",
            ),
            "Further numeric keys of the health JSON (or of a pushed load), each with its own"
            " watermarks, e.g. vLLM's num_requests_waiting: {low: 8, high: 32}; the worst of"
            " them, normalised to its band, counts.",
            default_text="none",
            errors="`utilization` or an empty key",
        ),
    ),
    errors="not a mapping; `low` not below `high`",
)

BAND = Section(
    "band",
    "services.NAME.capacity.signals.KEY",
    "One signal's watermarks.",
    (
        Key("low", Number(None, None, "{value!r} is not a number"), "Low mark.", required=True),
        Key("high", Number(None, None, "{value!r} is not a number"), "High mark.", required=True),
    ),
    errors="not a mapping of exactly low and high; `low` not below `high`",
)

VERSION = Section(
    "version",
    "services.NAME.version",
    "Which model versions plain answers reach, as a mapping ([rollouts](rollouts.md)).",
    (
        Key(
            "mode",
            Choice(("consistent", "pin", "any")),
            "`consistent`: regions on an approved version; `pin`: only regions serving `pin`;"
            " `any`: versions are not considered.",
            default_text="`pin` with `pin`, else `consistent`",
        ),
        Key(
            "pin",
            Shape({"type": ["string", "number"]}, "version"),
            "The version to answer with mode pin.",
            default_text="none",
            errors="missing with mode pin; given with another mode",
        ),
        Key(
            "canary_share",
            Number(0, 1, "{value!r} is not a share 0..1"),
            "The share of client networks that already get a rollout's new version.",
            default=0.0,
        ),
        Key(
            "when_none",
            Choice(("any", *WHEN_NONE)),
            "What to answer when no region of the version is healthy.",
            default="any",
        ),
    ),
)

RESIDENCY_RULE = Section(
    "residencyRule",
    "services.NAME.residency[N]",
    "A data-residency rule: clients it matches are answered only from its regions.",
    (
        Key("clients", Nested("clients"), "Which clients.", required=True),
        Key(
            "regions",
            REGION_NAMES,
            "The only regions these clients may be sent to.",
            required=True,
            errors="missing or empty; an unknown region; a region listed twice",
        ),
        Key(
            "when_none",
            Shape({"oneOf": FAIL_CLOSED}, "`refuse` | `servfail` | `nodata` | `{answer}`"),
            "What to answer when none of the rule's regions is healthy: it never leaks to"
            " another region. {answer: [...]} is recommended: REFUSED makes resolvers retry"
            " without ECS (RFC 7871 7.3) and negative answers are cached for all of a"
            " resolver's clients (7.4).",
            default="nodata",
            errors="not one of these",
        ),
        Key(
            "min_old",
            Int(0, 16, "a count of regions"),
            "The rollout guard keeps at least this many of the rule's regions healthy on an"
            " approved version while another is updated, and never updates the rule's last one.",
            default=1,
        ),
    ),
    errors="not a mapping",
)

CLIENTS = Section(
    "clients",
    "services.NAME.residency[N].clients",
    "Which clients: a continent code, a list of ISO country codes, a named group from"
    " data/groups.yaml (EU, EEA, ...), client networks (CIDR) or AS numbers. A network or ASN"
    " match outranks every country or continent match.",
    (
        Key(
            "continent",
            Shape(
                {
                    "oneOf": [
                        {"enum": list(CONTINENTS)},
                        {"type": "array", "items": {"enum": list(CONTINENTS)}},
                    ]
                },
                "code or list",
            ),
            f"Continent codes: {', '.join(CONTINENTS)}.",
            default_text="none",
            errors="not a continent code",
        ),
        Key(
            "countries",
            Shape(
                {
                    "oneOf": [
                        {"type": "string", "pattern": "^[A-Za-z]{2}$"},
                        {"type": "array", "items": {"type": "string", "pattern": "^[A-Za-z]{2}$"}},
                    ]
                },
                "code or list",
            ),
            "ISO 3166 country codes.",
            default_text="none",
            errors="not a two-letter code",
        ),
        Key(
            "group",
            Shape(one_or_list({"type": "string"}, 0), "name or list"),
            "Named country groups from data/groups.yaml (EU, EEA, EFTA, GDPR, UK).",
            default_text="none",
            errors="an unknown group",
        ),
        Key(
            "unlocated",
            Bool("{value!r} is not true or false"),
            "Also hold the clients that cannot be located (no country or continent: private or"
            " special-purpose addresses, GeoIP misses, unknown resolvers).",
            default=False,
        ),
        _NETWORKS,
        _ASN,
    ),
    errors="empty or not a mapping; overlaps an earlier rule",
    extra={"minProperties": 1},
)

PREFER_RULE = Section(
    "preferRule",
    "services.NAME.prefer[N]",
    "An ordering preference for clients GeoIP cannot tell apart.",
    (
        Key("clients", Nested("preferClients"), "Which clients.", required=True),
        Key(
            "order",
            REGION_NAMES,
            "Region names, first preferred first.",
            required=True,
            errors="missing or empty; an unknown region; a region listed twice",
        ),
    ),
    errors="not a mapping",
)

PREFER_CLIENTS = Section(
    "preferClients",
    "services.NAME.prefer[N].clients",
    "Networks or ASNs (countries and continents are a latency table's business).",
    (_NETWORKS, _ASN),
    errors="empty or not a mapping",
    extra={"minProperties": 1},
)

COST = Section(
    "cost",
    "services.NAME.cost",
    "The cost budget ([latency and cost](latency-and-cost.md)).",
    (
        Key(
            "within_ms",
            Number(0, 1000, "{value!r} is not a budget in ms (0 to 1000)"),
            "The budget in milliseconds: below what users notice on an inference request, above"
            " the noise of the table's figures.",
            default=20.0,
        ),
    ),
    errors="not a mapping",
)

ANSWER = Section(
    "answer",
    "when_none, unlocated",
    "Fail closed with an in-jurisdiction 'unavailable' endpoint.",
    (
        Key(
            "answer",
            ADDRESSES,
            "Addresses of the 'unavailable' endpoint, answered as a normal A/AAAA answer with"
            " the client's ECS scope and the service TTL.",
            required=True,
            errors="empty; not an IP address",
        ),
    ),
)

HEALTH = Section(
    "health",
    "services.NAME.health, services.NAME.regions.NAME.health",
    "How to check a region: an HTTP GET of `url` or a TCP connect to `tcp`. On a service,"
    " defaults for its regions; a region's own `health` replaces them key by key (`url` and"
    " `tcp` are one slot). A region with neither is not checked and stays up.",
    (
        Key(
            "url",
            Shape(
                {
                    "type": "string",
                    "pattern": "^[Hh][Tt][Tt][Pp][Ss]?://[^/?#]+",
                    "examples": ["https://eu-west-1.internal/healthz"],
                },
                "URL",
            ),
            "An http:// or https:// URL to GET; the check passes on an expected status (and body,"
            " see `require`). Redirects are not followed.",
            default_text="none",
            errors="not an http(s) URL with a host; given with `tcp`",
        ),
        Key(
            "tcp",
            Shape(
                {
                    "type": "string",
                    "pattern": "^(\\[[0-9A-Fa-f:.]+\\]|[^:\\[\\]]+):[0-9]{1,5}$",
                    "examples": ["10.0.0.1:8000"],
                },
                "host:port",
            ),
            "host:port (IPv6 in brackets): the check passes when a TCP connection opens.",
            default_text="none",
            errors="not host:port with a port 1 to 65535",
        ),
        Key(
            "interval",
            SECONDS,
            "Seconds from the start of one probe to the start of the next.",
            default=5.0,
        ),
        Key(
            "timeout",
            SECONDS,
            "Seconds a probe may take, connect and body included.",
            default=2.0,
            errors="above `interval` (a probe would still run when the next one starts)",
        ),
        Key(
            "jitter",
            Number(0, 1, "{value!r} is not a fraction of the interval (0 to 1)"),
            "Each wait is the interval +- this fraction of it, at random, so that probes of many"
            " regions do not line up.",
            default=0.1,
        ),
        Key(
            "rise",
            Int(1, MAX_COUNT, "a count of consecutive probes"),
            "Consecutive successes that bring a down region up.",
            default=2,
        ),
        Key(
            "fall",
            Int(1, MAX_COUNT, "a count of consecutive probes"),
            "Consecutive failures that take an up region down: one lost probe does not flap a"
            " region.",
            default=3,
        ),
        Key(
            "expect",
            Shape(one_or_list(_ref("httpStatus")), "status or list"),
            "HTTP status codes that pass.",
            default=[200],
            errors="empty; not a status code 100 to 599",
        ),
        Key(
            "headers",
            Shape(
                {
                    "type": "object",
                    "propertyNames": {"pattern": "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"},
                    "additionalProperties": {"type": ["string", "number"]},
                    "examples": [{"Authorization": "Bearer ${INFERENCE_TOKEN}"}],
                },
                "name -> value",
            ),
            "Request headers. `${NAME}` in a value is read from the environment at each probe,"
            " so secrets stay out of zone files (a missing variable fails the probe).",
            default_text="none",
            errors="a name that is not an HTTP token; a value with a line break; a malformed"
            " `${...}`",
        ),
        Key(
            "verify_tls",
            Bool(),
            "Verify the server's TLS certificate and host name.",
            default=True,
        ),
        Key(
            "ca_file",
            Shape({"type": "string", "minLength": 1}, "path"),
            "PEM file of CA certificates to verify with, relative to the zone file's directory;"
            " loaded with the zone, so a broken file is a zone error.",
            default_text="the system's CAs",
            errors="missing or unreadable file",
        ),
        Key(
            "keys",
            Nested("bodyKeys"),
            "The JSON body fields read.",
            default_text="see [keys](#bodykeys)",
        ),
        Key(
            "require",
            Shape(
                {
                    "anyOf": [
                        {"enum": list(BODY_FIELDS)},
                        {
                            "type": "array",
                            "items": {"enum": list(BODY_FIELDS)},
                            "uniqueItems": True,
                        },
                    ]
                },
                "field or list",
            ),
            "Body fields that must be present and valid, else the check fails (by default a"
            " missing field is just not reported).",
            default=[],
            errors=f"not one of {', '.join(BODY_FIELDS)}",
        ),
    ),
    errors="not a mapping; `url` and `tcp` both",
    extra={"not": {"required": ["url", "tcp"]}},
)

BODY_KEYS = Section(
    "bodyKeys",
    "health.keys",
    "The JSON fields of a health response that report utilization, version and readiness.",
    (
        Key(
            "utilization",
            Shape({"type": "string", "minLength": 1}, "JSON field"),
            "GPU utilization, 0..1 or a percent (above 1, at most 100).",
            default="gpu_utilization",
            errors="empty or not a string",
        ),
        Key(
            "version",
            Shape({"type": "string", "minLength": 1}, "JSON field"),
            "The model version served (a string or number).",
            default="model_version",
            errors="empty or not a string",
        ),
        Key(
            "ready",
            Shape({"type": "string", "minLength": 1}, "JSON field"),
            "false fails the check.",
            default="ready",
            errors="empty or not a string",
        ),
    ),
    errors="not a mapping",
)

SECTIONS: tuple[Section, ...] = (
    ZONE,
    SOA,
    TTL_VALUES,
    MX,
    SRV,
    CAA,
    SERVICE,
    REGION,
    LOCATION,
    REGION_CAPACITY,
    HEALTH,
    BODY_KEYS,
    CAPACITY,
    BAND,
    VERSION,
    RESIDENCY_RULE,
    CLIENTS,
    ANSWER,
    PREFER_RULE,
    PREFER_CLIENTS,
    COST,
)


@dataclass(frozen=True)
class RecordData:
    """How the records of some types are written under an owner name (`records.OWNER.TYPE`):
    one value, a list of values (one record each), or `{ttl, values}`."""

    types: tuple[str, ...]  # case does not matter; the first ones get a row in the schema
    item: str  # the $defs entry of one record's value
    value: str  # one record's value, for the docs
    doc: str  # what the type holds
    listed: tuple[str, ...] = ()  # the types named in the schema's properties (completion)


RECORD_DATA: tuple[RecordData, ...] = (
    RecordData(
        ("A",),
        "addressA",
        "an IPv4 address as a string",
        "IPv4 addresses.",
        ("A",),
    ),
    RecordData(
        ("AAAA",),
        "addressAAAA",
        'an IPv6 address as a string (`"2001:db8::1"`; scope IDs are refused)',
        "IPv6 addresses.",
        ("AAAA",),
    ),
    RecordData(
        ("CNAME", "NS", "PTR", "DNAME"),
        "name",
        "a domain name",
        "CNAME: the canonical name, nothing else may be at this name (RFC 1034 3.6.2); NS: name"
        " servers of a delegated child zone, only glue A/AAAA may be below it; PTR, DNAME.",
        ("CNAME", "NS", "PTR"),
    ),
    RecordData(
        ("MX",),
        "mxRecord",
        '`"10 mail"` or [`{preference: 10, exchange: mail}`](#mx)',
        "Mail exchangers.",
        ("MX",),
    ),
    RecordData(
        ("TXT", "SPF"),
        "txtRecord",
        "a string is one record (longer than 255 bytes: split into 255-byte strings, as RFC"
        " 7208 3.3 says); a list of strings *inside the list* is one record of several strings:"
        ' `TXT: [["part one", "part two"], "another record"]`. Numbers that YAML would change'
        " (`1.10`) must be quoted.",
        "Text.",
        ("TXT",),
    ),
    RecordData(
        ("SRV",),
        "srvRecord",
        '`"0 5 443 www"` or [`{priority, weight, port, target}`](#srv)',
        "Service locations (RFC 2782).",
        ("SRV",),
    ),
    RecordData(
        ("CAA",),
        "caaRecord",
        "`'0 issue \"letsencrypt.org\"'` or [`{flags: 0, tag: issue, value: letsencrypt.org}`]"
        "(#caa)",
        "Certification authority authorization (RFC 8659).",
        ("CAA",),
    ),
    RecordData(
        (),
        "presentation",
        'master-file presentation format with names relative to the origin: `SSHFP: "1 1'
        ' abc..."`, `TLSA: ...`, `DS: ...`, and RFC 3597 generic form for anything:'
        " `TYPE65534: '\\# 4 0a000001'`",
        "Any other type (or TYPEnnn).",
        ("DS", "HTTPS"),
    ),
)
# Types a zone cannot hold: message-only types, and the apex SOA and NS (top-level keys).
MESSAGE_TYPES = ("OPT", "TSIG", "TKEY", "IXFR", "AXFR", "MAILA", "MAILB", "ANY", "NONE")
# Signatures and denial records come from signing, which geodns does not do (yet).
SIGNED_TYPES = ("RRSIG", "SIG", "NSEC", "NSEC3", "NXT")


if __name__ == "__main__":
    from geodns.zones.keygen import main

    raise SystemExit(main())
