"""Failing closed on a real server: what a client under a residency rule gets when none of
the rule's regions is healthy, and what unlocated clients get, in every mode."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import dns.edns
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import pytest

from tests.conftest import EXAMPLE_ZONES, ServerProcess, running_server
from tests.e2e.test_geo import addresses, ask, scope
from tests.geo_fixtures import build_test_mmdb

Rcode = dns.rcode.Rcode
US, AP = "192.0.2.10", "192.0.2.30"
UNAVAILABLE_V4, UNAVAILABLE_V6 = "192.0.2.29", "2001:db8:29::1"
RULE = "      - clients: {continent: EU}\n        regions: [eu-west-1]\n"


@pytest.fixture(scope="module")
def mmdb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_test_mmdb(tmp_path_factory.mktemp("geo") / "test-city.mmdb")


def zone_with(tmp_path: Path, residency: str, service_extra: str = "") -> Path:
    """The example zone with its residency section replaced (and service keys added)."""
    zones = tmp_path / "zones"
    shutil.copytree(EXAMPLE_ZONES, zones)
    path = zones / "example.com.yaml"
    text = path.read_text()
    start = text.index("    residency:\n")
    end = text.index("    when_all_down:")
    path.write_text(text[:start] + "    residency:\n" + residency + service_extra + text[end:])
    return zones


def serve(zones: Path, mmdb: Path, tmp_path: Path, down: str = "eu-west-1"):
    state = tmp_path / "state.yaml"
    state.write_text(f"inference.example.com:\n  {down}: {{state: down}}\n")
    return running_server(
        zones, "--geoip-database", str(mmdb), "--state", str(state), listen=("127.0.0.1:0",)
    )


def ede(reply: dns.message.Message) -> list[tuple[int, str]]:
    return [(int(o.code), o.text or "") for o in reply.options if isinstance(o, dns.edns.EDEOption)]


@pytest.fixture(scope="module")
def answer_mode(mmdb: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp("answer")
    rule = RULE + f'        when_none: {{answer: [{UNAVAILABLE_V4}, "{UNAVAILABLE_V6}"]}}\n'
    with serve(zone_with(tmp, rule), mmdb, tmp) as srv:
        yield srv


def test_answer_mode_is_a_positive_answer_with_the_clients_scope(
    answer_mode: ServerProcess,
) -> None:
    reply = ask(answer_mode, "81.2.69.0/24")
    assert reply.rcode() == Rcode.NOERROR and reply.flags & dns.flags.AA
    assert addresses(reply) == [UNAVAILABLE_V4]
    assert reply.answer[0].ttl == 30  # the service TTL: it ends as soon as the region heals
    assert scope(reply) == 24  # cached for this client's network only, like any answer
    assert addresses(ask(answer_mode, "81.2.69.0/24", "AAAA")) == [UNAVAILABLE_V6]
    assert addresses(ask(answer_mode, "89.160.20.0/24")) == [UNAVAILABLE_V4]  # DE
    # Clients outside the rule are not touched by it.
    assert addresses(ask(answer_mode, "216.160.83.0/24")) == [US]
    assert addresses(ask(answer_mode, "202.214.5.0/24")) == [AP]


def test_answer_mode_srv_says_the_service_is_not_available(answer_mode: ServerProcess) -> None:
    reply = ask(answer_mode, "81.2.69.0/24", "SRV", "_inference._tcp.example.com")
    assert reply.rcode() == Rcode.NOERROR
    (rrset,) = reply.answer
    # RFC 2782: a target of "." means the service is decidedly not available.
    assert [(r.priority, r.port, r.target.to_text()) for r in rrset] == [(0, 0, ".")]
    assert scope(reply) == 24


def test_answer_mode_through_an_alias(answer_mode: ServerProcess) -> None:
    reply = ask(answer_mode, "81.2.69.0/24", "A", "gpu.example.com")
    assert [rrset.rdtype for rrset in reply.answer] == [dns.rdatatype.CNAME, dns.rdatatype.A]
    assert addresses(reply) == [UNAVAILABLE_V4]


def test_refuse_mode_says_why_with_an_extended_error(mmdb: Path, tmp_path: Path) -> None:
    with serve(zone_with(tmp_path, RULE + "        when_none: refuse\n"), mmdb, tmp_path) as srv:
        reply = ask(srv, "81.2.69.0/24")
        assert reply.rcode() == Rcode.REFUSED and not reply.answer
        ((code, text),) = ede(reply)
        assert code == 18  # RFC 8914: Prohibited
        assert "residency rule 0 (continent EU)" in text and "eu-west-1" in text
        assert addresses(ask(srv, "216.160.83.0/24")) == [US]


@pytest.mark.parametrize(
    ("mode", "rcode"), [("nodata", Rcode.NOERROR), ("servfail", Rcode.SERVFAIL)]
)
def test_other_modes(mmdb: Path, tmp_path: Path, mode: str, rcode: Rcode) -> None:
    with serve(zone_with(tmp_path, RULE + f"        when_none: {mode}\n"), mmdb, tmp_path) as srv:
        reply = ask(srv, "81.2.69.0/24")
        assert reply.rcode() == rcode and not reply.answer
        if mode == "nodata":
            assert reply.authority[0].rdtype == dns.rdatatype.SOA


def test_a_rule_may_hold_unlocated_clients(mmdb: Path, tmp_path: Path) -> None:
    rule = (
        "      - clients: {continent: EU, unlocated: true}\n        regions: [eu-west-1]\n"
        f"        when_none: {{answer: [{UNAVAILABLE_V4}]}}\n"
    )
    zones = zone_with(tmp_path, rule)
    with serve(zones, mmdb, tmp_path, down="ap-northeast-1") as srv:
        # Unknown to the database, private, documentation, and no ECS from a loopback
        # resolver: all held by the rule, so only eu-west-1.
        for subnet in ("8.8.8.0/24", "10.1.2.0/24", "198.51.100.0/24", None):
            assert addresses(ask(srv, subnet)) == ["192.0.2.20"], subnet
        assert addresses(ask(srv, "216.160.83.0/24")) == [US]
    with serve(zones, mmdb, tmp_path) as srv:  # eu-west-1 down: the unavailable endpoint
        assert addresses(ask(srv, "8.8.8.0/24")) == [UNAVAILABLE_V4]
        assert addresses(ask(srv, None)) == [UNAVAILABLE_V4]


def test_a_service_may_fail_closed_for_unlocated_clients(mmdb: Path, tmp_path: Path) -> None:
    rule = RULE + f"        when_none: {{answer: [{UNAVAILABLE_V4}]}}\n"
    zones = zone_with(tmp_path, rule, "    unlocated: refuse\n")
    with serve(zones, mmdb, tmp_path, down="ap-northeast-1") as srv:
        reply = ask(srv, "8.8.8.0/24")
        assert reply.rcode() == Rcode.REFUSED
        assert [code for code, _ in ede(reply)] == [18]
        assert ask(srv, None).rcode() == Rcode.REFUSED
        assert addresses(ask(srv, "216.160.83.0/24")) == [US]
        assert addresses(ask(srv, "81.2.69.0/24")) == ["192.0.2.20"]
