"""A zone's records as the builder gathers them, before the tree is checked and frozen."""

from __future__ import annotations

import dns.name
import dns.rdata
import dns.rdatatype

from geodns.yamlsource import Path

RT = dns.rdatatype.RdataType

# owner -> rdtype -> (ttl, [rdata], the path of the RRset, where its errors are reported)
Draft = dict[dns.name.Name, dict[RT, tuple[int, list[dns.rdata.Rdata], Path]]]


def add_rrset(
    draft: Draft,
    path: Path,
    owner: dns.name.Name,
    rdtype: RT,
    ttl: int,
    rdatas: list[dns.rdata.Rdata],
) -> None:
    node = draft.setdefault(owner, {})
    if rdtype in node:
        # One owner written twice (`www`, `www.example.com.`): merge, as a master file does.
        old_ttl, old, old_path = node[rdtype]
        node[rdtype] = (min(old_ttl, ttl), old + rdatas, old_path)
    else:
        node[rdtype] = (ttl, rdatas, path)
