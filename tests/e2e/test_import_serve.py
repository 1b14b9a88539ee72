"""`geodns import` of a BIND zone, served: every RRset of the master file is answered as written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import dns.message
import dns.rdatatype
import dns.zone

from tests.conftest import ROOT, running_server

BIND_ZONE = """\
$ORIGIN corp.example.
$TTL 1h
@       IN SOA ns1 hostmaster (
            2026112501 ; serial
            2h         ; refresh
            30m        ; retry
            2w         ; expire
            5m )       ; minimum
        IN NS  ns1
        IN NS  ns2.provider.example.
        IN MX  10 mail
        IN TXT "v=spf1 mx -all"
ns1     IN A     192.0.2.1
        IN AAAA  2001:db8::1
mail    300 IN A 192.0.2.25
www     IN A     192.0.2.80
        IN A     192.0.2.81
ftp     IN CNAME www
_sip._tcp IN SRV 10 60 5060 sip
sip     IN A 192.0.2.50
multi   IN TXT "first string" "second string"
$ORIGIN lab.corp.example.
gpu1    IN A 192.0.2.101
"""


def test_imported_bind_zone_serves_the_same_rrsets(tmp_path: Path) -> None:
    master = tmp_path / "corp.example.zone"
    master.write_text(BIND_ZONE)
    result = subprocess.run(
        [sys.executable, "-m", "geodns", "import", str(master)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    zones = tmp_path / "zones"
    zones.mkdir()
    (zones / "corp.example.yaml").write_text(result.stdout)
    original = dns.zone.from_text(BIND_ZONE, relativize=False)
    with running_server(zones, listen=("127.0.0.1:0",)) as srv:
        asked = 0
        for name, node in original.nodes.items():
            for rdataset in node.rdatasets:
                reply = srv.tcp(dns.message.make_query(name, rdataset.rdtype))
                served = reply.find_rrset(reply.answer, name, rdataset.rdclass, rdataset.rdtype)
                assert served.to_rdataset() == rdataset, f"{name} {rdataset.rdtype}"
                assert served.ttl == rdataset.ttl
                asked += 1
        assert asked == 13


def test_export_of_the_example_zone_reads_back(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "geodns", "export", str(ROOT / "zones" / "example.com.yaml")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    zone = dns.zone.from_text(result.stdout, relativize=False)
    assert zone.origin.to_text() == "example.com."
    www = zone.find_rdataset("www.example.com.", dns.rdatatype.A)
    assert {r.address for r in www} == {"192.0.2.80", "192.0.2.81"}
    assert "; services not exported" in result.stdout


def test_import_that_does_not_validate_is_an_error(tmp_path: Path) -> None:
    master = tmp_path / "bad.zone"
    master.write_text(
        "$ORIGIN x.example.\n$TTL 60\n@ SOA ns1 h 1 2 3 4 5\n@ NS ns1\n"
        "sub NS ns.sub\nwww.sub TXT hidden\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "geodns", "import", str(master)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 2
    assert "does not validate" in result.stderr
    assert "below the delegation" in result.stderr
    assert result.stdout == ""
