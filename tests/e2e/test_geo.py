"""Geo answers from the real server: ECS and source address in, the right region and scope out."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import dns.edns
import dns.message
import dns.rcode
import dns.rdatatype
import pytest

from geodns.geo.embedded import data_dir
from tests.conftest import (
    EXAMPLE_ZONES,
    REQUIRE_TOOLS,
    ROOT,
    ServerProcess,
    running_server,
    wait_for,
)
from tests.geo_fixtures import build_test_mmdb, write_mmdb

Rcode = dns.rcode.Rcode
EU, US, AP = "192.0.2.20", "192.0.2.10", "192.0.2.30"
UNAVAILABLE = "192.0.2.29"  # the example zone's in-jurisdiction fail-closed answer


@pytest.fixture(scope="module")
def mmdb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_test_mmdb(tmp_path_factory.mktemp("geo") / "test-city.mmdb")


@pytest.fixture(scope="module")
def geo(mmdb: Path) -> Iterator[ServerProcess]:
    with running_server(EXAMPLE_ZONES, "--geoip-database", str(mmdb)) as srv:
        yield srv


def ask(
    srv: ServerProcess, subnet: str | None, rdtype: str = "A", name: str = "inference.example.com"
) -> dns.message.Message:
    options = []
    if subnet is not None:
        address, prefix = subnet.split("/")
        options.append(dns.edns.ECSOption(address, int(prefix)))
    return srv.udp(dns.message.make_query(name, rdtype, use_edns=0, options=options))


def addresses(reply: dns.message.Message) -> list[str]:
    return [r.address for rrset in reply.answer if rrset.rdtype in (1, 28) for r in rrset]


def scope(reply: dns.message.Message) -> int:
    (ecs,) = [o for o in reply.options if isinstance(o, dns.edns.ECSOption)]
    return ecs.scopelen


@pytest.mark.parametrize(
    ("subnet", "expected", "expected_scope"),
    [
        ("81.2.69.0/24", EU, 24),  # GB
        ("89.160.20.0/24", EU, 24),  # DE
        ("216.160.83.0/24", US, 24),  # US
        ("200.160.0.0/24", US, 20),  # BR: the GeoIP network /20 is shorter than the source
        ("202.214.5.0/24", AP, 16),  # JP, /16 in the database
        ("1.130.0.0/16", AP, 11),  # AU: nearest by latency is Tokyo
        ("81.2.69.128/25", EU, 24),  # a source longer than the GeoIP network: its /24
    ],
)
def test_ecs_clients_get_their_region(
    geo: ServerProcess, subnet: str, expected: str, expected_scope: int
) -> None:
    reply = ask(geo, subnet)
    assert reply.rcode() == Rcode.NOERROR
    assert addresses(reply) == [expected]
    assert reply.answer[0].ttl == 30
    assert scope(reply) == expected_scope


@pytest.mark.parametrize(
    ("subnet", "inside"),
    [("81.2.0.0/16", "81.2.69.0/24"), ("89.0.0.0/8", "89.160.20.0/24")],
)
def test_a_short_source_gets_a_scope_that_claims_only_its_own_answer(
    geo: ServerProcess, subnet: str, inside: str
) -> None:
    """RFC 7871 7.2.1: a scope longer than the source says the source was not specific
    enough; a scope as short as the source would claim `inside`'s different answer."""
    reply = ask(geo, subnet)
    claimed = ipaddress.ip_network((subnet.split("/")[0], scope(reply)))
    other = ask(geo, inside)
    assert addresses(other) != addresses(reply)
    assert not claimed.overlaps(ipaddress.ip_network(inside))
    assert scope(reply) > int(subnet.split("/")[1])


def test_aaaa(geo: ServerProcess) -> None:
    assert addresses(ask(geo, "81.2.69.0/24", "AAAA")) == ["2001:db8:20::1"]
    assert addresses(ask(geo, "2001:480:10::/48", "AAAA")) == ["2001:db8:10::1"]


def test_ecs_zero_prefix_gets_scope_zero(geo: ServerProcess) -> None:
    reply = ask(geo, "0.0.0.0/0")
    assert scope(reply) == 0
    assert addresses(reply) == [US]  # 127.0.0.1 resolver: unlocated, the default order


def test_without_ecs_the_source_address_decides(geo: ServerProcess) -> None:
    reply = ask(geo, None)
    assert addresses(reply) == [US]  # 127.0.0.1 cannot be located: default_order first
    assert not reply.options


def test_same_bytes_different_subnets_do_not_share_a_cache_entry(geo: ServerProcess) -> None:
    for _ in range(3):
        assert addresses(ask(geo, "81.2.69.0/24")) == [EU]
        assert addresses(ask(geo, "216.160.83.0/24")) == [US]


def test_other_types_at_the_service_name_are_nodata(geo: ServerProcess) -> None:
    reply = ask(geo, "81.2.69.0/24", "MX")
    assert reply.rcode() == Rcode.NOERROR and not reply.answer
    assert reply.authority[0].rdtype == dns.rdatatype.SOA


def test_srv_lists_regions_in_client_order(geo: ServerProcess) -> None:
    reply = ask(geo, "216.160.83.0/24", "SRV", "_inference._tcp.example.com")
    records = sorted(reply.answer[0], key=lambda r: r.priority)
    # Seattle: the US row corrected from its Ohio anchor ranks Tokyo before Dublin.
    assert [(r.priority, r.port, r.target.to_text()) for r in records] == [
        (0, 443, "us-east-1.inference.example.com."),
        (1, 443, "ap-northeast-1.inference.example.com."),
        (2, 443, "eu-west-1.inference.example.com."),
    ]
    glue = {r.name.to_text() for r in reply.additional}
    assert "us-east-1.inference.example.com." in glue
    # EU clients: only the EU region, residency holds for SRV as well.
    reply = ask(geo, "81.2.69.0/24", "SRV", "_inference._tcp.example.com")
    assert [r.target.to_text() for r in reply.answer[0]] == ["eu-west-1.inference.example.com."]


def test_region_host_names(geo: ServerProcess) -> None:
    reply = ask(geo, None, "A", "us-east-1.inference.example.com")
    assert addresses(reply) == [US]


def write_state(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "state.yaml"
    path.write_text(text)
    return path


def test_eu_down_fails_closed_for_eu_clients(mmdb: Path, tmp_path: Path) -> None:
    state = write_state(tmp_path, "inference.example.com:\n  eu-west-1: {state: down}\n")
    with running_server(
        EXAMPLE_ZONES, "--geoip-database", str(mmdb), "--state", str(state), listen=("127.0.0.1:0",)
    ) as srv:
        # GB, FR: never leak to the US; the rule's "unavailable" endpoint instead.
        assert addresses(ask(srv, "81.2.69.0/24")) == [UNAVAILABLE]
        assert addresses(ask(srv, "2.2.2.0/24")) == [UNAVAILABLE]
        assert addresses(ask(srv, "216.160.83.0/24")) == [US]
        assert addresses(ask(srv, "202.214.5.0/24")) == [AP]


def test_down_and_full_regions_are_avoided(mmdb: Path, tmp_path: Path) -> None:
    state = write_state(
        tmp_path,
        "inference.example.com:\n  us-east-1: {utilization: 0.97}\n"
        "  ap-northeast-1: {state: drain}\n",
    )
    with running_server(
        EXAMPLE_ZONES, "--geoip-database", str(mmdb), "--state", str(state), listen=("127.0.0.1:0",)
    ) as srv:
        assert addresses(ask(srv, "216.160.83.0/24")) == [EU]  # US full: next by latency
        assert addresses(ask(srv, "202.214.5.0/24")) == [EU]  # AP drained, US full


def test_debug_txt_explains(mmdb: Path, tmp_path: Path) -> None:
    zones = tmp_path / "zones"
    zones.mkdir()
    text = (EXAMPLE_ZONES / "example.com.yaml").read_text()
    (zones / "example.com.yaml").write_text("debug: true\n" + text)
    with running_server(zones, "--geoip-database", str(mmdb), listen=("127.0.0.1:0",)) as srv:
        reply = ask(srv, "81.2.69.0/24", "TXT")
        lines = sorted(b"".join(r.strings).decode() for r in reply.answer[0])
        assert any("residency" in line and "continent EU" in line for line in lines)
        assert any("select A: eu-west-1" in line for line in lines)
    # Off by default: it exposes topology.
    with running_server(
        EXAMPLE_ZONES, "--geoip-database", str(mmdb), listen=("127.0.0.1:0",)
    ) as srv:
        assert not ask(srv, "81.2.69.0/24", "TXT").answer


def test_embedded_database() -> None:
    with running_server(EXAMPLE_ZONES, listen=("127.0.0.1:0",)) as srv:
        assert addresses(ask(srv, "81.2.69.0/24")) == [EU]  # GB in DB-IP Lite too
        assert addresses(ask(srv, "216.160.83.0/24")) == [US]
        assert any("embedded DB-IP City Lite" in line for line in srv.lines)
        assert any(
            f"GeoIP: {data_dir() / 'dbip-city-lite-2023-04.mmdb'} (DBIP-City-Lite, built"
            " 2023-04-01), read by maxminddb" in line
            for line in srv.lines
        ), srv.log()


_READER = re.compile(
    r"read by maxminddb \d+\.\d+\.\d+ "
    r"(C extension \(MODE_MMAP_EXT\)|pure-Python reader \(MODE_MMAP\))$"
)


def test_startup_log_names_the_reader_and_the_database(mmdb: Path) -> None:
    with running_server(
        EXAMPLE_ZONES, "--geoip-database", str(mmdb), "--workers", "2", listen=("127.0.0.1:0",)
    ) as srv:
        lines = [line for line in srv.lines if "GeoIP: " in line and " read by " in line]
        assert len(lines) == 1, srv.log()  # once, not once per worker
        assert re.search(r"\bINFO\b", lines[0].split("GeoIP:")[0]), lines[0]
        assert f"GeoIP: {mmdb} (GeoIP2-City, built " in lines[0]
        assert _READER.search(lines[0]), lines[0]
        pure = any("C extension is not installed" in line for line in srv.lines)
        assert pure == ("pure-Python" in lines[0])
        if REQUIRE_TOOLS:  # CI installs nothing from apt for GeoIP: the wheel has the reader
            assert "C extension (MODE_MMAP_EXT)" in lines[0]


def test_without_the_embedded_database_serve_says_how_to_do_without(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port that nothing listens on: offline
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}/db.whl"
    result = subprocess.run(
        [sys.executable, "-m", "geodns", "serve", "--listen", "127.0.0.1:0", "--http", "off"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "XDG_DATA_HOME": str(tmp_path), "GEODNS_EMBEDDED_DB_URL": url},
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert "fetching the embedded DB-IP City Lite database once" in result.stderr
    assert f"geodns: cannot get the embedded GeoIP database (DB-IP City Lite) from {url}" in (
        result.stderr
    )
    assert "start with --geoip-database FILE" in result.stderr
    assert "Traceback" not in result.stderr
    assert list(tmp_path.glob("geodns/*.mmdb")) == []


def explain(*args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "geodns", "explain", "inference.example.com", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    return result.stdout


def test_explain_cli(mmdb: Path) -> None:
    out = explain("81.2.69.142", "--geoip-database", str(mmdb))
    assert "client 81.2.69.142 in network 81.2.69.0/24 (GB, EU, ENG)" in out
    assert "residency: client in GB matches residency rule 0 (continent EU): only eu-west-1" in out
    assert "select A: eu-west-1 192.0.2.20" in out
    data = json.loads(explain("216.160.83.56", "--geoip-database", str(mmdb), "--json"))
    assert data["regions"][0] == "us-east-1"
    assert data["answer"]["A"] == [US]
    assert [s["step"] for s in data["steps"]] == [
        "residency",
        "health",
        "version",
        "capacity",
        "order",
        "measured",
    ]


def test_explain_unknown_service() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "geodns", "explain", "www.example.com", "81.2.69.142"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 2
    assert "not a service name (services: inference.example.com)" in result.stderr


def test_replaced_geoip_file_is_reloaded(tmp_path: Path) -> None:
    mmdb = build_test_mmdb(tmp_path / "city.mmdb")
    with running_server(
        EXAMPLE_ZONES,
        "--geoip-database",
        str(mmdb),
        "--geoip-reload-interval",
        "0.2",
        listen=("127.0.0.1:0",),
    ) as srv:
        assert addresses(ask(srv, "81.2.69.0/24")) == [EU]
        # As geoipupdate does: write a new file beside it, then rename it over the old one.
        moved = {
            "81.2.69.0/24": {
                "country": {"iso_code": "US"},
                "continent": {"code": "NA"},
                "location": {"latitude": 40.7, "longitude": -74.0},
            }
        }
        write_mmdb(tmp_path / "city.mmdb.tmp", moved)
        os.replace(tmp_path / "city.mmdb.tmp", mmdb)
        wait_for(lambda: addresses(ask(srv, "81.2.69.0/24")) == [US])
        # A broken replacement is logged and the loaded database keeps serving.
        (tmp_path / "broken.tmp").write_bytes(b"not a database")
        os.replace(tmp_path / "broken.tmp", mmdb)
        wait_for(lambda: any("keeping the loaded database" in line for line in srv.lines))
        assert addresses(ask(srv, "81.2.69.0/24")) == [US]


def test_a_cname_to_a_service_is_routed_too(geo: ServerProcess) -> None:
    # Residency must hold through an alias: a GB client never gets the US region.
    reply = ask(geo, "81.2.69.0/24", "A", "gpu.example.com")
    assert [r.rdtype for r in reply.answer] == [dns.rdatatype.CNAME, dns.rdatatype.A]
    assert addresses(ask(geo, "81.2.69.0/24", "A", "gpu.example.com"))[-1:] == [EU]
    reply = ask(geo, "216.160.83.0/24", "AAAA", "gpu.example.com")
    assert [r.address for r in reply.answer[1]] == ["2001:db8:10::1"]
    assert scope(reply) == scope(ask(geo, "216.160.83.0/24", "AAAA"))
    # The CNAME itself is static.
    reply = ask(geo, "81.2.69.0/24", "CNAME", "gpu.example.com")
    assert reply.answer[0][0].target.to_text() == "inference.example.com."


@pytest.mark.parametrize(
    "subnet",
    ["216.160.83.0/24", "200.160.0.0/24", "81.2.69.0/24", "202.214.5.0/24", "1.130.0.0/16"],
)
def test_a_widened_scope_claims_nothing_false(geo: ServerProcess, subnet: str) -> None:
    """Every test network inside the scope the server claims gets the same answer."""
    import ipaddress

    from tests.geo_fixtures import TEST_NETWORKS

    reply = ask(geo, subnet)
    claimed = ipaddress.ip_network(subnet).supernet(new_prefix=scope(reply))
    for network in TEST_NETWORKS:
        net = ipaddress.ip_network(network)
        if net.version == 4 and net.prefixlen >= claimed.prefixlen and net.subnet_of(claimed):
            probe = f"{net.network_address}/{max(net.prefixlen, 24)}"
            assert addresses(ask(geo, probe)) == addresses(reply), (subnet, network)


def test_scope_while_a_region_sheds(mmdb: Path, tmp_path: Path) -> None:
    state = write_state(tmp_path, "inference.example.com:\n  us-east-1: {utilization: 0.8}\n")
    with running_server(
        EXAMPLE_ZONES, "--geoip-database", str(mmdb), "--state", str(state), listen=("127.0.0.1:0",)
    ) as srv:
        assert scope(ask(srv, "216.160.83.0/24")) == 24


def test_any_through_an_alias_is_routed(geo: ServerProcess) -> None:
    reply = ask(geo, "81.2.69.0/24", "ANY", "gpu.example.com")
    assert addresses(reply) == [EU]  # never every region's addresses
    reply = ask(geo, "81.2.69.0/24", "TXT", "gpu.example.com")
    assert [r.rdtype for r in reply.answer] == [dns.rdatatype.CNAME]
    assert reply.authority[0].rdtype == dns.rdatatype.SOA
