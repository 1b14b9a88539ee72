"""The zone JSON Schema accepts what the loader accepts and rejects what it rejects."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest

from geodns.errors import ConfigErrors
from geodns.yamlsource import load_yaml
from geodns.zones.loader import build_zone
from geodns.zones.schema import zone_schema

REPO = Path(__file__).resolve().parents[3]
ZONE_FILES = sorted(
    [*(REPO / "geodns" / "example").glob("*.y*ml"), *(REPO / "zones").glob("*.y*ml")]
)

HEAD = """\
zone: example.com
soa: {mname: ns1, rname: hostmaster@example.com}
ns: [ns1]
"""


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(zone_schema())


def parse(text: str) -> Any:
    return load_yaml(text, "test.yaml").data


def test_schema_is_a_valid_2020_12_schema() -> None:
    schema = zone_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] and schema["title"] and schema["description"]


def test_zone_schema_returns_a_fresh_copy() -> None:
    zone_schema()["title"] = "changed"
    assert zone_schema()["title"] != "changed"


def test_there_are_zone_files_to_check() -> None:
    assert len(ZONE_FILES) >= 2


@pytest.mark.parametrize("path", ZONE_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_shipped_zone_files_validate(
    path: Path, validator: jsonschema.Draft202012Validator
) -> None:
    data = parse(path.read_text(encoding="utf-8"))
    validator.validate(data)


# Unusual documents the loader accepts: the schema must accept them too.
ACCEPTED = {
    "lower-case types": HEAD + "records:\n  www: {a: 192.0.2.1, txt: hi}\n",
    "RFC 3597 type": HEAD + "records:\n  x: {TYPE65534: '\\# 4 0a000001'}\n",
    "per-RRset ttl": HEAD + "records:\n  www: {A: {ttl: 60, values: [192.0.2.1]}}\n",
    "per-owner ttl": HEAD + "records:\n  www: {ttl: 60, A: 192.0.2.1}\n",
    "multi-string TXT": HEAD + "records:\n  '@': {TXT: [[one, two], three]}\n",
    "MX and SRV mappings": HEAD
    + "records:\n  '@': {MX: {preference: 10, exchange: mail}}\n"
    + "  _x._tcp: {SRV: [{priority: 0, weight: 5, port: 443, target: www}]}\n",
    "CAA mapping": HEAD + "records:\n  '@': {CAA: {flags: 0, tag: issue, value: ca.example}}\n",
    "apex NS with a ttl": HEAD.replace("ns: [ns1]", "ns: {ttl: 86400, values: [ns1, ns2.x.]}"),
    "numeric serial, SOA ttl": HEAD.replace("rname:", "serial: 2024060101, ttl: 60, rname:"),
    "null sections": HEAD + "records:\nservices:\n",
    "service without location": HEAD
    + "services:\n  api: {regions: {eu: {addresses: 192.0.2.1, location: null}}}\n",
}


@pytest.mark.parametrize("name", ACCEPTED)
def test_loader_and_schema_accept(name: str, validator: jsonschema.Draft202012Validator) -> None:
    doc = load_yaml(ACCEPTED[name], "test.yaml")
    build_zone(doc)
    validator.validate(doc.data)


# Broken documents: the loader rejects each one, and so must the schema.
REJECTED = {
    "unknown top-level key": HEAD + "recrods: {}\n",
    "ttl is a string": HEAD + 'ttl: "300"\n',
    "ttl is a boolean": HEAD + "ttl: true\n",
    "ttl out of range": HEAD + "ttl: -1\n",
    "missing soa": "zone: example.com\nns: [ns1]\n",
    "missing zone": "soa: {mname: ns1, rname: h}\nns: [ns1]\n",
    "unknown soa key": HEAD.replace("rname:", "serail: 1, rname:"),
    "empty ns": HEAD.replace("ns: [ns1]", "ns: []"),
    "SOA below the apex": HEAD + "records:\n  www: {SOA: 'ns1 h 1 2 3 4 5'}\n",
    "apex NS under records": HEAD + "records:\n  '@': {NS: ns2}\n",
    "meta type": HEAD + "records:\n  www: {ANY: x}\n",
    "type name with a space": HEAD + "records:\n  www: {'A A': 192.0.2.1}\n",
    "owner is not a mapping": HEAD + "records:\n  www: 192.0.2.1\n",
    "MX mapping missing exchange": HEAD + "records:\n  '@': {MX: {preference: 10}}\n",
    "MX preference as text": HEAD + "records:\n  '@': {MX: {preference: '10', exchange: m}}\n",
    "RRset mapping with a typo": HEAD + "records:\n  www: {A: {ttl: 60, value: 192.0.2.1}}\n",
    "empty A list": HEAD + "records:\n  www: {A: []}\n",
    "service without regions": HEAD + "services:\n  api: {ttl: 30}\n",
    "region without addresses": HEAD + "services:\n  api: {regions: {eu: {location: null}}}\n",
    "location without lon": (
        HEAD + "services:\n  api: {regions: {eu: {addresses: [192.0.2.1], location: {lat: 1}}}}\n"
    ),
    "latitude out of range": (
        HEAD + "services:\n  api:\n    regions:\n      eu:\n        addresses: [192.0.2.1]\n"
        "        location: {lat: 91, lon: 0}\n"
    ),
    "empty region version": (
        HEAD + "services:\n  api: {regions: {eu: {addresses: [192.0.2.1], version: ''}}}\n"
    ),
    "empty latency path": (
        HEAD + "services:\n  api: {latency: '', regions: {eu: {addresses: [192.0.2.1]}}}\n"
    ),
    "unknown region key": (
        HEAD + "services:\n  api: {regions: {eu: {addresses: [192.0.2.1], weight: 2}}}\n"
    ),
}


@pytest.mark.parametrize("name", REJECTED)
def test_loader_and_schema_reject(name: str, validator: jsonschema.Draft202012Validator) -> None:
    doc = load_yaml(REJECTED[name], "test.yaml")
    with pytest.raises(ConfigErrors):
        build_zone(doc)
    assert not validator.is_valid(doc.data)
