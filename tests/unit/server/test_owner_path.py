"""The first query of a name that owns data (Answerer._prepare through WireIndex.owner and
lookup.resolve_owner) gets exactly what the full lookup (name parsed, zones walked,
lookup.resolve) gives: for every name of the test zones and of a parent zone that
delegates to a child zone we also serve (with data the child occludes), every type."""

from __future__ import annotations

from pathlib import Path

import dns.name
import pytest

from geodns.server.answer import Answerer, ServerOptions
from geodns.zones.loader import load_zones
from tests.conftest import ROOT

PARENT = """\
zone: parent.example
soa: {mname: ns1.parent.example., rname: hostmaster.parent.example.}
ns: [ns1]
records:
  ns1: {A: 192.0.2.1}
  www: {A: 192.0.2.2, AAAA: "2001:db8::2", TXT: "parent"}
  mail: {MX: "10 www"}
  alias: {CNAME: www}
  child: {NS: [ns1.child]}
  ns1.child: {A: 192.0.2.9}      # glue
  www.child: {A: 192.0.2.66}     # occluded by the child zone
  cut:
    NS: [ns.elsewhere.example.]
    DS: "1 13 2 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
  below.cut: {A: 192.0.2.77}     # below a cut of this zone: a referral
"""
CHILD = """\
zone: child.parent.example
soa: {mname: ns1.child.parent.example., rname: hostmaster.child.parent.example.}
ns: [ns1]
records:
  ns1: {A: 192.0.2.9}
  www: {A: 192.0.2.10}
"""
TYPES = ["A", "AAAA", "TXT", "MX", "NS", "SOA", "DS", "CNAME", "ANY", "SRV", "TYPE999"]


def _answerers(tmp_path: Path) -> tuple[Answerer, Answerer]:
    (tmp_path / "parent.yaml").write_text(PARENT)
    (tmp_path / "child.yaml").write_text(CHILD)
    ours = [tmp_path / "parent.yaml", tmp_path / "child.yaml"]
    zones = load_zones([ROOT / "zones", ROOT / "tests" / "data" / "zones", *ours])
    options = ServerOptions(server_id="ns-test")
    fast = Answerer(zones, options)
    slow = Answerer(zones, options)
    slow._wire_index.owner = lambda qname: None  # type: ignore[method-assign]
    return fast, slow


def _names(answerer: Answerer) -> list[dns.name.Name]:
    names: set[dns.name.Name] = set()
    for zone in answerer.zones.zones.values():
        names |= set(zone.existing) | set(zone.nodes) | set(zone.delegations)
    return sorted(names)


def test_a_name_that_owns_data_gets_what_the_full_lookup_gives(tmp_path: Path) -> None:
    fast, slow = _answerers(tmp_path)
    names = _names(fast)
    taken = 0
    for name in names:
        key = name.canonicalize().to_wire()
        for rdtype in TYPES:
            qtype = dns.rdatatype.from_text(rdtype)
            taken += fast._wire_index.owner(key) is not None
            assert fast._prepare(key, qtype, 1) == slow._prepare(key, qtype, 1), (name, rdtype)
    assert taken > len(TYPES) * 20  # the new path answered most of them


@pytest.mark.parametrize(
    ("name", "owned"),
    [
        ("www.parent.example", True),
        ("www.child.parent.example", True),  # the child zone's, not the occluded data
        ("ns1.child.parent.example", True),
        ("cut.parent.example", False),  # a cut: DS here, a referral for the rest
        ("below.cut.parent.example", False),  # below a cut
        ("nothing.parent.example", False),
        ("www.example.net", False),  # no zone of ours
    ],
)
def test_what_takes_the_owner_path(tmp_path: Path, name: str, owned: bool) -> None:
    fast, _ = _answerers(tmp_path)
    hit = fast._wire_index.owner(dns.name.from_text(name).to_wire())
    assert (hit is not None) == owned
    if hit is not None:
        zone, owner = hit
        assert owner == dns.name.from_text(name)
        assert zone is fast.zones.find(owner)
