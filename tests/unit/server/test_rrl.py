"""Response rate limiting without sockets: real replies from the example zone, a fake clock."""

from __future__ import annotations

import ipaddress
import random

import dns.edns
import dns.flags
import dns.message
import dns.rcode
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geodns.errors import GeodnsError
from geodns.server.answer import UDP, Answerer, Peer
from geodns.server.rrl import (
    ERROR_CLASS,
    Action,
    ResponseRateLimiter,
    RRLConfig,
    classify_untrusted,
    parse_exempt,
    truncated_untrusted,
)
from geodns.zones.loader import load_zones
from tests.conftest import ROOT

ANSWERER = Answerer(load_zones([ROOT / "zones"]))
CLIENT = ("198.51.100.7", 40000)


def wire(name: str, rdtype: str = "A", ecs: str | None = None, edns: bool = True) -> bytes:
    options = []
    if ecs is not None:
        address, prefix = ecs.split("/")
        options.append(dns.edns.ECSOption(address, int(prefix)))
    query = dns.message.make_query(
        name, rdtype, use_edns=0 if edns or ecs else False, options=options
    )
    return query.to_wire()


def reply_to(query: bytes, addr: tuple = CLIENT) -> bytes:
    reply = ANSWERER.answer(query, Peer(addr[0], addr[1], UDP))
    assert reply is not None
    return reply


def run(
    limiter: ResponseRateLimiter, query: bytes, n: int, addr: tuple = CLIENT, now: float = 100.0
) -> list[Action]:
    reply = reply_to(query, addr)
    return [limiter.check(query, reply, addr, now) for _ in range(n)]


def test_rate_replies_a_second_pass_then_slip_and_drop_alternate() -> None:
    limiter = ResponseRateLimiter(RRLConfig(rate=5, slip=2))
    actions = run(limiter, wire("_inference._tcp.example.com", "SRV"), 11)
    assert actions == [Action.SEND] * 5 + [Action.DROP, Action.SLIP] * 3
    assert (limiter.stats.rrl_slipped, limiter.stats.rrl_dropped) == (3, 3)


def test_a_new_second_starts_a_new_count() -> None:
    limiter = ResponseRateLimiter(RRLConfig(rate=3, slip=2))
    query = wire("www.example.com")
    assert run(limiter, query, 4, now=10.2)[-1] is not Action.SEND
    assert run(limiter, query, 3, now=10.9) == [Action.SLIP, Action.DROP, Action.SLIP]
    assert run(limiter, query, 3, now=11.0) == [Action.SEND] * 3


@pytest.mark.parametrize(
    ("slip", "expected"),
    [
        (0, [Action.DROP] * 6),
        (1, [Action.SLIP] * 6),
        (3, [Action.DROP, Action.DROP, Action.SLIP] * 2),
    ],
)
def test_slip_ratio(slip: int, expected: list[Action]) -> None:
    limiter = ResponseRateLimiter(RRLConfig(rate=2, slip=slip))
    assert run(limiter, wire("www.example.com"), 8)[2:] == expected


def test_the_slip_reply_is_the_question_with_tc_and_an_opt_for_an_edns_query() -> None:
    query = wire("_inference._tcp.example.com", "SRV")
    reply = reply_to(query)
    slipped = truncated_untrusted(query, reply)
    assert slipped is not None and len(slipped) < len(reply)
    message = dns.message.from_wire(slipped)
    assert message.flags & dns.flags.TC and message.flags & dns.flags.QR
    assert message.id == dns.message.from_wire(query).id
    assert str(message.question[0].name) == "_inference._tcp.example.com."
    assert not message.answer and not message.authority
    assert message.edns == 0 and message.payload == 1232
    plain = wire("www.example.com", edns=False)
    message = dns.message.from_wire(truncated_untrusted(plain, reply_to(plain)))
    assert message.edns == -1 and message.flags & dns.flags.TC


def test_positive_answers_are_counted_by_qname_and_qtype_case_folded() -> None:
    limiter = ResponseRateLimiter(RRLConfig(rate=2))
    assert run(limiter, wire("www.example.com"), 2) == [Action.SEND] * 2
    assert run(limiter, wire("WWW.Example.COM"), 1) != [Action.SEND]
    assert run(limiter, wire("www.example.com", "AAAA"), 2) == [Action.SEND] * 2
    assert run(limiter, wire("inference.example.com"), 2) == [Action.SEND] * 2


def test_random_subdomains_are_one_nxdomain_bucket_per_zone() -> None:
    limiter = ResponseRateLimiter(RRLConfig(rate=10))
    rng = random.Random(1)
    actions = []
    for _ in range(20):
        query = wire(f"{rng.getrandbits(40):x}.example.com")
        reply = reply_to(query)
        assert reply[3] & 0x0F == dns.rcode.NXDOMAIN
        actions.append(limiter.check(query, reply, CLIENT, 5.0))
    assert actions.count(Action.SEND) == 10
    nx = [wire(f"a{i}.example.com") for i in range(2)]
    assert classify_untrusted(nx[0], reply_to(nx[0])) == classify_untrusted(nx[1], reply_to(nx[1]))


def test_nodata_is_counted_by_zone_and_apart_from_nxdomain() -> None:
    nodata = wire("www.example.com", "MX")
    nx = wire("nope.example.com")
    nodata_class = classify_untrusted(nodata, reply_to(nodata))
    other = wire("ns1.example.com", "MX")
    assert nodata_class == classify_untrusted(other, reply_to(other))
    assert nodata_class != classify_untrusted(nx, reply_to(nx))
    assert b"example" in nodata_class


def test_errors_are_one_class() -> None:
    refused = wire("example.org")  # not our zone
    reply = reply_to(refused)
    assert reply[3] & 0x0F == dns.rcode.REFUSED
    assert classify_untrusted(refused, reply) == ERROR_CLASS
    other = wire("example.net", "MX")
    assert classify_untrusted(other, reply_to(other)) == ERROR_CLASS


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80), st.binary(max_size=80))
def test_garbage_never_raises(query: bytes, reply: bytes) -> None:
    classify_untrusted(query, reply)
    truncated_untrusted(query, reply)
    ResponseRateLimiter(RRLConfig(rate=1)).check(query, reply, CLIENT, 1.0)


def test_garbage_after_a_real_header_is_the_error_class() -> None:
    query = wire("www.example.com")
    assert classify_untrusted(query[:20], reply_to(query)) == ERROR_CLASS
    assert classify_untrusted(query, reply_to(query)[:11]) == ERROR_CLASS


def test_ipv4_clients_share_their_prefix() -> None:
    limiter = ResponseRateLimiter(RRLConfig(rate=2, ipv4_prefix=24))
    query = wire("www.example.com")
    assert run(limiter, query, 2, addr=("198.51.100.1", 1)) == [Action.SEND] * 2
    assert run(limiter, query, 1, addr=("198.51.100.254", 2)) != [Action.SEND]
    assert run(limiter, query, 2, addr=("198.51.101.1", 3)) == [Action.SEND] * 2
    wide = ResponseRateLimiter(RRLConfig(rate=2, ipv4_prefix=16))
    run(wide, query, 2, addr=("198.51.100.1", 1))
    assert run(wide, query, 1, addr=("198.51.101.1", 1)) != [Action.SEND]


def test_ipv6_clients_share_a_56_by_default() -> None:
    limiter = ResponseRateLimiter(RRLConfig(rate=2))
    query = wire("www.example.com")
    assert run(limiter, query, 2, addr=("2001:db8:0:100::1", 1, 0, 0)) == [Action.SEND] * 2
    # another /64 of the same /56: the same bucket
    assert run(limiter, query, 1, addr=("2001:db8:0:1ff::1", 1, 0, 0)) != [Action.SEND]
    assert run(limiter, query, 2, addr=("2001:db8:0:200::1", 1, 0, 0)) == [Action.SEND] * 2


def test_ecs_subnets_are_buckets_of_their_own_within_a_source() -> None:
    limiter = ResponseRateLimiter(RRLConfig(rate=2))
    resolver = ("192.0.2.53", 53000)
    a = wire("www.example.com", ecs="81.2.69.0/24")
    b = wire("www.example.com", ecs="216.160.83.0/24")
    assert run(limiter, a, 2, addr=resolver) == [Action.SEND] * 2
    assert run(limiter, a, 1, addr=resolver) != [Action.SEND]
    assert run(limiter, b, 2, addr=resolver) == [Action.SEND] * 2
    # host bits past the RRL prefix do not make new buckets
    c = wire("www.example.com", ecs="81.2.69.77/32")
    assert run(limiter, c, 1, addr=resolver) != [Action.SEND]
    # the same ECS subnet from another resolver network is another bucket
    assert run(limiter, a, 2, addr=("203.0.113.53", 1)) == [Action.SEND] * 2


def test_exempt_networks_and_the_exemption_callable_are_never_limited() -> None:
    limiter = ResponseRateLimiter(
        RRLConfig(rate=1, exempt=parse_exempt(["198.51.100.0/24", "2001:db8::/32"]))
    )
    query = wire("www.example.com")
    assert run(limiter, query, 50) == [Action.SEND] * 50
    assert run(limiter, query, 50, addr=("2001:db8::5", 1, 0, 0)) == [Action.SEND] * 50
    assert run(limiter, query, 2, addr=("203.0.113.9", 1))[1] is not Action.SEND
    seen = []

    def proves(q: bytes, addr: tuple) -> bool:
        seen.append(addr)
        return addr[1] == 7

    cookie = ResponseRateLimiter(RRLConfig(rate=1), exempt=proves)
    assert run(cookie, query, 5, addr=("203.0.113.9", 7)) == [Action.SEND] * 5
    assert run(cookie, query, 1, addr=("203.0.113.9", 8)) != [Action.SEND]
    # asked only for replies over the limit: the hot path does not pay for it
    assert len(seen) == 5


def test_an_exemption_that_raises_exempts_nothing() -> None:
    def broken(q: bytes, addr: tuple) -> bool:
        raise ValueError("bad cookie")

    limiter = ResponseRateLimiter(RRLConfig(rate=1), exempt=broken)
    assert run(limiter, wire("www.example.com"), 2)[1] is not Action.SEND


def test_the_table_stays_bounded_under_100k_random_sources() -> None:
    size = 5000
    limiter = ResponseRateLimiter(RRLConfig(rate=5, table_size=size))
    query = wire("www.example.com")
    reply = reply_to(query)
    rng = random.Random(7)
    for i in range(100_000):
        source = str(ipaddress.IPv4Address(rng.getrandbits(32)))
        assert limiter.check(query, reply, (source, 1), 1.0 + i / 50_000) is Action.SEND
        assert len(limiter._counts) <= size
        assert len(limiter._networks) <= size
    for _ in range(20_000):  # random names: the cache of classes is bounded too
        name = wire(f"{rng.getrandbits(48):x}.example.com")
        limiter.check(name, reply_to(name), CLIENT, 3.0)
        assert len(limiter._classes) <= size
    # and the flood's one real target is still limited in a fresh second
    assert run(limiter, query, 7, now=9.0)[5:] == [Action.DROP, Action.SLIP]


@pytest.mark.parametrize(
    "config",
    [
        {"rate": -1},
        {"slip": -1},
        {"ipv4_prefix": 33},
        {"ipv6_prefix": 129},
        {"table_size": 0},
    ],
)
def test_bad_settings_are_refused(config: dict) -> None:
    with pytest.raises(GeodnsError):
        RRLConfig(**config)


def test_parse_exempt_refuses_what_is_not_a_network() -> None:
    assert parse_exempt(["10.0.0.0/8", "::1"]) == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("::1/128"),
    )
    with pytest.raises(GeodnsError, match="not an address"):
        parse_exempt(["example.com"])
