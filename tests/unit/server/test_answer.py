"""The answer function without sockets: bytes in, bytes out, and what the caches may not change."""

from __future__ import annotations

import dns.edns
import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rrset
import dns.tsigkeyring
import pytest

from geodns.server.answer import TCP, UDP, Answerer, Peer, ServerOptions
from geodns.zones.loader import load_zones
from tests.conftest import ROOT

ZONES = load_zones([ROOT / "zones"])


def ask(
    answerer: Answerer, query: dns.message.Message, transport: str = UDP
) -> dns.message.Message:
    reply = answerer.answer(query.to_wire(), Peer("127.0.0.1", 5353, transport))
    assert reply is not None
    return dns.message.from_wire(reply)


def test_cached_replies_keep_each_querys_id_and_case() -> None:
    answerer = Answerer(ZONES)
    for i, name in enumerate(["www.example.com", "www.example.com", "WWW.Example.COM"]):
        query = dns.message.make_query(name, "A")
        query.id = 1000 + i
        reply = ask(answerer, query)
        assert reply.id == 1000 + i
        assert reply.question[0].name.to_text() == name + "."
        assert reply.answer[0].name.to_text() == name + "."


def test_udp_and_tcp_caches_are_separate() -> None:
    answerer = Answerer(ZONES)
    query = dns.message.make_query("www.example.com", "A", use_edns=False)
    assert not ask(answerer, query, UDP).flags & dns.flags.TC
    assert not ask(answerer, query, TCP).flags & dns.flags.TC


def test_no_server_id_means_no_nsid_and_refused_id_server() -> None:
    answerer = Answerer(ZONES, ServerOptions(server_id=""))
    query = dns.message.make_query("www.example.com", "A", options=[dns.edns.NSIDOption(b"")])
    assert not ask(answerer, query).options
    chaos = dns.message.make_query("id.server", "TXT", rdclass="CH")
    assert ask(answerer, chaos).rcode() == dns.rcode.REFUSED


def test_a_bug_while_answering_is_servfail_not_a_crash(monkeypatch) -> None:
    answerer = Answerer(ZONES)

    def broken(*args: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(answerer, "_prepare", broken)
    reply = ask(answerer, dns.message.make_query("www.example.com", "A"))
    assert reply.rcode() == dns.rcode.SERVFAIL
    assert answerer.errors == 1


def test_service_answers_without_ecs_depend_on_the_sender(tmp_path) -> None:
    from geodns.geo.geoip import GeoIPDatabase
    from tests.geo_fixtures import build_test_mmdb

    db = GeoIPDatabase(build_test_mmdb(tmp_path / "t.mmdb"))
    answerer = Answerer(ZONES, geoip=db)
    handle = answerer.handler(UDP)
    wire = dns.message.make_query("inference.example.com", "A").to_wire()
    for _ in range(2):  # the second round comes from the caches
        gb = dns.message.from_wire(handle(wire, ("81.2.69.1", 5353)))
        us = dns.message.from_wire(handle(wire, ("216.160.83.1", 5353)))
        assert [r.address for r in gb.answer[0]] == ["192.0.2.20"]
        assert [r.address for r in us.answer[0]] == ["192.0.2.10"]
    # A state change drops every cached reply built from the old state.
    from geodns.health.state import Health, RegionState

    answerer.set_state(
        answerer.state.with_region("inference.example.com", "us-east-1", RegionState(Health.DOWN))
    )
    us = dns.message.from_wire(handle(wire, ("216.160.83.1", 5353)))
    # Seattle's next: the US row corrected from Ohio to Seattle ranks Tokyo before Dublin.
    assert [r.address for r in us.answer[0]] == ["192.0.2.30"]


def test_srv_ports_per_region(tmp_path) -> None:
    zone = tmp_path / "z.yaml"
    zone.write_text(
        """\
zone: example.net
soa: {mname: ns1, rname: hostmaster}
ns: [ns1]
records: {ns1: {A: 192.0.2.53}}
services:
  api:
    port: 8443
    default_order: [b, a]
    regions:
      a: {addresses: [127.0.0.1], port: 9001}
      b: {addresses: [127.0.0.1]}
"""
    )
    reply = ask(
        Answerer(load_zones([zone])), dns.message.make_query("_api._tcp.example.net", "SRV")
    )
    records = [(r.priority, r.port, r.target.to_text()) for r in reply.answer[0]]
    assert sorted(records) == [(0, 8443, "b.api.example.net."), (1, 9001, "a.api.example.net.")]


def test_a_new_state_keeps_static_replies_and_redecides_service_names() -> None:
    from geodns.health.state import Health, RegionState, StateSnapshot

    answerer = Answerer(ZONES)
    static = dns.message.make_query("www.example.com", "A")
    ask(answerer, static)
    version_host = dns.message.make_query("v43.inference.example.com", "A")
    assert ask(answerer, version_host).rcode() == dns.rcode.NXDOMAIN
    answerer.set_state(
        StateSnapshot().with_region(
            "inference.example.com", "us-east-1", RegionState(Health.UP, version="43")
        )
    )
    assert static.to_wire()[2:] in answerer._exact["udp"]  # not dropped with the state
    reply = ask(answerer, version_host)  # now a version some region reports
    assert reply.rcode() == dns.rcode.NOERROR
    assert [r.address for r in reply.answer[0]] == ["192.0.2.10"]


# --- a hardened wire (issue 11 items 8, 9, 10, 13) --------------------------------------------


def geo_answerer(tmp_path, **options) -> Answerer:
    from geodns.geo.geoip import GeoIPDatabase
    from tests.geo_fixtures import build_test_mmdb

    db = GeoIPDatabase(build_test_mmdb(tmp_path / "t.mmdb"))
    return Answerer(ZONES, ServerOptions(**options), geoip=db)


def ede_of(reply: dns.message.Message) -> list[tuple[int, str | None]]:
    return [(o.code, o.text) for o in reply.options if o.otype == dns.edns.EDE]


def cookie_of(reply: dns.message.Message) -> bytes | None:
    found = [o for o in reply.options if o.otype == dns.edns.COOKIE]
    return found[0].client + found[0].server if found else None


def test_ecs_zero_replies_are_cached_per_sender(tmp_path) -> None:
    # RFC 7871 7.1.2: with SOURCE PREFIX-LENGTH 0 the resolver's address stands for the
    # client, so the same query bytes from a GB and a US resolver may not share a reply.
    answerer = geo_answerer(tmp_path)
    handle = answerer.handler(UDP)
    wire = dns.message.make_query(
        "inference.example.com", "A", options=[dns.edns.ECSOption("0.0.0.0", 0)]
    ).to_wire()
    first = dns.message.from_wire(handle(wire, ("81.2.69.1", 5353)))
    second = dns.message.from_wire(handle(wire, ("216.160.83.1", 5353)))
    assert [r.address for r in first.answer[0]] == ["192.0.2.20"]
    assert [r.address for r in second.answer[0]] == ["192.0.2.10"]
    assert wire[2:] not in answerer._by_state[UDP]
    assert (wire[2:], "81.2.69.1") in answerer._by_source[UDP]


def test_residency_refusal_carries_its_extended_error(tmp_path) -> None:
    from dataclasses import replace

    from geodns.geo.geoip import GeoIPDatabase
    from geodns.health.state import Health, RegionState
    from geodns.zones.model import FailClosed, ZoneSet
    from tests.geo_fixtures import build_test_mmdb

    (zone,) = ZONES.zones.values()
    (service,) = zone.services.values()
    refusing = replace(service.residency[0], when_none=FailClosed("refuse"))
    service = replace(service, residency=(refusing,))
    zone = replace(zone, services={service.name: service})
    db = GeoIPDatabase(build_test_mmdb(tmp_path / "t.mmdb"))
    answerer = Answerer(ZoneSet({zone.origin: zone}), geoip=db)
    answerer.set_state(
        answerer.state.with_region("inference.example.com", "eu-west-1", RegionState(Health.DOWN))
    )
    query = dns.message.make_query(
        "inference.example.com", "A", options=[dns.edns.ECSOption("81.2.69.0", 24)]
    )
    reply = ask(answerer, query)
    assert reply.rcode() == dns.rcode.REFUSED
    [(code, text)] = ede_of(reply)
    assert code == 18 and text and "EU" in text


def test_ede_set_on_a_geo_resolution_reaches_the_wire(tmp_path, monkeypatch) -> None:
    from dataclasses import replace

    answerer = geo_answerer(tmp_path)
    original = answerer.geo.resolution

    def with_ede(result):
        return replace(original(result), ede=(18, "residency rule 0: test"))

    monkeypatch.setattr(answerer.geo, "resolution", with_ede)
    reply = ask(answerer, dns.message.make_query("inference.example.com", "A", use_edns=0))
    assert ede_of(reply) == [(18, "residency rule 0: test")]
    no_edns = ask(answerer, dns.message.make_query("inference.example.com", "AAAA", use_edns=False))
    assert no_edns.edns == -1  # no OPT, so no EDE, for a query without EDNS


def test_refused_outside_our_zones_says_not_authoritative() -> None:
    reply = ask(Answerer(ZONES), dns.message.make_query("www.example.org", "A", use_edns=0))
    assert reply.rcode() == dns.rcode.REFUSED
    assert ede_of(reply) == [(20, None)]


@pytest.mark.parametrize("transport", [UDP, TCP])
def test_ixfr_is_refused_as_nsd_refuses_it(transport: str) -> None:
    query = dns.message.make_query("example.com", "IXFR", use_edns=0)
    query.authority.append(
        dns.rrset.from_text("example.com.", 0, "IN", "SOA", ". . 2024010100 0 0 0 0")
    )
    reply = ask(Answerer(ZONES), query, transport)
    assert reply.rcode() == dns.rcode.REFUSED
    assert ede_of(reply) == [(18, None)]
    assert reply.edns == 0


@pytest.mark.parametrize("transport", [UDP, TCP])
def test_axfr_is_refused_with_ede_18_and_notauth_outside_our_zones(transport: str) -> None:
    answerer = Answerer(ZONES)
    query = dns.message.make_query("example.com", "AXFR", use_edns=0)
    reply = ask(answerer, query, transport)
    assert reply.rcode() == dns.rcode.REFUSED and ede_of(reply) == [(18, None)]
    # A name that is no zone of ours: NOTAUTH, as NSD and Knot answer.
    other = ask(answerer, dns.message.make_query("www.example.com", "AXFR"), transport)
    assert other.rcode() == dns.rcode.NOTAUTH


def test_signed_query_gets_notauth_badkey_unsigned() -> None:
    query = dns.message.make_query("www.example.com", "A", use_edns=0)
    query.use_tsig(dns.tsigkeyring.from_text({"k.": "c2VjcmV0c2VjcmV0"}), "k.")
    wire = Answerer(ZONES).answer(query.to_wire(), Peer("127.0.0.1", 5353, UDP))
    assert wire is not None
    reply = dns.message.from_wire(wire, keyring=False)
    assert reply.rcode() == dns.rcode.NOTAUTH
    assert not reply.answer and reply.edns == 0
    rdata = reply.tsig[0]
    assert (rdata.error, rdata.mac) == (17, b"")
    assert rdata.time_signed == query.tsig[0].time_signed


def test_notimp_echoes_rd_but_not_cd() -> None:
    query = dns.message.make_query("www.example.com", "A", use_edns=0)
    query.set_opcode(dns.opcode.STATUS)
    query.flags |= dns.flags.RD | dns.flags.CD
    reply = ask(Answerer(ZONES), query)
    assert reply.rcode() == dns.rcode.NOTIMP
    assert reply.flags & dns.flags.RD and not reply.flags & dns.flags.CD
    assert reply.edns == 0


def cookie_query(name: str, server: bytes = b"", **kwargs) -> dns.message.Message:
    option = dns.edns.CookieOption(b"\x11" * 8, server)
    return dns.message.make_query(name, "A", options=[option, *kwargs.pop("options", [])])


@pytest.mark.parametrize("name", ["www.example.com", "inference.example.com"])
def test_server_cookies_are_never_served_from_a_cache(tmp_path, name: str) -> None:
    answerer = geo_answerer(tmp_path)
    handle = answerer.handler(UDP)
    wire = cookie_query(name).to_wire()
    cookies = {}
    for _ in range(2):
        for host in ("81.2.69.1", "81.2.69.2"):
            reply = dns.message.from_wire(handle(wire, (host, 5353)))
            assert reply.rcode() == dns.rcode.NOERROR and reply.answer
            cookie = cookie_of(reply)
            assert cookie is not None and cookie[:8] == b"\x11" * 8
            assert answerer.cookies.valid(cookie, host)
            cookies.setdefault(host, cookie)
    assert cookies["81.2.69.1"] != cookies["81.2.69.2"]
    assert not any(wire[2:] in c for c in (answerer._exact[UDP], answerer._by_state[UDP]))
    assert not any(key[0] == wire[2:] for key in answerer._by_source[UDP])


def test_a_returned_server_cookie_is_echoed_and_cached_for_its_sender_only() -> None:
    now = [1_800_000_000.0]
    answerer = Answerer(ZONES, ServerOptions(cookie_secret=b"k" * 16))
    answerer.cookies.clock = lambda: now[0]
    handle = answerer.handler(UDP)
    first = cookie_of(ask(answerer, cookie_query("www.example.com")))
    assert first is not None and answerer.cookies.valid(first, "127.0.0.1")
    echo = cookie_query("www.example.com", server=first[8:]).to_wire()
    for _ in range(2):  # the second round comes from the per-sender cache
        reply = dns.message.from_wire(handle(echo, ("127.0.0.1", 5353)))
        assert reply.rcode() == dns.rcode.NOERROR and cookie_of(reply) == first
    assert len(answerer._cookied[UDP]) == 1
    # The same bytes from another address: that cookie is not theirs, so a fresh one.
    other = cookie_of(dns.message.from_wire(handle(echo, ("127.0.0.2", 5353))))
    assert other != first and answerer.cookies.valid(other, "127.0.0.2")
    # Half an hour on, the cached reply is not reused: a new cookie is due.
    now[0] += 1800
    renewed = cookie_of(dns.message.from_wire(handle(echo, ("127.0.0.1", 5353))))
    assert renewed != first and answerer.cookies.valid(renewed, "127.0.0.1")
    # A stale or foreign server cookie: answered too, with a valid one (no BADCOOKIE).
    stale = ask(answerer, cookie_query("www.example.com", server=bytes(16)))
    assert stale.rcode() == dns.rcode.NOERROR
    assert answerer.cookies.valid(cookie_of(stale), "127.0.0.1")


def test_a_shared_secret_makes_cookies_valid_across_servers() -> None:
    one = Answerer(ZONES, ServerOptions(cookie_secret=b"fleet-secret-16b"))
    two = Answerer(ZONES, ServerOptions(cookie_secret=b"fleet-secret-16b"))
    cookie = cookie_of(ask(one, cookie_query("www.example.com")))
    assert two.cookies.valid(cookie, "127.0.0.1")


def test_cookie_only_query_gets_a_server_cookie() -> None:
    # RFC 7873 5.4: QDCOUNT 0 and a COOKIE option.
    option = b"\x00\x0a\x00\x08" + b"\x22" * 8
    opt = b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x0c" + option
    wire = b"\x12\x34\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01" + opt
    reply = dns.message.from_wire(Answerer(ZONES).answer(wire, Peer("127.0.0.1", 5353, UDP)))
    assert reply.rcode() == dns.rcode.NOERROR and not reply.question
    assert cookie_of(reply)[:8] == b"\x22" * 8
