"""geodns behind a real resolver: what Unbound (subnetcache, RFC 7871 caching) does with each
fail-closed mode of a residency rule, and with the ECS scopes geodns claims.

Clients ask Unbound from loopback addresses that the test database places in GB and the US
(tests/resolvers.py); Unbound sends their /24 to geodns as ECS, or forwards an ECS option of
their own. docs/resolvers.md shows the transcripts these tests pin down.
"""

from __future__ import annotations

import contextlib
import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import dns.edns
import dns.message
import dns.rcode
import dns.rdatatype
import pytest

from tests.conftest import ServerProcess, running_server, wait_for
from tests.resolvers import (
    GB_CLIENT,
    US_CLIENT,
    Resolver,
    require_unbound,
    running_unbound,
    write_loopback_mmdb,
)

Rcode = dns.rcode.Rcode
NAME = "inference.example.com"
US, EU, AP = "192.0.2.10", "192.0.2.20", "192.0.2.30"
UNAVAILABLE, UNAVAILABLE6 = "192.0.2.99", "2001:db8:99::1"
ANSWER = f'{{answer: [{UNAVAILABLE}, "{UNAVAILABLE6}"]}}'
TOKEN = "behind-unbound-token"
SERVICE_TTL, SOA_MINIMUM = 30, 60

ZONE = """\
zone: example.com
ttl: 300
soa: {{mname: ns1.example.com, rname: hostmaster@example.com, serial: 1, minimum: {minimum}}}
ns: [ns1.example.com]
records:
  ns1: {{A: 198.51.100.53}}
services:
  inference:
    ttl: {ttl}
    regions:
      us-east-1:
        location: {{lat: 38.9, lon: -77.0}}
        addresses: [192.0.2.10, "2001:db8:10::1"]
      eu-west-1:
        location: {{lat: 53.3, lon: -6.3}}
        addresses: [192.0.2.20, "2001:db8:20::1"]
      ap-northeast-1:
        location: {{lat: 35.7, lon: 139.7}}
        addresses: [192.0.2.30, "2001:db8:30::1"]
    default_order: [us-east-1, eu-west-1, ap-northeast-1]
    residency:
      - clients: {{continent: EU{unlocated}}}
        regions: [eu-west-1]
        when_none: {when_none}
"""


@pytest.fixture(autouse=True)
def _unbound_installed() -> None:
    require_unbound()  # skip (or fail in CI) before starting geodns for nothing


def addresses(reply: dns.message.Message) -> list[str]:
    return [r.address for rrset in reply.answer if rrset.rdtype in (1, 28) for r in rrset]


def outcome(reply: dns.message.Message) -> str | list[str]:
    """The addresses of a NOERROR answer, "NODATA", or the rcode's name."""
    if reply.rcode() != Rcode.NOERROR:
        return Rcode(reply.rcode()).name
    return addresses(reply) or "NODATA"


def scope(reply: dns.message.Message) -> int | None:
    ecs = [o for o in reply.options if isinstance(o, dns.edns.ECSOption)]
    return ecs[0].scopelen if ecs else None


def force(geo: ServerProcess, region: str, state: str) -> None:
    """Force a region's state through the admin API, as an operator would."""
    assert geo.admin_url is not None
    request = urllib.request.Request(
        f"{geo.admin_url}api/services/{NAME}/regions/{region}/state",
        data=json.dumps({"state": state}).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"},
    )
    with urllib.request.urlopen(request, timeout=5) as reply:
        assert reply.status == 200, reply.read()


def direct(geo: ServerProcess, subnet: str, rdtype: str = "A") -> dns.message.Message:
    """geodns's own answer for an ECS subnet, asked without the resolver."""
    address, prefix = subnet.split("/")
    option = dns.edns.ECSOption(address, int(prefix))
    return geo.udp(dns.message.make_query(NAME, rdtype, use_edns=0, options=[option]))


@contextlib.contextmanager
def behind_unbound(
    tmp_path: Path,
    when_none: str,
    *,
    resolver_country: str | None = "US",
    unlocated: bool = False,
    eu_down: bool = True,
) -> Iterator[tuple[ServerProcess, Resolver]]:
    """geodns serving the zone above with `when_none`, the resolver's address 127.0.0.1 in
    `resolver_country`, eu-west-1 forced down (the EU rule's only region) unless told
    otherwise, and a fresh Unbound (empty cache) in front of it."""
    zones = tmp_path / "zones"
    zones.mkdir()
    (zones / "example.com.yaml").write_text(
        ZONE.format(
            when_none=when_none,
            unlocated=", unlocated: true" if unlocated else "",
            ttl=SERVICE_TTL,
            minimum=SOA_MINIMUM,
        )
    )
    mmdb = write_loopback_mmdb(tmp_path / "loopback.mmdb", resolver_country)
    with running_server(
        zones,
        "--geoip-database",
        str(mmdb),
        "--rollouts-file",
        str(tmp_path / "rollouts.json"),
        listen=("127.0.0.1:0",),
        env={"GEODNS_ADMIN_TOKEN": TOKEN},
    ) as geo:
        if eu_down:
            force(geo, "eu-west-1", "down")
        try:
            with running_unbound(geo.addr) as resolver:
                yield geo, resolver
        except BaseException as exc:
            exc.add_note("geodns log, last lines:\n" + "\n".join(geo.lines[-40:]))
            raise


# 1. `answer`: the in-jurisdiction "unavailable" endpoint, cached per client subnet.


@pytest.mark.parametrize("resolver_country", ["US", None, "GB"])
def test_answer_mode_keeps_eu_clients_in_the_eu_and_us_clients_in_the_us(
    tmp_path: Path, resolver_country: str | None
) -> None:
    """Wherever the resolver itself is, a GB client gets the unavailable endpoint, from
    geodns and then from Unbound's cache, and a US client asking right after gets its own
    region: the endpoint is a positive answer scoped to the GB client's /24."""
    with behind_unbound(tmp_path, ANSWER, resolver_country=resolver_country) as (geo, unbound):
        mark = unbound.mark()
        for _ in range(3):
            assert outcome(unbound.ask(NAME, source=GB_CLIENT)) == [UNAVAILABLE]
        assert outcome(unbound.ask(NAME, source=US_CLIENT)) == [US]
        assert outcome(unbound.ask(NAME, source=GB_CLIENT)) == [UNAVAILABLE]
        assert outcome(unbound.ask(NAME, "AAAA", source=GB_CLIENT)) == [UNAVAILABLE6]
        reply = unbound.ask(NAME, source=GB_CLIENT)
        assert reply.answer[0].ttl <= SERVICE_TTL
        log = unbound.log_since(mark)
        # No REFUSED, so no retry without ECS: geodns never answered for the resolver.
        assert "rcode: REFUSED" not in log
        assert "answer has edns subnet 127.0.2.0/24 scope /24" in log
        assert "answer has edns subnet 127.0.3.0/24 scope /24" in log
        assert log.count("subnetcache: answered from cache") >= 3
        # Clients that send their own ECS option: Unbound forwards it, and the same holds.
        assert outcome(unbound.ask(NAME, source=GB_CLIENT, subnet="81.2.69.0/24")) == [UNAVAILABLE]
        assert outcome(unbound.ask(NAME, source=GB_CLIENT, subnet="89.160.20.0/24")) == [
            UNAVAILABLE
        ]
        assert outcome(unbound.ask(NAME, source=GB_CLIENT, subnet="216.160.83.0/24")) == [US]
        # eu-west-1 back: geodns answers it at once; Unbound keeps the endpoint for its TTL.
        force(geo, "eu-west-1", "auto")
        assert outcome(direct(geo, "127.0.2.0/24")) == [EU]


def test_answer_mode_srv_says_the_service_is_not_available(tmp_path: Path) -> None:
    """RFC 2782: an SRV target of "." means the service is decidedly not available; through
    Unbound the GB client gets exactly that, and never a non-EU target."""
    with behind_unbound(tmp_path, ANSWER) as (_geo, unbound):
        reply = unbound.ask("_inference._tcp.example.com", "SRV", source=GB_CLIENT)
        assert reply.rcode() == Rcode.NOERROR
        assert [r.to_text() for r in reply.answer[0]] == ["0 0 0 ."]
        reply = unbound.ask("_inference._tcp.example.com", "SRV", source=US_CLIENT)
        targets = [r.target.to_text() for r in reply.answer[0]]
        assert "us-east-1.inference.example.com." in targets


# 2. `refuse`: RFC 7871 7.3 resolvers retry without ECS, from their own address.


def test_refuse_is_retried_without_ecs_and_answered_for_the_resolver(tmp_path: Path) -> None:
    """The leak of issue 11 item 2, pinned as what `refuse` costs by design: Unbound takes
    REFUSED to its ECS query, asks again without ECS, and geodns, which can no longer tell
    the GB client from the resolver (127.0.0.1, in the US), answers for the US. Unbound then
    serves that answer from its global cache to later GB clients as well."""
    with behind_unbound(tmp_path, "refuse", resolver_country="US") as (_geo, unbound):
        mark = unbound.mark()
        assert outcome(unbound.ask(NAME, source=GB_CLIENT)) == [US]
        log = unbound.log_since(mark)
        refused = log.index("rcode: REFUSED")
        assert "answer has edns subnet 127.0.2.0/24 scope /24" in log[:refused]
        assert "rcode: NOERROR" in log[refused:]  # the retry, answered
        assert outcome(unbound.ask(NAME, source=GB_CLIENT)) == [US]  # from the global cache


def test_refuse_with_unlocated_clients_in_the_rule_never_leaks(tmp_path: Path) -> None:
    """With the resolver located nowhere and `unlocated: true` in the EU rule, the retry
    without ECS is refused too: the GB client gets SERVFAIL from Unbound, never a non-EU
    address. The cost: Unbound caches that SERVFAIL for every client for NORR_TTL (5 s),
    so a US client asking right after gets SERVFAIL too."""
    with behind_unbound(tmp_path, "refuse", resolver_country=None, unlocated=True) as (
        geo,
        unbound,
    ):
        mark = unbound.mark()
        assert outcome(unbound.ask(NAME, source=GB_CLIENT)) == "SERVFAIL"
        log = unbound.log_since(mark)
        assert log.count("rcode: REFUSED") >= 2  # the ECS query, then the retries without
        assert "store error response in message cache" in log
        assert outcome(unbound.ask(NAME, source=US_CLIENT)) == "SERVFAIL"
        assert outcome(direct(geo, "127.0.3.0/24")) == [US]  # geodns itself would answer
        # Once Unbound's error entry expires, the US client is asked for again; the GB
        # client is refused again, and still never answered for another jurisdiction.
        wait_for(
            lambda: outcome(unbound.ask(NAME, source=US_CLIENT)) == [US], timeout=12, interval=0.25
        )
        assert outcome(unbound.ask(NAME, source=GB_CLIENT)) == "SERVFAIL"


def test_servfail_is_retried_with_ecs_and_kept_by_no_one(tmp_path: Path) -> None:
    """SERVFAIL carries the client's ECS scope, so Unbound retries it with ECS (never
    without), caches it nowhere (the reply had ECS: no global cache store) and gives the
    GB client SERVFAIL; a US client right after is asked for. The cost: every GB query
    reaches geodns five times."""
    with behind_unbound(tmp_path, "servfail", resolver_country="US") as (_geo, unbound):
        mark = unbound.mark()
        assert outcome(unbound.ask(NAME, source=GB_CLIENT)) == "SERVFAIL"
        log = unbound.log_since(mark)
        assert log.count("rcode: SERVFAIL") == log.count("answer has edns subnet 127.0.2.0/24")
        assert log.count("rcode: SERVFAIL") >= 2
        assert "store error response in message cache" not in log
        assert outcome(unbound.ask(NAME, source=US_CLIENT)) == [US]
        mark = unbound.mark()
        assert outcome(unbound.ask(NAME, source=GB_CLIENT)) == "SERVFAIL"
        assert "rcode: SERVFAIL" in unbound.log_since(mark)  # asked again, not cached


# 3. `nodata`: a negative answer, with the GB client's scope.


def test_nodata_is_kept_per_subnet_by_unbound_for_the_soa_minimum(tmp_path: Path) -> None:
    """geodns scopes the residency NODATA to the client's network (/24), and Unbound 1.17's
    subnetcache keeps the whole reply, negative or not, per subnet: the US client right
    after gets its own region. What it costs is time: the NODATA lives for the SOA minimum
    (60 s here), not the service TTL (30 s), so GB clients keep getting it for that long
    after eu-west-1 is back."""
    with behind_unbound(tmp_path, "nodata", resolver_country=None) as (geo, unbound):
        mark = unbound.mark()
        reply = unbound.ask(NAME, source=GB_CLIENT)
        assert outcome(reply) == "NODATA"
        (soa,) = reply.authority
        assert soa.rdtype == dns.rdatatype.SOA and SERVICE_TTL < soa.ttl <= SOA_MINIMUM
        assert scope(direct(geo, "127.0.2.0/24")) == 24
        log = unbound.log_since(mark)
        assert "answer has edns subnet 127.0.2.0/24 scope /24" in log
        assert outcome(unbound.ask(NAME, source=US_CLIENT)) == [US]
        assert outcome(unbound.ask(NAME, source=GB_CLIENT)) == "NODATA"
        force(geo, "eu-west-1", "auto")
        assert outcome(direct(geo, "127.0.2.0/24")) == [EU]
        reply = unbound.ask(NAME, source=GB_CLIENT)
        assert outcome(reply) == "NODATA"  # from Unbound's cache, for up to 60 s more
        assert reply.authority[0].ttl > SERVICE_TTL


# 4. A short source prefix gets a scope that claims only its own answer.


def test_a_short_source_prefix_never_makes_unbound_answer_for_another_country(
    tmp_path: Path,
) -> None:
    """18.0.0.0/12 holds a US /15 and a GB /16. A client sending ECS 18.0.0.0/12 gets the
    US answer with scope /15 (RFC 7871 7.2.1: longer than the source), which Unbound keeps
    for /12 queries only; a GB client in 18.2.0.0/24 is then asked for, and gets the EU
    region. With scope /12 Unbound would have served it the US answer from its cache."""
    # Every region up: the fail-closed mode plays no part (refuse: valid in every version).
    with behind_unbound(tmp_path, "refuse", eu_down=False) as (_geo, unbound):
        reply = unbound.ask(NAME, source=US_CLIENT, subnet="18.0.0.0/12")
        assert outcome(reply) == [US]
        assert scope(reply) == 15
        for subnet in ("18.2.0.0/24", "18.2.77.0/24", "18.2.0.0/16"):
            assert outcome(unbound.ask(NAME, source=GB_CLIENT, subnet=subnet)) == [EU], subnet
        assert outcome(unbound.ask(NAME, source=US_CLIENT, subnet="18.1.2.0/24")) == [US]
        # The /12 query again: from Unbound's cache, still the US answer, still /15.
        reply = unbound.ask(NAME, source=US_CLIENT, subnet="18.0.0.0/12")
        assert (outcome(reply), scope(reply)) == ([US], 15)


def test_an_unplaced_address_in_a_special_block_claims_no_placed_network(tmp_path: Path) -> None:
    """An organisation's own database may place networks inside a special-purpose block
    (geodns now looks them up): here 127.0.2.0/24 is in GB. A client at 127.0.5.1, which the
    database does not place, is answered for the unlocated; its scope must not cover the
    GB /24, or Unbound serves that answer to the GB client from its cache."""
    with behind_unbound(tmp_path, "refuse", eu_down=False) as (_geo, unbound):
        assert outcome(unbound.ask(NAME, source="127.0.5.1")) == [US]  # default_order
        assert outcome(unbound.ask(NAME, source=GB_CLIENT)) == [EU]
