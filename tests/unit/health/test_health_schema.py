"""The zone JSON Schema and the loader agree on the `health:` keys."""

from __future__ import annotations

import jsonschema
import pytest

from geodns.errors import ConfigErrors
from geodns.yamlsource import load_yaml
from geodns.zones.loader import build_zone
from geodns.zones.schema import zone_schema

HEAD = """\
zone: example.com
soa: {mname: ns1, rname: hostmaster@example.com}
ns: [ns1]
services:
  api:
"""


def service(health: str, region_health: str = "") -> str:
    text = HEAD
    if health:
        text += f"    health: {health}\n"
    text += "    regions:\n      eu: {addresses: [192.0.2.1]"
    if region_health:
        text += f", health: {region_health}"
    return text + "}\n"


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(zone_schema())


ACCEPTED = {
    "url only": service("", "{url: 'https://eu.internal/healthz'}"),
    "tcp only": service("", "{tcp: '10.0.0.1:8000'}"),
    "tcp IPv6": service("", "{tcp: '[2001:db8::1]:8000'}"),
    "service defaults": service(
        "{interval: 10, timeout: 2.5, jitter: 0, rise: 1, fall: 5, expect: 204}",
        "{url: 'http://eu.internal:8080/h'}",
    ),
    "every key": service(
        "{headers: {Authorization: 'Bearer ${TOKEN}', X-N: 3}, verify_tls: false,"
        " keys: {utilization: load, version: v, ready: ok}, require: [utilization, ready],"
        " expect: [200, 204]}",
        "{url: 'https://eu.internal/healthz'}",
    ),
    "require one field": service("", "{url: 'http://eu.internal/', require: version}"),
    "defaults without a target": service("{interval: 3}"),
}


@pytest.mark.parametrize("name", ACCEPTED)
def test_loader_and_schema_accept(name: str, validator: jsonschema.Draft202012Validator) -> None:
    doc = load_yaml(ACCEPTED[name], "test.yaml")
    build_zone(doc)
    validator.validate(doc.data)


REJECTED = {
    "unknown key": service("", "{url: 'http://eu.internal/', colour: 1}"),
    "url and tcp": service("", "{url: 'http://eu.internal/', tcp: 'eu.internal:80'}"),
    "ftp url": service("", "{url: 'ftp://eu.internal/'}"),
    "tcp without port": service("", "{tcp: eu.internal}"),
    "zero interval": service("{interval: 0}"),
    "interval as text": service("{interval: '5'}"),
    "jitter above 1": service("{jitter: 2}"),
    "rise 0": service("{rise: 0}"),
    "status 600": service("{expect: [600]}"),
    "verify_tls as text": service("{verify_tls: 'no'}"),
    "unknown body key": service("{keys: {load: x}}"),
    "unknown required field": service("{require: [load]}"),
    "bad header name": service("{headers: {'a b': x}}"),
    "health is a list": service("[]"),
}


@pytest.mark.parametrize("name", REJECTED)
def test_loader_and_schema_reject(name: str, validator: jsonschema.Draft202012Validator) -> None:
    doc = load_yaml(REJECTED[name], "test.yaml")
    with pytest.raises(ConfigErrors):
        build_zone(doc)
    assert not validator.is_valid(doc.data)
