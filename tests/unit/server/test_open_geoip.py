"""open_geoip: the startup log names the database and the reader once, and warns about the
pure-Python reader with the way to the C one."""

from __future__ import annotations

import logging
from pathlib import Path

import maxminddb
import pytest

from geodns.server.geoanswer import open_geoip
from tests.geo_fixtures import build_test_mmdb


def geoip_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage().startswith("GeoIP: ")]


def test_the_database_and_the_reader_in_one_info_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = build_test_mmdb(tmp_path / "city.mmdb")
    caplog.set_level(logging.INFO)
    with open_geoip(path) as db:
        (line,) = [r for r in geoip_records(caplog) if r.levelno == logging.INFO]
        assert line.getMessage() == (
            f"GeoIP: {path} (GeoIP2-City, built {db.build_date.date()}), read by {db.reader}"
        )
        pure = [r for r in geoip_records(caplog) if "pure Python" in r.getMessage()]
        assert bool(pure) == (not db.c_extension)


def test_the_pure_python_reader_is_a_warning_with_the_fix(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = build_test_mmdb(tmp_path / "city.mmdb")
    real_open = maxminddb.open_database
    monkeypatch.setattr(
        maxminddb, "open_database", lambda p, mode: real_open(p, maxminddb.MODE_MMAP)
    )
    caplog.set_level(logging.INFO)
    with open_geoip(path):
        pass
    info = [r.getMessage() for r in geoip_records(caplog) if r.levelno == logging.INFO]
    assert info[0].endswith("pure-Python reader (MODE_MMAP)")
    (warning,) = [r.getMessage() for r in geoip_records(caplog) if r.levelno == logging.WARNING]
    assert "C extension is not installed, lookups run in pure Python" in warning
    assert "pip install --force-reinstall --no-cache-dir 'maxminddb>=3'" in warning
