"""Fixtures for the geo tests: test databases built once per session, and the embedded one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from geodns.geo.geoip import GeoIPDatabase
from tests.geo_fixtures import build_country_mmdb, build_test_mmdb


@pytest.fixture(scope="session")
def city_mmdb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_test_mmdb(tmp_path_factory.mktemp("geoip") / "test-city.mmdb")


@pytest.fixture(scope="session")
def country_mmdb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_country_mmdb(tmp_path_factory.mktemp("geoip") / "test-country.mmdb")


@pytest.fixture
def city_db(city_mmdb: Path) -> Iterator[GeoIPDatabase]:
    with GeoIPDatabase(city_mmdb) as db:
        yield db


@pytest.fixture(scope="session")
def embedded_db() -> Iterator[GeoIPDatabase]:
    with GeoIPDatabase() as db:
        yield db
