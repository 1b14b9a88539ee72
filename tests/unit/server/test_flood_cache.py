"""A cache-busting flood of random ECS subnets neither evicts a real client's cached answer
nor grows memory: the reply cache keyed by query bytes stops taking entries when full, and
the class path keeps nothing per subnet."""

from __future__ import annotations

import random

import dns.edns
import dns.message

from geodns.server.answer import EXACT_CACHE_SIZE, UDP, Answerer, Peer
from tests.unit.server.test_ecs_scope_property import ZONES, database

__all__ = ["database"]


def _query(subnet: str, qid: int) -> bytes:
    address, prefix = subnet.split("/")
    ecs = dns.edns.ECSOption(address, int(prefix))
    query = dns.message.make_query("inference.example.com", "A", use_edns=0, options=[ecs])
    query.id = qid
    return query.to_wire()


def test_a_random_subnet_flood_keeps_real_answers_and_bounds_memory(database) -> None:
    db, runs = database
    answerer = Answerer(ZONES, geoip=db)
    answerer.geo.set_scopes(db.file_key, runs)
    peer = Peer("127.0.0.1", 5353, UDP)
    real = _query("81.2.69.0/24", 7)
    first = answerer.answer(real, peer)
    cached = dict(answerer._by_state[UDP])
    assert real[2:] in cached
    rng = random.Random(3)
    for i in range(EXACT_CACHE_SIZE + 10_000):
        subnet = f"{rng.randrange(1, 224)}.{rng.randrange(256)}.{rng.randrange(256)}.0/24"
        assert answerer.answer(_query(subnet, i & 0xFFFF), peer) is not None
    assert len(answerer._by_state[UDP]) <= EXACT_CACHE_SIZE
    assert len(answerer._geo_replies.decisions) <= 50_000
    assert len(answerer.geo._class_answers) < 100 and len(answerer.geo._bucket_answers) == 0
    assert answerer._by_state[UDP][real[2:]] == cached[real[2:]]  # still there, unchanged
    assert answerer.answer(real, peer) == first
