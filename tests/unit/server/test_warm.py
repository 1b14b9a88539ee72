"""A reload's new Answerer is warmed with the static queries the old one answered last
(Answerer.warm_from): the names in use are cached when it takes over, each with the new
configuration's answer, and nothing is counted, since no client asked."""

from __future__ import annotations

from pathlib import Path

import dns.message

from geodns.server.answer import UDP, Answerer, Peer
from geodns.zones.loader import load_zones

ZONE = """\
zone: example.com
soa: {mname: ns1.example.com., rname: hostmaster.example.com.}
ns: [ns1.example.com.]
records:
  ns1: {A: 192.0.2.53}
{records}
"""
PEER = Peer("127.0.0.1", 5353, UDP)


def _answerer(tmp_path: Path, first: str) -> Answerer:
    path = tmp_path / "example.com.yaml"
    lines = [f"  h{i}: {{A: {first if i == 1 else f'10.0.0.{i}'}}}" for i in range(200)]
    path.write_text(ZONE.replace("{records}", "\n".join(lines)))
    return Answerer(load_zones([path]))


def _ask(answerer: Answerer, name: str) -> dns.message.Message:
    query = dns.message.make_query(name, "A")
    query.id = 7
    wire = answerer.answer(query.to_wire(), PEER)
    assert wire is not None
    return dns.message.from_wire(wire)


def test_the_new_answerer_is_warm_with_its_own_answers(tmp_path: Path) -> None:
    old = _answerer(tmp_path, "10.0.0.1")
    for i in range(200):
        _ask(old, f"h{i}.example.com")
    new = _answerer(tmp_path, "10.9.9.9")  # h1 changed in the reload
    counted = sum(new.stats.counts[UDP])
    assert new.warm_from(old) == 400  # 200 names, then 200 replies
    assert set(new._prepared) == set(old._prepared)
    assert set(new._exact[UDP]) == set(old._exact[UDP])
    assert sum(new.stats.counts[UDP]) == counted  # warming answers no client
    assert _ask(new, "h1.example.com").answer[0][0].address == "10.9.9.9"
    assert _ask(new, "h2.example.com").answer[0][0].address == "10.0.0.2"


def test_warming_stops_at_its_budget_newest_first(tmp_path: Path) -> None:
    old = _answerer(tmp_path, "10.0.0.1")
    for i in range(200):
        _ask(old, f"h{i}.example.com")
    new = _answerer(tmp_path, "10.0.0.1")
    assert new.warm_from(old, budget=0.0) == 64  # the clock is read after each 64
    # Names come first, the newest ones: no reply was warmed.
    assert set(new._prepared) == set(list(old._prepared)[-64:])
    assert not new._exact[UDP]
