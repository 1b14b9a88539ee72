"""The answer function without sockets: bytes in, bytes out, and what the caches may not change."""

from __future__ import annotations

import dns.flags
import dns.message
import dns.rcode

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
    assert [r.address for r in us.answer[0]] == ["192.0.2.20"]


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
