"""Small MaxMind DB files written by the tests themselves, so that expected answers are exact."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from mmdb_writer import MmdbF64, MMDBWriter
from netaddr import IPSet

# network -> (country, continent, subdivision, lat, lon); None country = an empty record `{}`.
# The addresses are those of MaxMind's own test databases where one exists (81.2.69.0/24,
# 89.160.20.0/24, 216.160.83.0/24, 2001:480::/32, 2a02:2770::/32), so that they read
# naturally in dig examples too.
TEST_NETWORKS: dict[str, tuple[str | None, str | None, str | None, float | None, float | None]] = {
    "81.2.69.0/24": ("GB", "EU", "ENG", 51.5, -0.13),  # London
    "89.160.20.0/24": ("DE", "EU", None, 52.5, 13.4),  # Berlin
    "2.2.2.0/24": ("FR", "EU", None, 48.86, 2.35),  # Paris
    "216.160.83.0/24": ("US", "NA", "WA", 47.6, -122.3),  # Seattle
    "2001:480::/32": ("US", "NA", "WA", 47.6, -122.3),  # Seattle, over IPv6
    "200.160.0.0/20": ("BR", "SA", None, -23.5, -46.6),  # Sao Paulo
    "202.214.0.0/16": ("JP", "AS", None, 35.7, 139.7),  # Tokyo
    "1.128.0.0/11": ("AU", "OC", None, -33.9, 151.2),  # Sydney
    "196.25.0.0/16": ("ZA", "AF", None, -26.2, 28.0),  # Johannesburg
    "203.0.113.0/24": (None, None, None, None, None),  # in the database, with an empty record
    "2a02:2770::/32": ("GB", "EU", None, None, None),  # no location: lat/lon stay None
}


def _city_record(
    country: str | None,
    continent: str | None,
    subdivision: str | None,
    lat: float | None,
    lon: float | None,
) -> dict[str, Any]:
    record: dict[str, Any] = {}
    if country:
        record["country"] = {"iso_code": country, "names": {"en": country}}
    if continent:
        record["continent"] = {"code": continent}
    if subdivision:
        record["subdivisions"] = [{"iso_code": subdivision}]
    if lat is not None and lon is not None:
        # Forced to doubles: mmdb-writer would otherwise store -0.13 as a float32 and 28.0 as
        # an integer, which real databases never do.
        record["location"] = {"latitude": MmdbF64(lat), "longitude": MmdbF64(lon)}
    return record


def write_mmdb(
    path: str | os.PathLike[str],
    records: dict[str, dict[str, Any]],
    database_type: str = "GeoIP2-City",
    ip_version: int = 6,
) -> Path:
    """Write `records` ({network: record}) as a MaxMind DB file; IPv6 networks need ip_version 6."""
    # An IPv6 database holds IPv4 networks under ::/96, as MaxMind and DB-IP ship theirs.
    writer = MMDBWriter(
        ip_version=ip_version,
        ipv4_compatible=ip_version == 6,
        database_type=database_type,
        languages=["en"],
        description={"en": f"geodns test {database_type}"},
    )
    for network, record in records.items():
        writer.insert_network(IPSet([network]), record)
    path = Path(path)
    writer.to_db_file(str(path))
    return path


def build_test_mmdb(path: str | os.PathLike[str], ip_version: int = 6) -> Path:
    """Write a City-style database of TEST_NETWORKS to `path` and return it.

    With ip_version=4, an IPv4-only database of the IPv4 networks.
    """
    records = {
        net: _city_record(*fields)
        for net, fields in TEST_NETWORKS.items()
        if ip_version == 6 or ":" not in net
    }
    return write_mmdb(path, records, "GeoIP2-City", ip_version)


def build_country_mmdb(path: str | os.PathLike[str]) -> Path:
    """Write a Country-style database (country and continent only) of TEST_NETWORKS."""
    records = {
        net: _city_record(country, continent, None, None, None)
        for net, (country, continent, *_rest) in TEST_NETWORKS.items()
    }
    return write_mmdb(path, records, "GeoIP2-Country")


def build_asn_mmdb(path: str | os.PathLike[str]) -> Path:
    """Write an ASN-style database: a valid MaxMind DB, but no country or city data."""
    records = {
        net: {"autonomous_system_number": 64496, "autonomous_system_organization": "Test"}
        for net in TEST_NETWORKS
    }
    return write_mmdb(path, records, "GeoLite2-ASN")
