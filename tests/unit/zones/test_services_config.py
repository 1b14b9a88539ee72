"""Validation of the `services:` section: every error with file, line and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from geodns.errors import ConfigErrors
from geodns.zones.loader import load_zone_file
from geodns.zones.model import FailClosed

HEAD = """\
zone: example.com
soa: {mname: ns1, rname: hostmaster}
ns: [ns1]
services:
  inference:
"""


def errors(tmp_path: Path, body: str) -> str:
    path = tmp_path / "z.yaml"
    path.write_text(HEAD + body)
    with pytest.raises(ConfigErrors) as info:
        load_zone_file(path)
    return "\n".join(str(e) for e in info.value.errors)


REGIONS = """\
    regions:
      us-east-1: {addresses: [192.0.2.10]}
      eu-west-1: {addresses: [192.0.2.20]}
"""


def test_unknown_regions_in_rules_and_default_order(tmp_path: Path) -> None:
    out = errors(
        tmp_path,
        REGIONS
        + """\
    default_order: [us-east-1, mars-1]
    residency:
      - clients: {continent: EU}
        regions: [eu-west-2]
""",
    )
    assert ":9: services.inference.default_order[1]: unknown region 'mars-1'" in out
    assert ":12: services.inference.residency[0].regions[0]: unknown region 'eu-west-2'" in out


def test_overlapping_rules(tmp_path: Path) -> None:
    out = errors(
        tmp_path,
        REGIONS
        + """\
    residency:
      - clients: {group: EEA}
        regions: [eu-west-1]
      - clients: {countries: [NO, US]}
        regions: [us-east-1]
""",
    )
    assert "services.inference.residency[1].clients: overlaps rule 0 (NO)" in out


def test_bad_watermarks_and_choices(tmp_path: Path) -> None:
    out = errors(
        tmp_path,
        REGIONS
        + """\
    capacity: {low: 0.9, high: 0.8}
    when_all_down: panic
    answers: 0
""",
    )
    assert "services.inference.capacity: low (0.9) must be below high (0.8)" in out
    assert "services.inference.when_all_down: 'panic' is not one of answer_all, servfail" in out
    assert "services.inference.answers: 0 is not a count of regions (1 to 16)" in out
    out = errors(tmp_path, REGIONS + "    capacity: {low: 1.5}\n")
    assert "services.inference.capacity.low: 1.5 is not a utilization ratio (0 to 1)" in out


def test_empty_regions_and_bad_rules(tmp_path: Path) -> None:
    out = errors(tmp_path, "    regions: {}\n")
    assert "services.inference.regions: a service needs at least one region" in out
    out = errors(
        tmp_path,
        REGIONS
        + """\
    residency:
      - clients: {continent: Europe, group: NOPE, countries: [USA]}
        regions: [eu-west-1]
        when_none: shrug
""",
    )
    assert "residency[0].clients.continent: 'Europe' is not a continent code" in out
    assert "residency[0].clients.group: unknown country group 'NOPE'" in out
    assert "residency[0].clients.countries[0]: 'USA' is not an ISO 3166 country code" in out
    assert "residency[0].when_none: 'shrug' is not one of refuse, servfail, nodata" in out


def test_region_names_must_be_labels_and_names_are_owned(tmp_path: Path) -> None:
    out = errors(tmp_path, "    regions:\n      us_east: {addresses: [192.0.2.1]}\n")
    assert "region name 'us_east' must be a DNS label" in out
    path = tmp_path / "z.yaml"
    path.write_text(
        HEAD.replace("services:", "records:\n  us-east-1.inference: {A: 192.0.2.9}\nservices:")
        + REGIONS
    )
    with pytest.raises(ConfigErrors) as info:
        load_zone_file(path)
    assert "is the host name of region us-east-1 of inference.example.com" in str(info.value)


def test_latency_file_is_checked_and_relative_to_the_zone(tmp_path: Path) -> None:
    out = errors(tmp_path, REGIONS + "    latency: nope.yaml\n")
    assert f"services.inference.latency: cannot use {tmp_path}/nope.yaml" in out
    (tmp_path / "lat.yaml").write_text(
        "source: test\nregions: [us-east-1, eu-west-1]\n"
        "countries: {GB: {us-east-1: 80, eu-west-1: 10}}\ncontinents: {}\n"
    )
    path = tmp_path / "z.yaml"
    path.write_text(HEAD + REGIONS + "    latency: lat.yaml\n")
    (service,) = load_zone_file(path).services.values()
    assert service.latency == f"{tmp_path}/lat.yaml"


def test_region_port_and_version(tmp_path: Path) -> None:
    path = tmp_path / "z.yaml"
    path.write_text(
        HEAD
        + """\
    port: 8443
    regions:
      us-east-1: {addresses: [192.0.2.10], port: 9001, version: 41.5}
      eu-west-1: {addresses: [192.0.2.20]}
"""
    )
    service = next(iter(load_zone_file(path).services.values()))
    us, eu = service.regions
    assert (us.port, us.version) == (9001, "41.5")
    assert (eu.port, eu.version) == (None, None)
    out = errors(
        tmp_path,
        """\
    regions:
      us-east-1: {addresses: [192.0.2.10], port: 0, version: [1]}
""",
    )
    assert ":7: services.inference.regions.us-east-1.port: " in out
    assert ":7: services.inference.regions.us-east-1.version: [1] is not a model version" in out


def test_fail_closed_answers_unlocated_clients_and_min_old(tmp_path: Path) -> None:
    path = tmp_path / "z.yaml"
    path.write_text(
        HEAD
        + REGIONS
        + """\
    residency:
      - clients: {continent: EU, unlocated: true}
        regions: [eu-west-1]
        when_none: {answer: [192.0.2.99, "2001:db8::99"]}
        min_old: 0
      - clients: {countries: [US]}
        regions: [us-east-1]
"""
    )
    (service,) = load_zone_file(path).services.values()
    eu, us = service.residency
    assert eu.when_none == FailClosed("answer", ("192.0.2.99", "2001:db8::99"))
    assert eu.clients.unlocated and eu.clients.matches(None, None)
    assert not us.clients.matches(None, None)
    assert (eu.min_old, us.min_old) == (0, 1)
    assert us.when_none == FailClosed("nodata")  # the default: it never leaks
    assert eu.describe() == "residency rule 0 (continent EU; unlocated clients)"
    assert service.unlocated is None


def test_service_level_unlocated(tmp_path: Path) -> None:
    path = tmp_path / "z.yaml"
    path.write_text(HEAD + REGIONS + "    unlocated: {answer: 192.0.2.99}\n")
    (service,) = load_zone_file(path).services.values()
    assert service.unlocated == FailClosed("answer", ("192.0.2.99",))


def test_fail_closed_errors(tmp_path: Path) -> None:
    out = errors(
        tmp_path,
        REGIONS
        + """\
    unlocated: {answer: []}
    residency:
      - clients: {unlocated: yes please}
        regions: [eu-west-1]
        when_none: {answer: [not-an-address]}
        min_old: -1
      - clients: {continent: EU, unlocated: true}
        regions: [eu-west-1]
      - clients: {countries: [US], unlocated: true}
        regions: [us-east-1]
        when_none: {refuse: true}
      - clients: {countries: [JP], unlocated: true}
        regions: [us-east-1]
""",
    )
    assert ":9: services.inference.unlocated.answer: an 'unavailable' endpoint needs" in out
    assert "residency[0].clients.unlocated: 'yes please' is not true or false" in out
    assert "residency[0].when_none.answer[0]: 'not-an-address' is not an IP address" in out
    assert "residency[0].min_old:" in out
    assert "residency[2].when_none: {'refuse': True} is not one of refuse, servfail," in out
    assert "residency[3].clients: overlaps rule 1 (unlocated)" in out
    assert "services.inference.unlocated: a residency rule already holds unlocated" in out
