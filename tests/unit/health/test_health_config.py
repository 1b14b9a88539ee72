"""The `health:` keys of services and regions: defaults, merging, and errors with file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from geodns.errors import ConfigErrors
from geodns.zones.healthspec import BodyKeys, HealthCheck
from geodns.zones.loader import load_zone_file
from geodns.zones.model import Region

HEAD = """\
zone: example.com
soa: {mname: ns1, rname: hostmaster}
ns: [ns1]
services:
  inference:
"""


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "example.com.yaml"
    path.write_text(HEAD + body)
    return path


def regions(tmp_path: Path, body: str) -> dict[str, Region]:
    zone = load_zone_file(write(tmp_path, body))
    (service,) = zone.services.values()
    return {r.name: r for r in service.regions}


def errors(tmp_path: Path, body: str) -> list[str]:
    with pytest.raises(ConfigErrors) as info:
        load_zone_file(write(tmp_path, body))
    return [str(e) for e in info.value.errors]


def test_defaults_and_unchecked_regions(tmp_path: Path) -> None:
    got = regions(
        tmp_path,
        """\
    regions:
      a: {addresses: [192.0.2.1], health: {url: "https://a.internal/healthz"}}
      b: {addresses: [192.0.2.2]}
""",
    )
    assert got["a"].health == HealthCheck(url="https://a.internal/healthz")
    check = got["a"].health
    assert check is not None
    timing = (check.interval, check.timeout, check.jitter, check.rise, check.fall)
    assert timing == (5.0, 2.0, 0.1, 2, 3)
    assert check.expect == (200,) and check.verify_tls and check.ca_file is None
    assert check.keys == BodyKeys("gpu_utilization", "model_version", "ready")
    assert check.require == frozenset() and check.kind == "http"
    assert got["b"].health is None  # no target: not checked, stays up
    hash(got["a"])  # a Region with a check is still a hashable value


def test_service_defaults_are_overridden_key_by_key(tmp_path: Path) -> None:
    got = regions(
        tmp_path,
        """\
    health:
      tcp: "10.0.0.1:8000"
      interval: 10
      timeout: 3
      headers: {Authorization: "Bearer ${INFERENCE_TOKEN}"}
      keys: {utilization: load}
      require: utilization
    regions:
      a:
        addresses: [192.0.2.1]
        health: {url: "http://a.internal:8080/healthz", interval: 4, expect: [200, 204]}
      b: {addresses: [192.0.2.2]}
      c:
        addresses: [192.0.2.3]
        health: {tcp: "[2001:db8::1]:9000", headers: {X-Region: c}}
""",
    )
    a, b, c = got["a"].health, got["b"].health, got["c"].health
    assert a is not None and b is not None and c is not None
    # A region's url replaces the service's tcp: the target is one slot.
    assert (a.url, a.tcp, a.interval, a.timeout, a.expect) == (
        "http://a.internal:8080/healthz",
        None,
        4.0,
        3.0,
        (200, 204),
    )
    assert a.headers == (("Authorization", "Bearer ${INFERENCE_TOKEN}"),)
    assert a.keys == BodyKeys(utilization="load") and a.require == {"utilization"}
    assert (b.tcp, b.interval, b.kind, b.target) == (
        ("10.0.0.1", 8000),
        10.0,
        "tcp",
        "10.0.0.1:8000",
    )
    assert c.tcp == ("2001:db8::1", 9000) and c.target == "[2001:db8::1]:9000"
    assert c.headers == (("X-Region", "c"),)  # headers are replaced whole, not merged


def test_ca_file_is_relative_to_the_zone_file(tmp_path: Path) -> None:
    import ssl

    ca = tmp_path / "certs" / "ca.pem"
    ca.parent.mkdir()
    # Any loadable PEM bundle will do: the system's, if it has one.
    system = ssl.get_default_verify_paths().cafile
    if system is None:
        pytest.skip("no system CA bundle to copy")
    ca.write_bytes(Path(system).read_bytes())
    got = regions(
        tmp_path,
        """\
    regions:
      a:
        addresses: [192.0.2.1]
        health: {url: "https://a.internal/healthz", ca_file: certs/ca.pem, verify_tls: true}
""",
    )
    assert got["a"].health is not None and got["a"].health.ca_file == str(ca)


def test_every_bad_value_is_reported_with_file_line_and_key(tmp_path: Path) -> None:
    out = errors(
        tmp_path,
        """\
    health: {interval: 0, rise: 0, color: blue}
    regions:
      eu-west-1:
        addresses: [192.0.2.1]
        health:
          url: ftp://a.internal/
          timeout: "2"
          jitter: 1.5
          fall: true
          expect: [200, 700]
          headers: {"Bad Name": x, X-Token: "${1BAD}", X-Open: "${TOKEN", X-List: [1]}
          verify_tls: "yes"
          ca_file: nosuch.pem
          keys: {utilization: 3, speed: x}
          require: [utilization, colour]
      us-east-1:
        addresses: [192.0.2.2]
        health: {url: "http://u.internal/", tcp: "u.internal:80"}
      ap-1: {addresses: [192.0.2.3], health: {tcp: "2001:db8::1:80"}}
      ap-2: {addresses: [192.0.2.4], health: [url]}
""",
    )
    f = f"{tmp_path}/example.com.yaml"
    expected = [
        f"{f}:6: services.inference.health.interval: 0 is out of range (above 0, at most 86400)",
        f"{f}:6: services.inference.health.rise: 0 is not a count of consecutive probes (1 to 100)",
        f"{f}:6: services.inference.health.color: unknown key (expected one of ca_file, expect,",
        f"{f}:11: services.inference.regions.eu-west-1.health.url: 'ftp://a.internal/' is not an"
        " http:// or https:// URL with a host",
        f"{f}:12: services.inference.regions.eu-west-1.health.timeout: '2' is not a number of"
        " seconds",
        f"{f}:13: services.inference.regions.eu-west-1.health.jitter: 1.5 is not a fraction of the"
        " interval (0 to 1)",
        f"{f}:14: services.inference.regions.eu-west-1.health.fall: True is not a count",
        f"{f}:15: services.inference.regions.eu-west-1.health.expect[1]: 700 is not an HTTP status"
        " code (100 to 599)",
        f"{f}:16: services.inference.regions.eu-west-1.health.headers.Bad Name: 'Bad Name' is not"
        " an HTTP header name",
        f"{f}:16: services.inference.regions.eu-west-1.health.headers.X-Token: ${{1BAD}} is not an"
        " environment variable name",
        f"{f}:16: services.inference.regions.eu-west-1.health.headers.X-Open: unterminated ${{",
        f"{f}:16: services.inference.regions.eu-west-1.health.headers.X-List: [1] is not a header"
        " value",
        f"{f}:17: services.inference.regions.eu-west-1.health.verify_tls: must be true or false",
        f"{f}:18: services.inference.regions.eu-west-1.health.ca_file: cannot use {tmp_path}/"
        "nosuch.pem as CA certificates: No such file or directory",
        f"{f}:19: services.inference.regions.eu-west-1.health.keys.speed: unknown key",
        f"{f}:19: services.inference.regions.eu-west-1.health.keys.utilization: 3 is not a JSON"
        " field name",
        f"{f}:20: services.inference.regions.eu-west-1.health.require[1]: 'colour' is not one of"
        " utilization, version, ready",
        f"{f}:23: services.inference.regions.us-east-1.health: give either `url` or `tcp`, not"
        " both",
        f"{f}:24: services.inference.regions.ap-1.health.tcp: '2001:db8::1:80' is not host:port",
        f"{f}:25: services.inference.regions.ap-2.health: must be a mapping",
    ]
    for line in expected:
        assert any(e.startswith(line) for e in out), f"{line}\nnot in:\n" + "\n".join(out)
    # The service's bad defaults are reported once, where they are written, not per region.
    assert sum("services.inference.health.interval" in e for e in out) == 1


def test_timeout_must_not_exceed_interval(tmp_path: Path) -> None:
    out = errors(
        tmp_path,
        """\
    health: {timeout: 8}
    regions:
      a: {addresses: [192.0.2.1], health: {url: "http://a.internal/", interval: 5}}
      b: {addresses: [192.0.2.2], health: {url: "http://b.internal/"}}
      c: {addresses: [192.0.2.3], health: {url: "http://c.internal/", interval: 10}}
""",
    )
    f = f"{tmp_path}/example.com.yaml"
    assert out == [
        f"{f}:8: services.inference.regions.a.health.interval: timeout (8s) must not exceed"
        " interval (5s): a probe would still run when the next one starts",
        f"{f}:9: services.inference.regions.b.health: timeout (8s) must not exceed interval (5s):"
        " a probe would still run when the next one starts",
    ]
