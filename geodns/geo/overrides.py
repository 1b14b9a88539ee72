"""Client overrides: the networks and autonomous systems a service's rules name, where its
answers vary below the GeoIP network.

The routing classes (geodns.geo.scopes) are runs of GeoIP records, which know nothing of
overrides, so for a service with overrides:
- an address inside a named network, or of a listed ASN, is not the class path's: it is
  located and routed on its own (`narrow` says it is held);
- every scope, on either path, is at least as long as the prefix that keeps the network it
  names on one side of every named network's boundary, and inside the ASN database's
  network of the address (one ASN throughout), so that no reply claims addresses another
  override answers differently (RFC 7871 7.2.1).

The ASN database is a MaxMind DB file with `autonomous_system_number` records: MaxMind
GeoLite2-ASN or DB-IP's "IP to ASN Lite", both read by the maxminddb package.
"""

from __future__ import annotations

import bisect
import functools
import ipaddress
import os
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

import maxminddb

from geodns.errors import GeoIPDatabaseError
from geodns.geo.locate import Client

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class AsnDatabase:
    """ASN lookups in a memory-mapped MaxMind DB file."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._reader = _open(path)

    @classmethod
    def load(cls, path: str) -> AsnDatabase:
        """The database at `path`, opened once per version of the file (a zone reload
        that names the same unchanged file shares the reader)."""
        try:
            st = os.stat(path)
        except OSError as exc:
            raise GeoIPDatabaseError(f"{path}: ASN database file not found") from exc
        return _load(path, st.st_ino, st.st_size, st.st_mtime_ns)

    def lookup(self, value: int, bits: int) -> tuple[int | None, int]:
        """The ASN of the address `value` (None for none) and the prefix length of the
        database's network around it, in the address's own family."""
        address = ipaddress.IPv4Address(value) if bits == 32 else ipaddress.IPv6Address(value)
        try:
            data, prefix = self._reader.get_with_prefix_len(address)
        except ValueError:  # an IPv6 address in an IPv4-only file: none has an ASN
            return None, 0
        except maxminddb.InvalidDatabaseError:
            return None, bits  # a damaged stretch: this address alone
        asn = data.get("autonomous_system_number") if isinstance(data, dict) else None
        return (asn if isinstance(asn, int) else None), prefix


@functools.lru_cache(maxsize=8)
def _load(path: str, inode: int, size: int, mtime_ns: int) -> AsnDatabase:
    return AsnDatabase(path)


def _open(path: str) -> Any:
    if not os.path.isfile(path):
        raise GeoIPDatabaseError(f"{path}: ASN database file not found")
    try:
        reader = maxminddb.open_database(path, maxminddb.MODE_AUTO)
    except Exception as exc:
        raise GeoIPDatabaseError(f"{path}: not a MaxMind DB file ({exc!r})") from exc
    kind = reader.metadata().database_type
    if "ASN" not in kind.upper():
        reader.close()
        raise GeoIPDatabaseError(
            f"{path}: a {kind} database, not an ASN one (GeoLite2-ASN, DB-IP ASN Lite)"
        )
    return reader


class Overrides:
    """One service's named networks and ASNs, as the query path asks about them."""

    def __init__(
        self, networks: Iterable[IPNetwork], asns: frozenset[int], asn_db: AsnDatabase | None
    ) -> None:
        self.asns = asns
        self.asn_db = asn_db if asns else None
        self._cuts: dict[int, list[int]] = {32: [], 128: []}
        self._inside: dict[int, tuple[list[int], list[int]]] = {32: ([], []), 128: ([], [])}
        spans: dict[int, list[tuple[int, int]]] = {32: [], 128: []}
        for net in networks:
            first = int(net.network_address)
            spans[net.max_prefixlen].append((first, first + net.num_addresses))
        for bits, ranges in spans.items():
            edges = {e for r in ranges for e in r if e < 1 << bits}
            self._cuts[bits] = sorted(edges)
            starts, ends = self._inside[bits]
            for start, end in sorted(ranges):
                if ends and start <= ends[-1]:
                    ends[-1] = max(ends[-1], end)
                else:
                    starts.append(start)
                    ends.append(end)

    def narrow(self, value: int, bits: int, prefix: int) -> tuple[bool, int, int | None]:
        """(whether an override holds the address `value`, the longer of `prefix` and the
        least prefix whose network around the address every override treats alike, the
        address's ASN where the rules name any)."""
        starts, ends = self._inside[bits]
        i = bisect.bisect_right(starts, value) - 1
        held = i >= 0 and value < ends[i]
        cuts = self._cuts[bits]
        if cuts:
            j = bisect.bisect_right(cuts, value)
            # As geodns.geo.scopes.Runs.scope_in: a network of length q around `value` holds
            # x iff (value ^ x).bit_length() <= bits - q.
            if j > 0 and cuts[j - 1] > 0:
                prefix = max(prefix, bits + 1 - (value ^ (cuts[j - 1] - 1)).bit_length())
            if j < len(cuts):
                prefix = max(prefix, bits + 1 - (value ^ cuts[j]).bit_length())
        asn = None
        if self.asn_db is not None:
            asn, asn_prefix = self.asn_db.lookup(value, bits)
            held = held or asn in self.asns
            prefix = max(prefix, asn_prefix)
        return held, prefix, asn

    def narrow_client(self, client: Client) -> Client:
        """The client with its ASN, and its network (the decision cache's key, and where
        its scope starts) no wider than every override allows."""
        address = client.address
        bits, offset, value = address.max_prefixlen, 0, int(address)
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            bits, offset, value = 32, 96, int(address.ipv4_mapped)  # located as IPv4
        _, prefix, asn = self.narrow(value, bits, max(client.network.prefixlen - offset, 0))
        prefix += offset
        network = client.network
        if prefix > network.prefixlen:
            network = ipaddress.ip_network((address, prefix), strict=False)
        return replace(client, network=network, asn=asn)
