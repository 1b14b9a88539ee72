"""GeoIP lookups in a memory-mapped MaxMind DB file (GeoLite2, GeoIP2 or DB-IP; City or Country)."""

from __future__ import annotations

import ipaddress
import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import maxminddb
import maxminddb.reader

from geodns.errors import GeoIPDatabaseError
from geodns.geo.embedded import embedded_path

log = logging.getLogger("geodns.geoip")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# DB-IP's Lite licence (CC BY 4.0) asks for this text, linked to the URL, wherever results show.
DBIP_ATTRIBUTION = "IP Geolocation by DB-IP"
DBIP_URL = "https://db-ip.com"
GEOLITE2_ATTRIBUTION = (
    "This product includes GeoLite2 data created by MaxMind, available from https://www.maxmind.com"
)

# Addresses that any real City or Country database locates; the first one with a record
# decides whether the file holds country data (an ASN database answers without `country`).
# 81.2.69.142 is also in MaxMind's test databases and in ours.
_PROBES = tuple(
    ipaddress.ip_address(a)
    for a in ("81.2.69.142", "8.8.8.8", "1.1.1.1", "216.160.83.56", "2001:4860:4860::8888")
)


@dataclass(frozen=True, slots=True)
class GeoRecord:
    """What the database says about one network."""

    country: str | None  # ISO 3166-1 alpha-2, upper case
    continent: str | None  # AF AN AS EU NA OC SA
    subdivision: str | None  # ISO 3166-2 code of the first subdivision (DB-IP Lite has none)
    lat: float | None
    lon: float | None


def _signature(path: str) -> tuple[int, int, int, int] | None:
    # geoipupdate writes a new file and renames it over the old one: the inode changes even
    # when size and mtime happen to match.
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def file_key(signature: tuple[int, ...] | None) -> str:
    """Names one version of a database file: what derived data (merged scopes) is keyed by."""
    return "-".join(str(x) for x in signature) if signature else "unknown"


def current_file_key(path: str) -> str:
    """The file_key of the file at `path` now: a builder compares it with the key the
    serving processes have open, to refuse a file replaced under it."""
    return file_key(_signature(path))


def geo_record(data: Any) -> GeoRecord | None:
    """The fields routing reads of a City or Country record; None for a record without any."""
    if not isinstance(data, dict):
        return None
    country = data.get("country")
    continent = data.get("continent")
    subdivisions = data.get("subdivisions")
    location = data.get("location")
    code = country.get("iso_code") if country else None
    cont = continent.get("code") if continent else None
    sub = subdivisions[0].get("iso_code") if subdivisions else None
    lat = lon = None
    if location:
        lat = location.get("latitude")
        lon = location.get("longitude")
        if lat is None or lon is None:  # some records carry only an accuracy radius
            lat = lon = None
    if code is None and cont is None and lat is None:
        return None
    return GeoRecord(
        code.upper() if code else None,
        cont.upper() if cont else None,
        sub,
        None if lat is None else float(lat),
        None if lon is None else float(lon),
    )


def open_reader(path: str) -> Any:
    """Open and probe `path`; the reader, or GeoIPDatabaseError naming the file."""
    if not os.path.exists(path):
        raise GeoIPDatabaseError(f"{path}: GeoIP database file not found")
    if not os.path.isfile(path):
        raise GeoIPDatabaseError(f"{path}: not a regular file")
    try:
        # MODE_AUTO takes the C extension (libmaxminddb, itself memory-mapped) when installed;
        # MODE_MMAP would force the pure-Python reader, about ten times slower per lookup.
        reader = maxminddb.open_database(path, maxminddb.MODE_AUTO)
    except FileNotFoundError as exc:  # renamed away between the check and the open
        raise GeoIPDatabaseError(f"{path}: GeoIP database file not found") from exc
    except OSError as exc:
        raise GeoIPDatabaseError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except Exception as exc:
        # InvalidDatabaseError for most garbage, but the pure-Python reader can also fail
        # with KeyError, IndexError or struct.error on a damaged metadata section.
        raise GeoIPDatabaseError(f"{path}: not a MaxMind DB file ({exc!r})") from exc
    try:
        _probe(reader, path)
    except BaseException:
        reader.close()
        raise
    return reader


def _probe(reader: Any, path: str) -> None:
    kind = reader.metadata().database_type
    for address in _PROBES:
        try:
            data = reader.get(address)
        except ValueError:  # an IPv6 probe in an IPv4-only database
            continue
        except Exception as exc:  # a corrupt tree or data section
            raise GeoIPDatabaseError(f"{path}: corrupt MaxMind DB file ({exc})") from exc
        if data is None:
            continue
        if isinstance(data, dict) and ({"country", "continent", "location"} & data.keys()):
            return
        raise GeoIPDatabaseError(
            f"{path}: no country or city data (database type {kind!r}):"
            " use a City or Country database"
        )
    raise GeoIPDatabaseError(
        f"{path}: no record for any well-known address (database type {kind!r}):"
        " use a City or Country database"
    )


PURE_PYTHON_WARNING = (
    "GeoIP: maxminddb's C extension is not installed, lookups run in pure Python, about ten"
    " times slower: `pip install --force-reinstall --no-cache-dir 'maxminddb>=3'` takes a wheel"
    " with it (Linux x86-64 and arm64, macOS, Windows); elsewhere it is built when a C"
    " compiler is present (docs/geoip.md)"
)


class GeoIPDatabase:
    """A MaxMind DB reader that can be swapped for a newer file without a restart."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.embedded = path is None
        self.path = embedded_path() if path is None else os.fspath(path)
        self._signature = _signature(self.path)
        self._reader = open_reader(self.path)
        self.file_key = file_key(self._signature)
        self._describe()

    def _describe(self) -> None:
        meta = self._reader.metadata()
        self.build_date = datetime.fromtimestamp(meta.build_epoch, UTC)
        self.database_type: str = meta.database_type
        self.ip_version: int = meta.ip_version
        # The pure-Python reader works, but at over 100 us a lookup instead of about 11 us.
        self.c_extension = not isinstance(self._reader, maxminddb.reader.Reader)
        self.reader_mode = "MODE_MMAP_EXT" if self.c_extension else "MODE_MMAP"

    @property
    def reader(self) -> str:
        """Which maxminddb reader serves lookups, for the startup log and /api/state."""
        kind = "C extension" if self.c_extension else "pure-Python reader"
        return f"maxminddb {maxminddb.__version__} {kind} ({self.reader_mode})"

    @property
    def attribution(self) -> str | None:
        """The credit the data's licence asks for, or None when it asks for none we know of."""
        if self.database_type.upper().startswith("DBIP"):
            return f"{DBIP_ATTRIBUTION} ({DBIP_URL})"
        if self.database_type.startswith("GeoLite2"):
            return GEOLITE2_ATTRIBUTION
        return None

    def lookup(self, address: IPAddress) -> tuple[GeoRecord | None, int]:
        """The record for `address` (None when there is none) and its network's prefix length.

        An IPv4 address in an IPv6 database gives an IPv4 prefix length (at most 32).
        """
        try:
            data, prefix = self._reader.get_with_prefix_len(address)
        except ValueError:
            # An IPv6 address in an IPv4-only database: no IPv6 address has data, so all of
            # them share one answer.
            return None, 0
        except maxminddb.InvalidDatabaseError as exc:
            # A damaged stretch of the file must not fail the query: unlocated, and for this
            # one address only, so no resolver shares the answer wider than it should.
            log.debug("GeoIP lookup of %s in %s failed: %s", address, self.path, exc)
            return None, address.max_prefixlen
        return geo_record(data), prefix

    def maybe_reload(self) -> bool:
        """Swap in the file on disk if it was replaced since it was opened; True if swapped.

        A replacement that fails to open or probe leaves the old reader serving and raises
        GeoIPDatabaseError once; the same broken file is not retried until it changes again.
        """
        signature = _signature(self.path)
        if signature == self._signature:
            return False
        self._signature = signature
        new = open_reader(self.path)
        old, self._reader = self._reader, new
        self.file_key = file_key(signature)
        self._describe()
        # Safe only because lookups are synchronous: none can be using the old map now.
        old.close()
        return True

    def close(self) -> None:
        self._reader.close()

    def __enter__(self) -> GeoIPDatabase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"GeoIPDatabase({self.path!r}, type={self.database_type!r},"
            f" built={self.build_date:%Y-%m-%d})"
        )
