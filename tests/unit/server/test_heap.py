"""The heap across reloads (geodns.server.heap): a replaced configuration is freed by
reference counting alone, since a reload freezes the heap instead of collecting it, and a
full collection runs only when the frozen heap has grown by a quarter."""

from __future__ import annotations

import gc
import ipaddress
import weakref
from collections.abc import Iterator

import dns.edns
import dns.message
import pytest

from geodns.health.state import Health, RegionState, StateSnapshot
from geodns.server import heap
from geodns.server.answer import TCP, UDP, Answerer
from geodns.server.run import DnsWorker, ServeConfig
from geodns.zones.loader import load_zones
from tests.conftest import ROOT
from tests.unit.server.test_ecs_scope_property import BASES_V4, BASES_V6, SERVICE, database

__all__ = ["database"]


@pytest.fixture
def no_collector() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def queries() -> Iterator[bytes]:
    """Every path an answer can take: cached or not, static, service by class and by
    network, SRV, aliases, NXDOMAIN, ANY, a cookie, bad bytes."""
    for name, qtype in (
        ("www.example.com", "A"),
        ("nothere.example.com", "A"),
        ("example.com", "ANY"),
        ("gpu.example.com", "A"),
        ("_inference._tcp.example.com", "SRV"),
    ):
        yield dns.message.make_query(name, qtype).to_wire()
        yield dns.message.make_query(name, qtype, use_edns=0, want_dnssec=True).to_wire()
    for base in BASES_V4 + BASES_V6:
        for prefix in (24, 56) if base.version == 6 else (24, 32):
            ecs = dns.edns.ECSOption(str(base), prefix)
            for qtype in ("A", "AAAA", "SRV"):
                name = "_inference._tcp.example.com" if qtype == "SRV" else SERVICE.name
                yield dns.message.make_query(name, qtype, use_edns=0, options=[ecs]).to_wire()
    cookie = dns.edns.GenericOption(dns.edns.OptionType.COOKIE, b"\x01" * 8)
    yield dns.message.make_query(SERVICE.name, "A", use_edns=0, options=[cookie]).to_wire()
    yield b"\x00\x01\x00"  # short
    yield b"\x12\x34" + b"\xff" * 30  # garbage


def test_a_replaced_answerer_and_its_zones_are_freed_without_the_collector(
    database, no_collector
) -> None:
    db, runs = database
    zones = load_zones([ROOT / "zones"])
    busy = StateSnapshot().with_region(SERVICE.key, "us-east-1", RegionState(Health.UP, 0.93))
    old = Answerer(zones, state=StateSnapshot(), geoip=db)
    old.geo.set_scopes(db.file_key, runs)
    answerer = Answerer(zones, state=busy, geoip=db)
    answerer.geo.set_scopes(db.file_key, runs)
    for transport in (UDP, TCP):
        handle = old.handler(transport)
        for wire in queries():
            handle(wire, ("192.0.2.1", 5353))
    answerer.warm_from(old)
    for transport in (UDP, TCP):
        handle = answerer.handler(transport)
        for wire in queries():
            handle(wire, ("2001:db8::1", 5353))
            handle(wire, (str(ipaddress.ip_address("198.51.100.7")), 53))
    answerer.set_state(StateSnapshot())
    refs = [weakref.ref(x) for x in (old, answerer, answerer.geo, zones, *zones.zones.values())]
    del old, answerer, handle, zones
    # With the collector off, only reference counting frees: anything still alive is held
    # by a reference cycle, which a frozen heap would keep for good.
    assert [r() for r in refs] == [None] * len(refs)


def test_a_full_collection_runs_only_when_the_frozen_heap_has_grown() -> None:
    saved = heap._after_full
    try:
        assert heap.settle(full=True)
        assert not heap.settle()  # nothing new: frozen, not collected
        kept = [[i] for i in range(gc.get_freeze_count() // 3 + 1000)]  # a third more
        assert heap.settle()
        assert not heap.settle()
        del kept
    finally:
        heap._after_full = saved
        gc.unfreeze()


def test_a_worker_keeps_no_configuration_it_has_replaced(no_collector) -> None:
    first = load_zones([ROOT / "zones"])
    config = ServeConfig(zones=first, listen=[])
    worker = DnsWorker(config)
    gone = weakref.ref(first)
    del first
    newer = load_zones([ROOT / "zones"])
    worker.apply_zones(newer)
    # The settings outlive the worker in the serve command's frames: they follow the zones.
    assert gone() is None and config.zones is newer
    # A restarted worker (forked with the settings it started with) is sent the new zones.
    assert ("zones", newer) in worker.replay(None)
