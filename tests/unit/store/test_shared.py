"""The shared view: every key kind decodes back to what was written, changes apply in revision
order, and a value that cannot be read is reported and skipped, never raised."""

from __future__ import annotations

import json
from types import MappingProxyType

import pytest

from geodns.geo.rum import Estimate, MeasuredLatency, frozen_rows
from geodns.health.state import Health
from geodns.store.kv import Change, Entry
from geodns.store.shared import (
    Force,
    NodeRecord,
    Observation,
    SharedState,
    apply,
    decode,
    force_key,
    force_value,
    node_key,
    node_value,
    rollout_key,
    rollout_value,
    rum_key,
    rum_value,
    versions_key,
    versions_value,
    with_node,
)
from geodns.versions.rollout import RegionStep, Rollout

KEY = "inference.example.com"


def force(region: str = "eu-west-1", state: Health = Health.DRAIN, at: float = 12.5) -> Force:
    return Force(KEY, region, state, at, "alice")


def rollout(status: str = "running") -> Rollout:
    return Rollout(
        service=KEY,
        from_version="41",
        to="42",
        min_old=1,
        soak_seconds=60.0,
        started=100.0,
        status=status,  # type: ignore[arg-type]
        regions=MappingProxyType(
            {
                "us-east-1": RegionStep("updated", 110.0, 140.0, 150.0),
                "eu-west-1": RegionStep("draining", 160.0, 190.0),
            }
        ),
        soak_since=150.0,
    )


def node(name: str = "dns-a") -> NodeRecord:
    return NodeRecord(
        name=name,
        instance="0123456789abcdef",
        version="0.1.0",
        started=1_700_000_000.0,
        dns=("127.0.0.1:5353", "[::1]:5353"),
        http="127.0.0.1:8053",
        digest="abcdef012345",
        observations=MappingProxyType(
            {
                (KEY, "eu-west-1"): Observation(Health.UP, 0.42, "42"),
                (KEY, "us-east-1"): Observation(Health.DOWN, None, None, "HTTP 500"),
            }
        ),
    )


def measured() -> MeasuredLatency:
    return MeasuredLatency(
        100.0, countries=frozen_rows({"US": {"us-west-2": Estimate(21.5, 8, 1, 99.5)}})
    )


def test_a_nodes_measured_latency_round_trips() -> None:
    state = one(rum_key("dns-a"), rum_value(measured()))
    assert state.measured["dns-a"].routing_key() == measured().routing_key()


def one(key: str, value: bytes, revision: int = 7) -> SharedState:
    return decode(revision, {key: Entry(value, revision)})


# -- Round trips ----------------------------------------------------------------------------


def test_a_force_round_trips() -> None:
    f = force()
    state = one(force_key(KEY, "eu-west-1"), force_value(f))
    assert state.forces == {(KEY, "eu-west-1"): f}
    assert state.forces[(KEY, "eu-west-1")].key == (KEY, "eu-west-1")
    assert state.mod_of("forces/inference.example.com/eu-west-1") == 7
    assert state.problems == ()


def test_a_rollout_round_trips() -> None:
    r = rollout()
    state = one(rollout_key(KEY), rollout_value(r))
    assert state.rollouts == {KEY: r}


def test_seen_versions_round_trip_sorted_and_deduplicated() -> None:
    value = versions_value(["42", "41", "42"])
    assert json.loads(value) == {"seen": ["41", "42"]}
    assert one(versions_key(KEY), value).seen == {KEY: frozenset({"41", "42"})}


def test_a_node_record_round_trips() -> None:
    n = node()
    state = one(node_key("dns-a"), node_value(n))
    assert state.nodes == {"dns-a": n}
    assert state.nodes["dns-a"].observations[(KEY, "us-east-1")].error == "HTTP 500"


def test_keys_are_laid_out_as_documented() -> None:
    assert force_key(KEY, "eu-west-1") == "forces/inference.example.com/eu-west-1"
    assert rollout_key(KEY) == "rollouts/inference.example.com"
    assert versions_key(KEY) == "versions/inference.example.com"
    assert node_key("dns-a") == "nodes/dns-a"


def test_a_whole_listing_decodes_every_kind_at_once() -> None:
    entries = {
        force_key(KEY, "eu-west-1"): Entry(force_value(force()), 3),
        rollout_key(KEY): Entry(rollout_value(rollout()), 4),
        versions_key(KEY): Entry(versions_value(["41"]), 5),
        node_key("dns-a"): Entry(node_value(node()), 6, lease=9),
    }
    state = decode(6, entries)
    assert state.revision == 6
    assert (len(state.forces), len(state.rollouts), len(state.seen), len(state.nodes)) == (
        1,
        1,
        1,
        1,
    )
    assert dict(state.mod) == {k: e.mod_revision for k, e in entries.items()}


# -- apply ----------------------------------------------------------------------------------


def test_an_older_change_of_a_key_is_skipped() -> None:
    k = force_key(KEY, "eu-west-1")
    state = one(k, force_value(force(state=Health.DOWN, at=20.0)), revision=5)
    # A listing and a watch may overlap: the put of revision 3 is older than what is held.
    older = apply(state, 5, [Change(k, force_value(force(state=Health.UP, at=10.0)), 3)])
    assert older.forces[(KEY, "eu-west-1")].state is Health.DOWN
    assert older.mod_of(k) == 5
    newer = apply(state, 8, [Change(k, force_value(force(state=Health.UP, at=30.0)), 8)])
    assert newer.forces[(KEY, "eu-west-1")].state is Health.UP
    assert (newer.revision, newer.mod_of(k)) == (8, 8)
    # The state a change is applied to is never touched: it is frozen.
    assert state.forces[(KEY, "eu-west-1")].state is Health.DOWN


def test_the_revision_never_goes_back() -> None:
    state = one(rollout_key(KEY), rollout_value(rollout()), revision=9)
    assert apply(state, 4, []).revision == 9


@pytest.mark.parametrize(
    ("key", "value", "field"),
    [
        (force_key(KEY, "eu-west-1"), force_value(force()), "forces"),
        (rollout_key(KEY), rollout_value(rollout()), "rollouts"),
        (versions_key(KEY), versions_value(["41"]), "seen"),
        (node_key("dns-a"), node_value(node()), "nodes"),
        (rum_key("dns-a"), rum_value(measured()), "measured"),
    ],
)
def test_a_delete_removes_the_key(key: str, value: bytes, field: str) -> None:
    state = one(key, value, revision=3)
    assert getattr(state, field)
    gone = apply(state, 4, [Change(key, None, 4)])
    assert not getattr(gone, field)
    assert key not in gone.mod and gone.mod_of(key) == 0
    assert gone.revision == 4


# -- Bad values -----------------------------------------------------------------------------

BAD = [
    (force_key(KEY, "eu-west-1"), b"{not json", "forces/inference.example.com/eu-west-1: "),
    (
        force_key(KEY, "eu-west-1"),
        b'{"state": "sideways", "set_at": 1, "by": "x"}',
        "forces/inference.example.com/eu-west-1: 'sideways' is not a valid Health",
    ),
    (
        force_key(KEY, "eu-west-1"),
        b'{"set_at": 1, "by": "x"}',
        "forces/inference.example.com/eu-west-1: state is missing",
    ),
    (
        force_key(KEY, "eu-west-1"),
        b'{"state": "down", "set_at": "yesterday"}',
        "forces/inference.example.com/eu-west-1: set_at 'yesterday' is not epoch seconds",
    ),
    (
        "forces/inference.example.com",
        b'{"state": "down"}',
        "forces/inference.example.com: a force's key is forces/<service>/<region>",
    ),
    (rollout_key(KEY), b"[]", "rollouts/inference.example.com: rollout: must be a JSON object"),
    (
        "rollouts/chat.example.com",
        rollout_value(rollout()),
        "rollouts/chat.example.com: holds a rollout of inference.example.com",
    ),
    (
        versions_key(KEY),
        b'{"seen": [41]}',
        "versions/inference.example.com: seen: must be a list of versions",
    ),
    (node_key("dns-b"), node_value(node("dns-a")), "nodes/dns-b: holds node 'dns-a'"),
    (node_key("dns-a"), b'{"name": "dns-a"}', "nodes/dns-a: instance is missing"),
    (node_key("dns-a"), b'"dns-a"', "nodes/dns-a: must be an object"),
    ("elsewhere/x", b"{}", "elsewhere/x: not a key geodns writes"),
    (rum_key("dns-a"), b'{"format": 9}', "rum/dns-a: not a format 1 measured-latency table"),
]


@pytest.mark.parametrize(("key", "value", "problem"), BAD)
def test_a_bad_value_is_reported_and_skipped(key: str, value: bytes, problem: str) -> None:
    good = force_key(KEY, "us-east-1")
    state = decode(5, {good: Entry(force_value(force("us-east-1")), 2), key: Entry(value, 5)})
    assert len(state.problems) == 1
    assert state.problems[0].startswith(problem)
    # The key is skipped; the rest of the fleet's state stands.
    assert set(state.forces) == {(KEY, "us-east-1")}
    assert not state.rollouts and not state.seen and not state.nodes


def test_a_bad_value_replacing_a_good_one_drops_it_and_a_good_one_clears_the_problem() -> None:
    k = force_key(KEY, "eu-west-1")
    state = one(k, force_value(force()), revision=3)
    bad = apply(state, 4, [Change(k, b'{"state": "sideways"}', 4)])
    assert bad.forces == {} and len(bad.problems) == 1
    assert bad.mod_of(k) == 4  # a compare-and-swap over it still expects what is there
    fixed = apply(bad, 5, [Change(k, force_value(force()), 5)])
    assert set(fixed.forces) == {(KEY, "eu-west-1")} and fixed.problems == ()
    deleted = apply(bad, 5, [Change(k, None, 5)])
    assert deleted.problems == ()


@pytest.mark.parametrize(
    "observations", [[1], ["eu-west-1"], {"inference.example.com": "up"}], ids=str
)
def test_a_node_whose_observations_are_not_objects_is_reported(observations: object) -> None:
    value = json.dumps({"name": "dns-a", "instance": "i", "observations": observations})
    state = one(node_key("dns-a"), value.encode())
    assert state.nodes == {}
    assert state.problems and state.problems[0].startswith("nodes/dns-a: ")


# -- lasting and with_node --------------------------------------------------------------------


def test_lasting_has_forces_rollouts_and_versions_but_no_nodes() -> None:
    state = decode(
        6,
        {
            force_key(KEY, "eu-west-1"): Entry(force_value(force()), 3),
            rollout_key(KEY): Entry(rollout_value(rollout()), 4),
            versions_key(KEY): Entry(versions_value(["42", "41"]), 5),
            node_key("dns-a"): Entry(node_value(node()), 6, lease=1),
        },
    )
    lasting = state.lasting()
    assert sorted(lasting) == [
        "forces/inference.example.com/eu-west-1",
        "rollouts/inference.example.com",
        "versions/inference.example.com",
    ]
    assert lasting["forces/inference.example.com/eu-west-1"] == {
        "state": "drain",
        "set_at": 12.5,
        "by": "alice",
    }
    assert lasting["versions/inference.example.com"] == {"seen": ["41", "42"]}
    # It is plain JSON, and read back it is the same lasting state (what a cache holds).
    changes = [
        Change(k, json.dumps(v).encode(), 0) for k, v in json.loads(json.dumps(lasting)).items()
    ]
    back = apply(SharedState(), 0, changes)
    assert (back.forces, back.rollouts, back.seen) == (state.forces, state.rollouts, state.seen)
    assert back.nodes == {}


def test_with_node_adds_or_replaces_one_node_only() -> None:
    state = one(node_key("dns-b"), node_value(node("dns-b")))
    mine = node("dns-a")
    both = with_node(state, mine)
    assert set(both.nodes) == {"dns-a", "dns-b"} and both.nodes["dns-a"] is mine
    assert set(state.nodes) == {"dns-b"}
    assert both.mod == state.mod  # not a store change: nothing to compare-and-swap on
