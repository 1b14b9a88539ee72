"""The class path (GeoAnswers.by_class) against the reference path (locate, then route): for
random client addresses of both families, against a test database and random region states
(health, capacity inside the shedding band, model versions, a canary share), the class path
returns exactly the decision, the answer's signature and the ECS scope the reference path
returns, or declines (None) and leaves the query to it."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import HealthCheck as Hc
from hypothesis import given, settings
from hypothesis import strategies as st

from geodns.geo.geoip import GeoIPDatabase
from geodns.health.state import Health, RegionState, ServiceVersions, StateSnapshot
from geodns.server.geoanswer import SERVICE as KIND
from geodns.server.geoanswer import GeoAnswers
from tests.unit.server.test_ecs_scope_property import BASES_V4, BASES_V6, SERVICE, ZONES, database

__all__ = ["database"]

NAMES = [r.name for r in SERVICE.regions]
healths = st.sampled_from([Health.UP, Health.UP, Health.DOWN, Health.DRAIN])
loads = st.sampled_from([None, 0.5, 0.8, 0.85, 0.9, 0.97])
versions = st.sampled_from([None, "41", "42"])
# The capacity controller's published shares (None: read off the load).
sheds = st.sampled_from([None, None, 0.0, 0.25, 0.5, 1.0])
accepts = st.sampled_from([0.0, 0.5, 1.0])


@st.composite
def states(draw: st.DrawFn) -> StateSnapshot:
    state = StateSnapshot()
    for name in NAMES:
        rs = RegionState(
            draw(healths),
            draw(loads),
            version=draw(versions),
            shed=draw(sheds),
            accept=draw(accepts),
        )
        state = state.with_region(SERVICE.key, name, rs)
    if draw(st.booleans()):
        judged = ServiceVersions(frozenset({"41"}), "42", frozenset({"41", "42"}))
        state = state.with_versions({SERVICE.key: judged})
    return state


def _answers(database: tuple[GeoIPDatabase, dict], state: StateSnapshot) -> GeoAnswers:
    db, runs = database
    answers = GeoAnswers(ZONES, state, db)
    answers.set_scopes(db.file_key, runs)
    return answers


def _dynamic(answers: GeoAnswers):
    return next(d for d in answers.names.values() if d.kind == KIND)


def _compare(answers: GeoAnswers, address, source: int, qtype: int) -> bool:
    dyn = _dynamic(answers)
    sent = ipaddress.ip_network((address, source), strict=False).network_address
    fast = answers.by_class(dyn, qtype, int(sent), sent.version, source)
    if fast is None:
        return False
    slow = answers.resolve(dyn, qtype, answers.locate(sent, source))
    assert fast.signature == slow.signature, (str(sent), source)
    assert fast.scope_prefix == slow.scope_prefix, (str(sent), source)
    assert fast.decision.regions == slow.decision.regions
    assert (fast.decision.outcome, fast.decision.by_network) == (
        slow.decision.outcome,
        slow.decision.by_network,
    )
    return True


near = st.integers(-(1 << 22), 1 << 22)
# Several clients per example, through one GeoAnswers: its caches are part of the path.
v4_clients = st.lists(
    st.tuples(st.sampled_from(BASES_V4), near, st.integers(1, 32)), min_size=1, max_size=6
)
v6_clients = st.lists(
    st.tuples(st.sampled_from(BASES_V6), st.integers(0, (1 << 96) - 1), st.integers(1, 64)),
    min_size=1,
    max_size=6,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[Hc.function_scoped_fixture])
@given(states(), v4_clients, st.sampled_from([1, 28]))
def test_ipv4_the_class_path_is_the_reference_path(
    database, state: StateSnapshot, clients: list, qtype: int
) -> None:
    answers = _answers(database, state)
    for base, offset, source in clients:
        address = ipaddress.IPv4Address((int(base) + offset) % (1 << 32))
        _compare(answers, address, source, qtype)


@settings(max_examples=120, deadline=None, suppress_health_check=[Hc.function_scoped_fixture])
@given(states(), v6_clients)
def test_ipv6_the_class_path_is_the_reference_path(
    database, state: StateSnapshot, clients: list
) -> None:
    answers = _answers(database, state)
    for base, offset, source in clients:
        _compare(answers, ipaddress.IPv6Address(int(base) + offset), source, 28)


def test_the_class_path_decides_most_located_clients(database) -> None:
    """A test of the comparisons above: the class path must actually answer, not decline,
    and buckets of one class must get their own decisions while a region sheds."""
    shedding = StateSnapshot().with_region(SERVICE.key, "us-east-1", RegionState(utilization=0.8))
    answers = _answers(database, shedding)
    decided = sum(
        _compare(answers, ipaddress.ip_network(n).network_address + (i << 8), 24, 1)
        for n in ("216.160.80.0/22", "14.0.0.0/8", "15.0.0.0/8")
        for i in range(0, 4 if n.endswith("/22") else 300)
    )
    assert decided > 500


def test_it_declines_what_it_cannot_decide(database) -> None:
    answers = _answers(database, StateSnapshot())
    dyn = _dynamic(answers)
    for text in ("10.1.2.0", "192.0.2.0", "::ffff:81.2.69.0", "fe80::"):
        address = ipaddress.ip_address(text)
        assert answers.by_class(dyn, 1, int(address), address.version, 24) is None, text
    address = ipaddress.ip_address("81.2.69.0")
    assert answers.by_class(dyn, 1, int(address), 4, 0) is None  # ECS /0: the resolver's
    unmerged = GeoAnswers(ZONES, StateSnapshot(), database[0])
    assert unmerged.by_class(dyn, 1, int(address), 4, 24) is None  # no runs yet


@pytest.mark.parametrize("load", [0.8, 0.85])
def test_a_flood_of_buckets_does_not_grow_the_class_decisions(database, load: float) -> None:
    state = StateSnapshot()
    for name in ("us-east-1", "ap-northeast-1", "eu-west-1"):
        state = state.with_region(SERVICE.key, name, RegionState(utilization=load))
    answers = _answers(database, state)
    dyn = _dynamic(answers)
    base = int(ipaddress.ip_address("14.0.0.0"))  # a /8 of one record: 65,536 buckets
    for i in range(20_000):
        assert answers.by_class(dyn, 1, base + (i << 8), 4, 24) is not None
    assert len(answers._class_answers) <= 2
    assert len(answers._bucket_answers) <= 8_192


def test_a_new_database_file_stops_the_class_path_until_its_runs_come(database) -> None:
    db, runs = database
    answers = _answers(database, StateSnapshot())
    dyn = _dynamic(answers)
    address = int(ipaddress.ip_address("81.2.69.0"))
    assert answers.by_class(dyn, 1, address, 4, 24) is not None
    key = db.file_key
    try:
        db.file_key = "a-newer-file"  # what maybe_reload() sets on a swap
        answers.drop_class_decisions()  # what the worker calls then
        assert answers.by_class(dyn, 1, address, 4, 24) is None
        answers.set_scopes("a-newer-file", runs)  # its runs, built
        assert answers.by_class(dyn, 1, address, 4, 24) is not None
    finally:
        db.file_key = key
