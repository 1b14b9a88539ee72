"""locate(): the GeoIP network as the decision unit, whatever the ECS source prefix."""

from __future__ import annotations

import ipaddress
import random

import pytest

import geodns.geo.locate as locate_module
from geodns.geo.geoip import GeoIPDatabase, GeoRecord, IPAddress
from geodns.geo.locate import (
    Client,
    is_special,
    locate,
    not_global,
    not_global_v6,
    special_prefix,
)

ip = ipaddress.ip_address
net = ipaddress.ip_network
LONDON = GeoRecord("GB", "EU", "ENG", 51.5, -0.13)


class NoData:
    """A database that holds nothing for any address, as public ones for special blocks."""

    def lookup(self, address: IPAddress) -> tuple[GeoRecord | None, int]:
        return None, 1


class Everywhere:
    """A database with garbage for reserved space, as DB-IP's (4000::/3 in CH)."""

    def lookup(self, address: IPAddress) -> tuple[GeoRecord | None, int]:
        return GeoRecord("CH", "EU", None, 46.9, 7.2), 2


class InternalNetworks:
    """An organisation's own database, placing two of its private networks."""

    def lookup(self, address: IPAddress) -> tuple[GeoRecord | None, int]:
        if address in net("10.1.0.0/16"):
            return GeoRecord("DE", "EU", None, None, None), 16
        if address in net("127.0.0.2/32"):
            return LONDON, 32
        return None, 1


def test_source_address_without_ecs(city_db: GeoIPDatabase) -> None:
    client = locate(city_db, "81.2.69.142")
    assert client == Client(ip("81.2.69.142"), None, net("81.2.69.0/24"), LONDON, True)


@pytest.mark.parametrize(
    ("address", "source", "network"),
    [
        ("81.2.69.0", 24, "81.2.69.0/24"),  # source = database prefix
        ("81.2.69.128", 25, "81.2.69.0/24"),  # source longer: the database's /24 holds
        ("81.2.69.142", 32, "81.2.69.0/24"),
        # A shorter source: the network is still the record's, which the reply's scope
        # names (RFC 7871 7.2.1 lets it be longer than the source); claiming the source's
        # /16 would cover addresses that get other answers.
        ("81.2.69.0", 16, "81.2.69.0/24"),
        ("202.214.7.0", 24, "202.214.0.0/16"),  # Tokyo: the database's /16 covers the /24
        ("1.128.0.0", 11, "1.128.0.0/11"),
        ("1.130.0.0", 16, "1.128.0.0/11"),
        ("2a02:2770:10::", 48, "2a02:2770::/32"),
        ("2a02:2770::", 24, "2a02:2770::/32"),
        ("2001:480::", 56, "2001:480::/32"),
    ],
)
def test_network_is_the_database_network_whatever_the_source(
    city_db: GeoIPDatabase, address: str, source: int, network: str
) -> None:
    client = locate(city_db, address, source)
    assert client.network == net(network)
    assert client.source_prefix == source
    assert client.address == ip(address)


def test_record_comes_from_the_ecs_address(city_db: GeoIPDatabase) -> None:
    assert locate(city_db, "216.160.83.0", 24).record == GeoRecord("US", "NA", "WA", 47.6, -122.3)
    assert locate(city_db, "200.160.0.0", 20).record == GeoRecord("BR", "SA", None, -23.5, -46.6)
    assert locate(city_db, "2a02:2770::", 32).record == GeoRecord("GB", "EU", None, None, None)


def test_unknown_public_address_gets_the_database_network(city_db: GeoIPDatabase) -> None:
    _, prefix = city_db.lookup(ip("8.8.8.8"))
    client = locate(city_db, "8.8.8.8")
    assert client.record is None
    assert client.network == net(("8.8.8.8", prefix), strict=False)
    assert locate(city_db, "8.8.8.0", 24).network.prefixlen == prefix


def test_ipv4_mapped_address_is_looked_up_as_ipv4(city_db: GeoIPDatabase) -> None:
    client = locate(city_db, "::ffff:81.2.69.142")
    assert client.record == LONDON
    # The network stays in the query's family: 24 IPv4 bits are 120 IPv6 bits.
    assert client.network == net("::ffff:81.2.69.0/120")
    assert locate(city_db, "::ffff:81.2.69.0", 112).network == net("::ffff:81.2.69.0/120")
    assert locate(city_db, "::ffff:10.1.2.3").network == net("::ffff:10.0.0.0/104")


@pytest.mark.parametrize(
    ("address", "network"),
    [
        ("10.1.2.3", "10.0.0.0/8"),
        ("172.20.0.1", "172.16.0.0/12"),
        ("192.168.1.1", "192.168.0.0/16"),
        ("127.0.0.1", "127.0.0.0/8"),
        ("169.254.10.1", "169.254.0.0/16"),
        ("100.64.1.1", "100.64.0.0/10"),
        ("0.0.0.0", "0.0.0.0/8"),
        ("192.0.0.9", "192.0.0.0/24"),
        ("192.0.2.1", "192.0.2.0/24"),  # documentation: is_private, and unlocatable
        ("198.51.100.7", "198.51.100.0/24"),
        ("203.0.113.9", "203.0.113.0/24"),
        ("198.19.0.1", "198.18.0.0/15"),
        ("224.0.0.1", "224.0.0.0/4"),
        ("239.255.255.250", "224.0.0.0/4"),
        ("240.0.0.1", "240.0.0.0/4"),
        ("255.255.255.255", "240.0.0.0/4"),
        ("::", "::/128"),
        ("::1", "::1/128"),
        ("64:ff9b::1.2.3.4", "::/8"),
        ("100::1", "100::/64"),
        ("2001:db8::53", "2001:db8::/32"),
        ("2001::1", "2001::/23"),
        ("3fff::1", "3fff::/20"),
        ("fd00::1", "fc00::/7"),
        ("fe80::1", "fe80::/10"),
        ("fec0::1", "fec0::/10"),
        ("ff02::1", "ff00::/8"),
        ("4000::1", "4000::/3"),
    ],
)
def test_special_purpose_addresses_without_data_are_unlocated(address: str, network: str) -> None:
    client = locate(NoData(), address)  # type: ignore[arg-type]
    assert client.record is None
    assert client.network == net(network)
    assert not client.from_database


def test_special_purpose_block_whatever_the_source_prefix() -> None:
    db = NoData()
    assert locate(db, "10.0.0.0", 24).network == net("10.0.0.0/8")  # type: ignore[arg-type]
    assert locate(db, "0.0.0.0", 4).network == net("0.0.0.0/8")  # type: ignore[arg-type]
    assert locate(db, "fd00::", 56).network == net("fc00::/7")  # type: ignore[arg-type]


def test_internal_networks_a_database_places_are_located_but_never_widened() -> None:
    db = InternalNetworks()
    de = locate(db, "10.1.2.3", 24)  # type: ignore[arg-type]
    assert de.record is not None and de.record.country == "DE"
    assert de.network == net("10.1.0.0/16")
    assert not de.from_database
    lo = locate(db, "127.0.0.2")  # type: ignore[arg-type]
    assert lo.record == LONDON and lo.network == net("127.0.0.2/32")
    assert locate(db, "127.0.0.3").record is None  # type: ignore[arg-type]


@pytest.mark.parametrize("address", ["4000::1", "192.0.0.200", "2001:db8::1", "198.51.100.1"])
def test_reserved_and_documentation_blocks_are_never_looked_up(address: str) -> None:
    client = locate(Everywhere(), address)  # type: ignore[arg-type]
    assert client.record is None


def test_non_global_address_outside_the_table_gets_a_site_prefix(
    city_db: GeoIPDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As if this Python's ipaddress knew special ranges the table lacks.
    monkeypatch.setattr(locate_module, "_TABLES", {4: (), 6: ()})
    assert locate(city_db, "10.1.2.3").network == net("10.1.2.0/24")
    assert locate(city_db, "10.1.2.3", 16).network == net("10.1.2.0/24")
    assert locate(city_db, "fd12:3456:789a:1::1").network == net("fd12:3456:789a::/48")
    # A public address is unaffected.
    assert locate(city_db, "81.2.69.142").network == net("81.2.69.0/24")


def test_table_covers_what_ipaddress_calls_non_global() -> None:
    rng = random.Random(7)
    samples: list[IPAddress] = [ipaddress.IPv4Address(rng.getrandbits(32)) for _ in range(20000)]
    samples += [ipaddress.IPv6Address(rng.getrandbits(128)) for _ in range(20000)]
    # Both edges of every block and the addresses just beside them.
    for block in locate_module._SPECIAL_V4 + locate_module._SPECIAL_V6:
        n = net(block)
        for value in (int(n.network_address) - 1, int(n.broadcast_address) + 1):
            if 0 <= value < 2**n.max_prefixlen:
                samples.append(ip(value) if n.version == 4 else ipaddress.IPv6Address(value))
        samples += [n.network_address, n.broadcast_address]
    for address in samples:
        if not_global(address):
            assert special_prefix(address) is not None, address


def test_source_prefix_out_of_range(city_db: GeoIPDatabase) -> None:
    with pytest.raises(ValueError, match="source prefix 33"):
        locate(city_db, "81.2.69.0", 33)
    with pytest.raises(ValueError):
        locate(city_db, "2001:480::", 129)
    with pytest.raises(ValueError):
        locate(city_db, "81.2.69.0", -1)
    with pytest.raises(ValueError):
        locate(city_db, "not an address")


def test_client_is_a_frozen_hashable_value(city_db: GeoIPDatabase) -> None:
    a = locate(city_db, ip("81.2.69.142"), 24)
    b = locate(city_db, "81.2.69.142", 24)
    assert a == b and hash(a) == hash(b)
    assert {a: 1}[b] == 1
    with pytest.raises(AttributeError):
        a.record = None  # type: ignore[misc]


def test_embedded_database_locates_gb_and_us(embedded_db: GeoIPDatabase) -> None:
    gb = locate(embedded_db, "81.2.69.142")
    assert gb.record is not None and (gb.record.country, gb.record.continent) == ("GB", "EU")
    assert gb.network.supernet_of(net("81.2.69.142/32"))
    us = locate(embedded_db, "216.160.83.0", 24)
    assert us.record is not None and (us.record.country, us.record.continent) == ("US", "NA")
    assert us.network.overlaps(net("216.160.83.0/24"))


def test_an_unplaced_internal_address_gets_the_databases_empty_network() -> None:
    """Not its whole block: that would claim the networks the database does place."""

    class Placed(InternalNetworks):
        def lookup(self, address: IPAddress) -> tuple[GeoRecord | None, int]:
            found = super().lookup(address)
            return found if found[0] is not None else (None, 14)  # the empty 10.8.0.0/14

    client = locate(Placed(), "10.9.0.1", 24)  # type: ignore[arg-type]
    assert client.record is None
    assert client.network == net("10.8.0.0/14")
    assert not client.from_database


def test_every_non_global_ipv4_network_is_a_special_purpose_block() -> None:
    # The class path (GeoAnswers.by_class) skips the not-global check for IPv4 on this.
    constants = ipaddress._IPv4Constants  # type: ignore[attr-defined]
    networks = [*constants._private_networks, constants._multicast_network]
    networks += [constants._reserved_network, constants._linklocal_network]
    networks += [constants._loopback_network]
    for network in networks:
        prefix = special_prefix(network.network_address)
        assert prefix is not None and prefix <= network.prefixlen, network


@pytest.mark.parametrize("bits", [32, 128])
def test_is_special_agrees_with_special_prefix(bits: int) -> None:
    """The query path's integer check (one binary search) against the per-length table, for
    random addresses, and the first and last address of every block and around it."""
    rng = random.Random(bits)
    version = 4 if bits == 32 else 6
    blocks = locate_module._SPECIAL_V4 if bits == 32 else locate_module._SPECIAL_V6
    values = [rng.getrandbits(bits) >> rng.randint(0, 8) for _ in range(20_000)]
    for block in blocks:
        net = ipaddress.ip_network(block)
        first = int(net.network_address)
        values += [first - 1, first, first + net.num_addresses - 1, first + net.num_addresses]
    for value in values:
        if not 0 <= value < 1 << bits:
            continue
        address = ipaddress.IPv4Address(value) if bits == 32 else ipaddress.IPv6Address(value)
        assert is_special(value, version) == (special_prefix(address) is not None), address


def test_not_global_v6_agrees_with_not_global_outside_the_special_blocks() -> None:
    """Where the class path asks it (unlocated IPv6 addresses outside the special-purpose
    blocks): random addresses, and both edges of every range ipaddress keeps."""
    rng = random.Random(6)
    values = [rng.getrandbits(128) >> rng.randint(0, 8) for _ in range(20_000)]
    values += [(0x2 << 124) | rng.getrandbits(124) for _ in range(20_000)]  # 2000::/3
    if locate_module._NOT_GLOBAL_V6 is not None:
        for start, end in zip(*locate_module._NOT_GLOBAL_V6, strict=True):
            values += [start - 1, start, end - 1, end]
    checked = 0
    for value in values:
        if not 0 <= value < 1 << 128 or is_special(value, 6):
            continue
        checked += 1
        assert not_global_v6(value) == not_global(ipaddress.IPv6Address(value)), value
    assert checked > 10_000
