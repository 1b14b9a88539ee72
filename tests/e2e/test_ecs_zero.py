"""ECS SOURCE PREFIX-LENGTH 0 is answered for the resolver that sent it, with scope 0.

RFC 7871 7.1.2: a query with source prefix 0 carries no client address, so the server may
use the resolver's own; 7.2.1: the reply's scope is then 0, and the resolver shares it with
all its clients. Two resolvers on loopback, placed in GB and the US by the test database
(tests/resolvers.py), send the very same bytes; each gets its own country's answer, in
either order, so no cache of geodns's answers them by the query's bytes alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dns.edns
import dns.message
import dns.query
import pytest

from tests.conftest import EXAMPLE_ZONES, ServerProcess, running_server
from tests.resolvers import GB_RESOLVER, US_RESOLVER, write_loopback_mmdb

NAME = "inference.example.com"
ANSWERS = {GB_RESOLVER: ["192.0.2.20"], US_RESOLVER: ["192.0.2.10"]}  # eu-west-1, us-east-1
ANSWERS6 = {GB_RESOLVER: ["2001:db8:20::1"], US_RESOLVER: ["2001:db8:10::1"]}


@pytest.fixture(scope="module")
def geo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    mmdb = write_loopback_mmdb(tmp_path_factory.mktemp("geo") / "loopback.mmdb")
    with running_server(
        EXAMPLE_ZONES, "--geoip-database", str(mmdb), listen=("127.0.0.1:0",)
    ) as srv:
        yield srv


def ask_from(
    srv: ServerProcess, source: str, query: dns.message.Message
) -> tuple[list[str], int | None]:
    """The addresses and the ECS scope of geodns's reply to `query` sent from `source`."""
    reply = dns.query.udp(query, "127.0.0.1", port=srv.port, timeout=2.0, source=source)
    addresses = [r.address for rrset in reply.answer for r in rrset]
    ecs = [o for o in reply.options if isinstance(o, dns.edns.ECSOption)]
    return addresses, ecs[0].scopelen if ecs else None


def zero_query(rdtype: str = "A", family: int = 4) -> dns.message.Message:
    option = dns.edns.ECSOption("0.0.0.0" if family == 4 else "::", 0)
    return dns.message.make_query(NAME, rdtype, use_edns=0, options=[option])


@pytest.mark.parametrize("order", [(GB_RESOLVER, US_RESOLVER), (US_RESOLVER, GB_RESOLVER)])
def test_ecs_zero_is_answered_for_each_resolver_with_scope_zero(
    geo: ServerProcess, order: tuple[str, str]
) -> None:
    query = zero_query()  # one message, one ID: both resolvers send identical bytes
    for _ in range(3):
        for source in order:
            assert ask_from(geo, source, query) == (ANSWERS[source], 0), source


@pytest.mark.parametrize("family", [4, 6])
def test_ecs_zero_aaaa_and_ipv6_family(geo: ServerProcess, family: int) -> None:
    """An IPv6 ::/0 option from an IPv4 resolver is the same opt-out: its address decides."""
    query = zero_query("AAAA", family)
    for source in (GB_RESOLVER, US_RESOLVER, GB_RESOLVER):
        assert ask_from(geo, source, query) == (ANSWERS6[source], 0), source


def test_ecs_zero_from_a_resolver_in_the_eu_fails_closed_inside_the_eu(tmp_path: Path) -> None:
    """A resolver located in a residency rule's area never gets a region outside that
    rule through /0: with eu-west-1 down, the GB resolver is failed closed, not sent to the
    US, while the US resolver still gets us-east-1."""
    state = tmp_path / "state.yaml"
    state.write_text(f"{NAME}:\n  eu-west-1: {{state: down}}\n")
    mmdb = write_loopback_mmdb(tmp_path / "loopback.mmdb")
    with running_server(
        EXAMPLE_ZONES,
        "--geoip-database",
        str(mmdb),
        "--state",
        str(state),
        listen=("127.0.0.1:0",),
    ) as srv:
        query = zero_query()
        for source in (GB_RESOLVER, US_RESOLVER, GB_RESOLVER):
            reply = dns.query.udp(query, "127.0.0.1", port=srv.port, timeout=2.0, source=source)
            addresses = [r.address for rrset in reply.answer for r in rrset]
            if source == GB_RESOLVER:
                assert "192.0.2.10" not in addresses and "192.0.2.30" not in addresses
            else:
                assert addresses == ["192.0.2.10"]
