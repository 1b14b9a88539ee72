"""Zone validation: every error names file, line and key, and all of them are reported."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import dns.name
import dns.rdatatype
import pytest

from geodns.errors import ConfigErrors
from geodns.zones.loader import load_zone_file, load_zone_texts, load_zones
from geodns.zones.model import ZoneSet
from tests.conftest import ROOT

HEAD = """\
zone: example.com
soa: {mname: ns1, rname: hostmaster}
ns: [ns1]
"""


def write(tmp_path: Path, text: str, name: str = "example.com.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def errors_of(path: Path) -> list[str]:
    with pytest.raises(ConfigErrors) as info:
        load_zones([path])
    return [str(e) for e in info.value.errors]


def test_the_shipped_zone_loads() -> None:
    zones = load_zones([ROOT / "zones"])
    (zone,) = zones.zones.values()
    assert zone.origin == dns.name.from_text("example.com")
    assert [r.name for s in zone.services.values() for r in s.regions] == [
        "us-east-1",
        "eu-west-1",
        "ap-northeast-1",
    ]


def test_bad_ip_names_file_line_and_key(tmp_path: Path) -> None:
    path = write(tmp_path, HEAD + "records:\n  www:\n    A: [192.0.2.1, 192.0.2.300]\n")
    assert errors_of(path) == [f"{path}:6: records.www.A[1]: '192.0.2.300' is not an IPv4 address"]


def test_several_errors_are_reported_at_once(tmp_path: Path) -> None:
    text = (
        HEAD
        + """\
records:
  www:
    A: 2001:db8::1
    AAAA: 192.0.2.1
  mail: {MX: "ten mail"}
  bad: {FOO: x}
  c: {CNAME: www, A: 192.0.2.1}
  "@": {CNAME: www}
  out.example.org.: {A: 192.0.2.1}
  t: {A: {ttl: forever, values: [192.0.2.1]}}
"""
    )
    errors = errors_of(write(tmp_path, text))
    joined = "\n".join(errors)
    assert len(errors) == 8, joined
    assert ":6: records.www.A[0]: '2001:db8::1' is not an IPv4 address" in joined
    assert ":7: records.www.AAAA[0]: '192.0.2.1' is not an IPv6 address" in joined
    assert ":8: records.mail.MX[0].preference: 'ten' is not preference" in joined
    assert ":9: records.bad.FOO: unknown record type 'FOO'" in joined
    assert ":10: records.c.CNAME: CNAME cannot coexist with other data (A)" in joined
    assert ":11: records.@.CNAME: CNAME is not allowed at the zone apex" in joined
    assert ":12: records.out.example.org.: out.example.org. is outside the zone" in joined
    assert ":13: records.t.A.ttl: 'forever' is not a TTL" in joined


def test_missing_soa_and_ns(tmp_path: Path) -> None:
    errors = errors_of(write(tmp_path, "zone: example.com\nrecords: {www: {A: 192.0.2.1}}\n"))
    assert any("soa: missing SOA" in e for e in errors)
    assert any("ns: missing apex NS" in e for e in errors)


def test_missing_zone_origin(tmp_path: Path) -> None:
    (error,) = errors_of(write(tmp_path, "soa: {}\n"))
    assert "zone: missing zone origin" in error


def test_yaml_syntax_error_has_a_line(tmp_path: Path) -> None:
    (error,) = errors_of(write(tmp_path, HEAD + "records:\n  www: {A: [192.0.2.1}\n"))
    assert error.startswith(f"{tmp_path}/example.com.yaml:5: YAML syntax")


def test_duplicate_keys_are_errors(tmp_path: Path) -> None:
    (error,) = errors_of(
        write(tmp_path, HEAD + "records:\n  www: {A: 192.0.2.1}\n  www: {A: 192.0.2.2}\n")
    )
    assert ":6: records.www: duplicate key 'www'" in error


def test_duplicate_zones_across_files(tmp_path: Path) -> None:
    write(tmp_path, HEAD, "a.yaml")
    write(tmp_path, HEAD, "b.yaml")
    (error,) = errors_of(tmp_path)
    assert f"{tmp_path}/b.yaml:1: zone: duplicate zone example.com.: already defined in" in error


def test_unknown_keys_are_errors(tmp_path: Path) -> None:
    errors = errors_of(write(tmp_path, HEAD + "recrods: {}\nsoa_extra: 1\n"))
    assert any(":4: recrods: unknown key" in e for e in errors)


def test_wrong_types(tmp_path: Path) -> None:
    text = HEAD + "ttl: five\nrecords:\n  www: [192.0.2.1]\n  srv: {SRV: {priority: 1, port: 80}}\n"
    errors = errors_of(write(tmp_path, text))
    joined = "\n".join(errors)
    assert ":4: ttl: 'five' is not a TTL" in joined
    assert ":6: records.www: must be a mapping of record type -> data" in joined
    assert ":7: records.srv.SRV[0]: missing `weight`" in joined


def test_meta_types_and_apex_soa_are_rejected(tmp_path: Path) -> None:
    text = HEAD + "records:\n  www: {OPT: x, ANY: y}\n  '@': {SOA: z, NS: ns2}\n  x: {SOA: z}\n"
    joined = "\n".join(errors_of(write(tmp_path, text)))
    assert "records.www.OPT: OPT is not a record type a zone can hold" in joined
    assert "records.www.ANY: ANY is not a record type a zone can hold" in joined
    assert "records.@.SOA: the apex SOA goes in the top-level `soa:` key" in joined
    assert "records.@.NS: the apex NS goes in the top-level `ns:` key" in joined
    assert "records.x.SOA: SOA is only allowed at the zone apex" in joined


def test_data_below_a_delegation(tmp_path: Path) -> None:
    text = HEAD + (
        "records:\n  sub: {NS: ns.sub, MX: '10 mx'}\n  ns.sub: {A: 192.0.2.1}\n"
        "  www.sub: {TXT: hidden}\n"
    )
    joined = "\n".join(errors_of(write(tmp_path, text)))
    assert "records.sub.MX: MX at the delegation sub.example.com. would never be answered" in joined
    assert "records.www.sub.TXT: www.sub.example.com. is below the delegation" in joined
    assert "ns.sub" not in joined.replace("ns.sub,", "")  # glue is fine


def test_service_validation(tmp_path: Path) -> None:
    text = (
        HEAD
        + """\
records:
  www: {A: 192.0.2.1}
services:
  www:
    regions:
      r1: {addresses: [192.0.2.9]}
  inference:
    regions:
      r1: {addresses: [not-an-ip], location: {lat: 91, lon: 0}}
  empty: {regions: {}}
"""
    )
    joined = "\n".join(errors_of(write(tmp_path, text)))
    assert "services.www: service name www.example.com. also has records" in joined
    assert ":12: services.inference.regions.r1.addresses[0]: 'not-an-ip' is not an IP" in joined
    assert "services.inference.regions.r1.location.lat: 91 is not a lat" in joined
    assert "services.empty.regions: a service needs at least one region" in joined


def test_relative_absolute_and_in_zone_names(tmp_path: Path) -> None:
    text = (
        HEAD
        + """\
ttl: 120
records:
  www: {CNAME: host}
  www2: {CNAME: host.example.com}
  www3: {CNAME: host.example.net.}
  www4.example.com.: {A: 192.0.2.1}
  host:
    ttl: 60
    A: 192.0.2.2
    TXT: {ttl: 30, values: [["part one", "part two"], single]}
  NO: {TXT: on}
"""
    )
    zone = load_zone_file(write(tmp_path, text))
    node = {n.to_text(): rr for n, rr in zone.nodes.items()}
    cname = dns.rdatatype.CNAME
    assert node["www.example.com."][cname][0].target.to_text() == "host.example.com."
    assert node["www2.example.com."][cname][0].target.to_text() == "host.example.com."
    assert node["www3.example.com."][cname][0].target.to_text() == "host.example.net."
    assert "www4.example.com." in node
    assert node["www.example.com."][cname].ttl == 120
    assert node["host.example.com."][dns.rdatatype.A].ttl == 60
    txt = node["host.example.com."][dns.rdatatype.TXT]
    assert txt.ttl == 30
    assert {r.strings for r in txt} == {(b"part one", b"part two"), (b"single",)}
    # YAML 1.2 scalars: NO and on stay strings.
    assert node["no.example.com."][dns.rdatatype.TXT][0].strings == (b"on",)


def test_check_command_ok_and_broken(tmp_path: Path) -> None:
    ok = subprocess.run(
        [sys.executable, "-m", "geodns", "check", str(ROOT / "zones")],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0, ok.stderr
    assert "zone example.com. ok" in ok.stdout
    bad = write(tmp_path, HEAD + "records:\n  www: {A: 192.0.2.300}\n", "bad.yaml")
    result = subprocess.run(
        [sys.executable, "-m", "geodns", "check", str(bad)], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert (
        result.stderr.strip() == f"{bad}:5: records.www.A[0]: '192.0.2.300' is not an IPv4 address"
    )


def test_check_on_a_missing_file(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "geodns", "check", str(tmp_path / "nope.yaml")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "nope.yaml: No such file or directory" in result.stderr


def test_the_texts_a_load_read_give_the_same_zones_whatever_the_files_hold_now(
    tmp_path: Path,
) -> None:
    # A DNS worker's twin takes in the zones the control plane validated from these
    # texts (geodns.server.twin): the files may have been edited, or removed, since.
    write(tmp_path, HEAD + "records:\n  www: {A: 192.0.2.80}\n")
    write(tmp_path, "zone: example.org\nsoa: {mname: ns1, rname: h}\nns: [ns1]\n", "b.yaml")
    loaded = load_zones([tmp_path])
    assert loaded.texts is not None
    assert [file for file, _, _ in loaded.texts.files] == [
        str(tmp_path / "b.yaml"),
        str(tmp_path / "example.com.yaml"),
    ]
    write(tmp_path, HEAD + "records:\n  www: {A: 192.0.2.99}\n")
    (tmp_path / "b.yaml").unlink()
    again = load_zone_texts(loaded.texts)
    assert again == loaded
    assert again.texts == loaded.texts
    origin = dns.name.from_text("example.com")  # the serial is the mtime the load saw
    assert again.zones[origin].soa[0].serial == loaded.zones[origin].soa[0].serial
    assert load_zones([tmp_path]) != loaded  # what the files hold now differs


def test_a_broken_load_keeps_no_texts_and_a_built_zone_set_has_none(tmp_path: Path) -> None:
    path = write(tmp_path, HEAD + "records:\n  www: {A: 192.0.2.300}\n")
    with pytest.raises(ConfigErrors):
        load_zones([path])
    assert ZoneSet({}).texts is None
