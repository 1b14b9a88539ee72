"""The fleet's Prometheus families and `geodns fleet`'s text, from a fleet view as
ControlPlane.fleet_view() gives it."""

from __future__ import annotations

import copy
from typing import Any

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry

from geodns.admin.metrics import FleetCollector
from geodns.fleetcli import describe, healthy

SERVICE = "inference.example.com"


def node(name: str, agrees: bool = True, me: bool = False) -> dict[str, Any]:
    return {
        "name": name,
        "self": me,
        "dns": ["10.0.0.1:53"],
        "http": None,
        "version": "0.1.0",
        "started": 1_700_000_000.0,
        "last_seen": 1_700_000_100.0,
        "digest": "aaaa" if agrees else "bbbb",
        "agrees": agrees,
    }


def vote(health: str) -> dict[str, Any]:
    return {"health": health, "utilization": 0.4, "version": "42", "error": None}


VIEW: dict[str, Any] = {
    "node": "dns-a",
    "store": {
        "kind": "etcd",
        "description": "etcd etcd://127.0.0.1:23790 (prefix /geodns/)",
        "connected": True,
        "since": 1_700_000_000.0,
        "error": None,
        "revision": 1234,
        "last_event": 1_700_000_099.0,
        "round_trip_seconds": 0.004,
        "lost": 2,
        "problems": [],
    },
    "nodes": [node("dns-a", me=True), node("dns-b"), node("dns-c", agrees=False)],
    "disagree": ["dns-c"],
    "votes": {
        SERVICE: {
            "us-east-1": {
                "policy": "majority",
                "result": "up",
                "up": 2,
                "down": 1,
                "reason": "2 of 3 up",
                "votes": {"dns-a": vote("up"), "dns-b": vote("up"), "dns-c": vote("down")},
            },
            "eu-west-1": {
                "policy": "any",
                "result": "down",
                "up": 0,
                "down": 3,
                "reason": "none up",
                "votes": {"dns-a": vote("down"), "dns-b": vote("down"), "dns-c": vote("down")},
            },
            "ap-northeast-1": {
                "policy": "majority",
                "result": None,
                "up": 0,
                "down": 0,
                "reason": "not checked yet",
                "votes": {},
            },
        }
    },
}


class StubPlane:
    """Only what the collector reads."""

    def __init__(self, view: dict[str, Any]) -> None:
        self.view = view

    def fleet_view(self) -> dict[str, Any]:
        return self.view


def scrape(view: dict[str, Any]) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FleetCollector(StubPlane(view)))
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def labels(**kw: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(kw.items()))


def test_store_and_fleet_families() -> None:
    m = scrape(VIEW)
    assert m["geodns_store_connected"] == {labels(kind="etcd"): 1.0}
    assert m["geodns_store_revision"] == {(): 1234.0}
    assert m["geodns_store_lost_total"] == {(): 2.0}
    assert m["geodns_store_round_trip_seconds"] == {(): 0.004}
    assert m["geodns_fleet_nodes"] == {(): 3.0}
    assert m["geodns_fleet_disagreeing_nodes"] == {(): 1.0}


def test_votes_and_quorum_per_region() -> None:
    m = scrape(VIEW)
    votes = m["geodns_region_votes"]
    us = {"service": SERVICE, "region": "us-east-1"}
    eu = {"service": SERVICE, "region": "eu-west-1"}
    assert votes[labels(**us, health="up")] == 2.0
    assert votes[labels(**us, health="down")] == 1.0
    assert votes[labels(**eu, health="up")] == 0.0  # both values, always: rates need them
    assert votes[labels(**eu, health="down")] == 3.0
    quorum = m["geodns_region_quorum_up"]
    assert quorum == {labels(**us): 1.0, labels(**eu): 0.0}  # unchecked Tokyo: absent


def test_a_lost_store_and_an_unknown_round_trip() -> None:
    view = copy.deepcopy(VIEW)
    view["store"].update(
        kind="embedded", connected=False, error="no answer", round_trip_seconds=None
    )
    m = scrape(view)
    assert m["geodns_store_connected"] == {labels(kind="embedded"): 0.0}
    assert "geodns_store_round_trip_seconds" not in m


def test_one_node_alone_has_no_votes() -> None:
    view = copy.deepcopy(VIEW)
    view.update(nodes=[node("dns-a", me=True)], disagree=[], votes={})
    m = scrape(view)
    assert m["geodns_fleet_nodes"] == {(): 1.0}
    assert m["geodns_fleet_disagreeing_nodes"] == {(): 0.0}
    assert "geodns_region_votes" not in m
    assert "geodns_region_quorum_up" not in m


def test_geodns_fleet_text() -> None:
    lines = describe(VIEW, VIEW["nodes"][1]["last_seen"] + 3)
    assert lines[0].startswith("store etcd etcd://127.0.0.1:23790 (prefix /geodns/): connected")
    assert lines[0].endswith(", revision 1234, commit to watch 4 ms; lost 2 times")
    assert lines[1] == "nodes: 3, 1 differs"
    assert [line.split() for line in lines[2:5]] == [
        ["*", "dns-a", "10.0.0.1:53", "0.1.0", "seen", "now", "agrees"],
        ["dns-b", "10.0.0.1:53", "0.1.0", "seen", "3", "s", "ago", "agrees"],
        ["dns-c", "10.0.0.1:53", "0.1.0", "seen", "3", "s", "ago", "DIFFERS"],
    ]
    assert lines[5:] == [
        SERVICE,
        "  region          dns-a  dns-b  dns-c  quorum",
        "  us-east-1       up     up     down   up (majority, 2 up 1 down)",
        "  eu-west-1       down   down   down   down (any, 0 up 3 down)",
        "  ap-northeast-1  -      -      -      unchecked (majority, 0 up 0 down)",
        "forces: none",
        "rollouts: none",
    ]
    assert healthy(VIEW) is False  # dns-c differs


def test_geodns_fleet_lists_the_shared_forces_and_rollouts() -> None:
    now = 1_700_000_400.0
    shared = {
        **VIEW,
        "forces": [
            {"service": SERVICE, "region": "eu-west-1", "state": "drain", "set_at": now - 300,
             "by": "alice (INC-7)"}
        ],
        "rollouts": [
            {"service": SERVICE, "from_version": "42", "to": "43", "status": "running",
             "regions": {"us-east-1": "updated", "eu-west-1": "draining"}}
        ],
    }  # fmt: skip
    lines = describe(shared, now)
    assert lines[-4:] == [
        "forces: 1",
        f"  {SERVICE}  eu-west-1  drain  by alice (INC-7)  5 min ago",
        "rollouts: 1",
        f"  {SERVICE}: 42 -> 43 running (us-east-1 updated, eu-west-1 draining)",
    ]


def test_geodns_fleet_text_of_a_lost_store() -> None:
    view = copy.deepcopy(VIEW)
    view["store"].update(connected=False, error="connection refused", lost=1)
    view["disagree"] = []
    line = describe(view, view["store"]["since"] + 75)[0]
    assert "UNREACHABLE since" in line
    assert "(75 s ago): connection refused; answering from revision 1234" in line
    assert line.endswith("changes are refused; lost 1 time")
    assert healthy(view) is False
    view["store"]["connected"] = True
    assert healthy(view) is True
