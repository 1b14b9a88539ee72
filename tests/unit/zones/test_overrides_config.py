"""`clients: {networks, asn}`, `prefer:`, `cost:` and `asn_database:` in a service: what
loads, and every error with file, line and key; the JSON Schema in step with the loader."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import jsonschema
import pytest

from geodns.errors import ConfigErrors
from geodns.yamlsource import load_yaml
from geodns.zones.loader import load_zone_file
from geodns.zones.model import CostPolicy
from geodns.zones.schema import zone_schema
from tests.geo_fixtures import build_test_mmdb, write_mmdb

HEAD = """\
zone: example.com
soa: {mname: ns1, rname: hostmaster}
ns: [ns1]
services:
  inference:
    regions:
      us-east-1: {addresses: [192.0.2.10], cost: 3}
      eu-west-1: {addresses: [192.0.2.20], cost: 1.5}
"""


def asn_mmdb(path: Path) -> Path:
    """A small ASN database: AS64496 holds 198.18.0.0/16 and 2001:db8::/32's neighbour."""
    records = {
        "24.5.0.0/16": {"autonomous_system_number": 64496, "autonomous_system_organization": "A"},
        "24.6.0.0/16": {"autonomous_system_number": 64497, "autonomous_system_organization": "B"},
    }
    return write_mmdb(path, records, "GeoLite2-ASN")


def load(tmp_path: Path, body: str):
    path = tmp_path / "z.yaml"
    path.write_text(HEAD + body)
    return load_zone_file(path)


def errors(tmp_path: Path, body: str) -> list[str]:
    with pytest.raises(ConfigErrors) as info:
        load(tmp_path, body)
    return [str(e).split("z.yaml", 1)[1] for e in info.value.errors]


GOOD = """\
    asn_database: asn.mmdb
    cost: {within_ms: 25}
    residency:
      - clients: {networks: [10.20.0.0/16, "2001:db8:1::/48"]}
        regions: [eu-west-1]
      - clients: {asn: [AS64497]}
        regions: [us-east-1]
      - clients: {continent: EU}
        regions: [eu-west-1]
    prefer:
      - clients: {networks: 24.5.6.0/24, asn: 64496}
        order: [eu-west-1, us-east-1]
"""


def test_a_service_with_overrides_and_a_budget_loads(tmp_path: Path) -> None:
    asn_mmdb(tmp_path / "asn.mmdb")
    (zone,) = [load(tmp_path, GOOD)]
    (service,) = zone.services.values()
    rules = service.residency
    assert rules[0].clients.networks == (
        ipaddress.ip_network("10.20.0.0/16"),
        ipaddress.ip_network("2001:db8:1::/48"),
    )
    assert rules[1].clients.asns == {64497}
    assert rules[1].clients.description == "ASNs AS64497"
    assert service.prefer[0].order == ("eu-west-1", "us-east-1")
    assert service.prefer[0].clients.asns == {64496}
    assert service.cost == CostPolicy(25.0)
    assert [r.cost for r in service.regions] == [3.0, 1.5]
    assert service.asn_database == str(tmp_path / "asn.mmdb")
    jsonschema.Draft202012Validator(zone_schema()).validate(
        load_yaml((tmp_path / "z.yaml").read_text(), "z.yaml").data
    )


def test_asn_without_a_database_is_refused(tmp_path: Path) -> None:
    assert errors(
        tmp_path, "    residency:\n      - {clients: {asn: 64496}, regions: [us-east-1]}\n"
    ) == [
        ":10: services.inference.residency[0].clients.asn: needs an ASN database: set the"
        " service's `asn_database:` to a GeoLite2-ASN or DB-IP ASN Lite .mmdb file"
    ]


def test_the_asn_database_must_be_an_asn_database(tmp_path: Path) -> None:
    build_test_mmdb(tmp_path / "city.mmdb")
    out = errors(tmp_path, "    asn_database: city.mmdb\n")
    assert len(out) == 1 and out[0].startswith(":9: services.inference.asn_database: cannot use")
    assert "a GeoIP2-City database, not an ASN one" in out[0]
    out = errors(tmp_path, "    asn_database: missing.mmdb\n")
    assert out[0].endswith("missing.mmdb: ASN database file not found")


def test_every_override_error_with_its_line(tmp_path: Path) -> None:
    asn_mmdb(tmp_path / "asn.mmdb")
    body = """\
    asn_database: asn.mmdb
    residency:
      - clients: {networks: [10.0.0.0/8, 10.1.0.0/33, 10.1.2.3/16]}
        regions: [eu-west-1]
      - clients: {networks: 10.9.0.0/16, asn: [AS64496, 0, x]}
        regions: [us-east-1]
      - clients: {asn: 64496}
        regions: [us-east-1]
    prefer:
      - clients: {countries: [DE]}
        order: [eu-west-1]
      - clients: {networks: 10.0.0.0/8}
        order: [mars-1]
"""
    assert errors(tmp_path, body) == [
        ":11: services.inference.residency[0].clients.networks[1]: '10.1.0.0/33' is not a"
        " network in CIDR notation ('10.1.0.0/33' does not appear to be an IPv4 or IPv6"
        " network)",
        ":11: services.inference.residency[0].clients.networks[2]: '10.1.2.3/16' is not a"
        " network in CIDR notation (10.1.2.3/16 has host bits set)",
        ":13: services.inference.residency[1].clients.asn[1]: 0 is not an AS number (like"
        " 64496 or AS64496)",
        ":13: services.inference.residency[1].clients.asn[2]: 'x' is not an AS number (like"
        " 64496 or AS64496)",
        ":13: services.inference.residency[1].clients: overlaps rule 0 (10.9.0.0/16): a client"
        " must match one rule only",
        ":15: services.inference.residency[2].clients: overlaps rule 1 (AS64496): a client"
        " must match one rule only",
        # Ordering by country is the latency table's: a preference names overrides only.
        ":18: services.inference.prefer[0].clients.countries: unknown key (expected one of"
        " asn, networks)",
        ":21: services.inference.prefer[1].order[0]: unknown region 'mars-1' (this service"
        " has: eu-west-1, us-east-1)",
    ]


def test_a_budget_needs_every_regions_cost(tmp_path: Path) -> None:
    path = tmp_path / "z.yaml"
    path.write_text(
        HEAD.replace(", cost: 3}", "}").replace("cost: 1.5", "cost: -1")
        + "    cost: {within_ms: 2000, within: 3}\n"
    )
    with pytest.raises(ConfigErrors) as info:
        load_zone_file(path)
    assert [str(e).split("z.yaml", 1)[1] for e in info.value.errors] == [
        ":7: services.inference.regions.us-east-1: needs `cost:` (relative units): the"
        " service's cost budget compares them",
        ":8: services.inference.regions.eu-west-1.cost: -1 is not a cost (a number, 0 or more)",
        ":9: services.inference.cost.within: unknown key (did you mean within_ms?)",
        ":9: services.inference.cost.within_ms: 2000 is not a budget in ms (0 to 1000)",
    ]
