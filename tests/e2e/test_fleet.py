"""A fleet that agrees: three geodns nodes on one etcd (three members where it matters),
checking the same three simulated regions. A drain through one node reaches the others
within a second; restarts keep forces and rollouts; concurrent rollout begins through two
nodes never break min_old; health is a majority of the nodes' votes, and a node killed
loses its votes with its lease; a lost etcd leaves every node answering and refusing
changes, and they converge again when it is back."""

from __future__ import annotations

import concurrent.futures
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import wait_for
from tests.e2e.test_rolling_update import AP_NORTHEAST, API, US_EAST
from tests.etcd_cluster import etcd_cluster
from tests.fleet import NAMES, TOKEN, ask, closed_port, fleet_zone, http, running_fleet
from tests.regions import regions_in_thread

FORCE = "/api/services/inference.example.com/regions/us-east-1/state"
pytest_plugins = ["tests.browser"]


def post(node, path: str, body: dict | None = None) -> tuple[int, dict]:
    return http(node, path, body or {}, token=TOKEN)


def zones_for(ports: dict[str, int], broken: dict[int, str] | None = None, n: int = 3) -> list[str]:
    """One zone text per node; `broken` maps a node to the region it cannot reach."""
    out = []
    for i in range(n):
        mine = dict(ports)
        if broken and i in broken:
            mine[broken[i]] = closed_port()
        out.append(fleet_zone(mine))
    return out


def regions_view(node) -> dict[str, str]:
    return {r["name"]: r["state"] for r in http(node, "/api/state")[1]["services"][0]["regions"]}


@pytest.fixture(scope="module")
def etcd3():
    with etcd_cluster(3) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def etcd1():
    with etcd_cluster(1) as cluster:
        yield cluster


def test_a_drain_reaches_every_node_within_a_second_and_survives_restarts(
    etcd3, tmp_path: Path
) -> None:
    prefix = ("--store-prefix", "/drain/")
    with regions_in_thread(*NAMES, version="41") as regions:
        ports = {n: r.port for n, r in regions.items()}
        with running_fleet(tmp_path, etcd3.url, zones_for(ports), prefix) as fleet:
            a, b, c = fleet.nodes
            for node in fleet.nodes:
                wait_for(lambda n=node: ask(n) == US_EAST, timeout=10, interval=0.1)
            status, body = post(a, FORCE, {"state": "drain", "by": "alice"})
            assert status == 200, body
            sent = time.monotonic()
            for node in (b, c):
                wait_for(lambda n=node: ask(n) != US_EAST, timeout=1.0, interval=0.01)
            assert time.monotonic() - sent < 1.0
            # Every node lists all three, and agrees.
            fleet_b = http(b, "/api/state")[1]["fleet"]  # each registered before it answered
            assert sorted(n["name"] for n in fleet_b["nodes"]) == ["node0", "node1", "node2"]
            wait_for(lambda: not http(b, "/api/state")[1]["fleet"]["disagree"], timeout=5)
            listed = subprocess.run(
                [sys.executable, "-m", "geodns", "fleet", "--admin", c.admin_url or ""],
                capture_output=True, text=True, timeout=20,
            )  # fmt: skip
            assert listed.returncode == 0, listed.stdout + listed.stderr
            assert "us-east-1  drain  by alice" in listed.stdout, listed.stdout

            # A rollout step through node C, then a restart of node B (kill -9): both kept.
            assert post(c, API, {"to": "42", "min_old": 1})[0] == 201
            assert post(c, f"{API}/current/regions/eu-west-1/begin")[0] == 200
            fleet.kill(1)
            b = fleet.start(1)
            assert ask(b) != US_EAST  # still drained, before any check of its own
            status, body = http(b, f"{API}/current/regions/eu-west-1")
            assert (status, body["phase"]) == (200, "draining")
            assert regions_view(b)["us-east-1"] == "drain"
            assert regions_view(b)["eu-west-1"] == "drain"  # held by the rollout
            # Given back through B: every node answers from us-east-1 again.
            assert post(b, FORCE, {"state": "auto"})[0] == 200
            for node in (a, b, c):
                wait_for(lambda n=node: ask(n) == US_EAST, timeout=1.0, interval=0.01)
            assert post(a, f"{API}/current/abort")[0] == 200


def test_concurrent_begins_through_two_nodes_never_break_min_old(etcd3, tmp_path: Path) -> None:
    prefix = ("--store-prefix", "/race/")
    with regions_in_thread(*NAMES, version="41") as regions:
        ports = {n: r.port for n, r in regions.items()}
        with running_fleet(tmp_path, etcd3.url, zones_for(ports, n=2), prefix) as fleet:
            a, b = fleet.nodes
            pool = concurrent.futures.ThreadPoolExecutor(2)
            for round_ in range(12):
                first, second = (a, b) if round_ % 2 else (b, a)
                assert post(first, API, {"to": f"4{round_ + 2}", "min_old": 2})[0] == 201
                wait_for(lambda s=second: http(s, f"{API}/current")[0] == 200, timeout=2)
                # Each would be allowed alone (two others stay on the old version); together
                # they would leave one.
                begins = [
                    pool.submit(post, first, f"{API}/current/regions/us-east-1/begin"),
                    pool.submit(post, second, f"{API}/current/regions/eu-west-1/begin"),
                ]
                results = sorted(f.result()[0] for f in begins)
                assert results == [200, 409], results
                for node in (a, b):
                    draining = [
                        name
                        for name, step in http(node, f"{API}/current")[1]["regions"].items()
                        if step["phase"] == "draining"
                    ]
                    assert len(draining) == 1, draining
                assert post(second, f"{API}/current/abort")[0] == 200


def test_health_by_majority_and_a_dead_nodes_votes_expire(etcd1, tmp_path: Path) -> None:
    prefix = ("--store-prefix", "/quorum/", "--store-lease-ttl", "3")
    with regions_in_thread(*NAMES, version="41") as regions:
        ports = {n: r.port for n, r in regions.items()}
        # node0 cannot reach us-east-1; the other two can: up everywhere.
        zones = zones_for(ports, broken={0: "us-east-1"})
        with running_fleet(tmp_path, etcd1.url, zones, prefix) as fleet:
            a, b, c = fleet.nodes
            time.sleep(2)  # a few probe rounds, every vote in
            for node in fleet.nodes:
                assert regions_view(node)["us-east-1"] == "up"
                assert ask(node) == US_EAST
            votes = http(a, "/api/state")[1]["fleet"]["votes"]["inference.example.com"]
            assert votes["us-east-1"]["votes"]["node0"]["health"] == "down"
            assert (votes["us-east-1"]["up"], votes["us-east-1"]["down"]) == (2, 1)
            # `geodns explain` shows the vote behind the region's health.
            done = subprocess.run(
                [sys.executable, "-m", "geodns", "explain", "inference.example.com",
                 "216.160.83.1", "--admin", a.admin_url or ""],
                capture_output=True, text=True, timeout=20,
            )  # fmt: skip
            assert done.returncode == 0, done.stderr
            line = next(x for x in done.stdout.splitlines() if x.strip().startswith("us-east-1:"))
            assert "1 of 3 nodes see it down" in line and "node0 down, node1 up" in line, line
        # node0 and node1 cannot reach it: down everywhere, node2 included.
        zones = zones_for(ports, broken={0: "us-east-1", 1: "us-east-1"})
        with running_fleet(tmp_path / "two", etcd1.url, zones, prefix) as fleet:
            a, b, c = fleet.nodes
            for node in fleet.nodes:
                wait_for(lambda n=node: regions_view(n)["us-east-1"] == "down", timeout=5)
            assert ask(c) != US_EAST
            # node0 killed: its vote goes with its lease (3 s); 1 down, 1 up is no majority.
            fleet.kill(0)
            killed = time.monotonic()
            wait_for(lambda: regions_view(c)["us-east-1"] == "up", timeout=8, interval=0.1)
            assert time.monotonic() - killed > 1.0  # not before its lease ran out
            assert ask(c) == US_EAST and ask(b) == US_EAST


def test_a_lost_store_keeps_answers_refuses_changes_and_converges(
    etcd1, tmp_path: Path, browser_page: Any
) -> None:
    prefix = ("--store-prefix", "/lost/")
    with regions_in_thread(*NAMES, version="41") as regions:
        ports = {n: r.port for n, r in regions.items()}
        with running_fleet(tmp_path, etcd1.url, zones_for(ports, n=2), prefix) as fleet:
            a, b = fleet.nodes
            assert post(a, FORCE, {"state": "drain"})[0] == 200
            wait_for(lambda: ask(b) != US_EAST, timeout=1)
            etcd1.stop()
            try:
                wait_for(lambda: http(a, "/healthz")[1]["status"] == "degraded", timeout=10)
                # Answers go on, from the last shared state: still drained.
                # (Seattle's next: the US row, corrected in-country, ranks Tokyo first.)
                for node in (a, b):
                    assert ask(node) == AP_NORTHEAST
                status, body = post(b, FORCE, {"state": "auto"})
                assert status == 503
                assert body["error"].startswith("nothing was changed: the store cannot be reached")
                assert ask(b) == AP_NORTHEAST  # not applied here alone
                state = http(a, "/api/state")[1]["fleet"]["store"]
                assert state["connected"] is False and state["error"]
                browser_page.goto(a.admin_url)
                banner = browser_page.locator("#store-error")
                banner.wait_for(state="visible", timeout=10_000)
                assert "Shared store unreachable" in banner.inner_text()
            finally:
                etcd1.start()
            for node in (a, b):
                wait_for(lambda n=node: http(n, "/healthz")[1]["status"] == "ok", timeout=10)
            assert post(b, FORCE, {"state": "auto"})[0] == 200
            for node in (a, b):
                wait_for(lambda n=node: ask(n) == US_EAST, timeout=1)


def test_killing_one_etcd_member_changes_nothing(etcd3, tmp_path: Path) -> None:
    prefix = ("--store-prefix", "/member/")
    with regions_in_thread(*NAMES, version="41") as regions:
        ports = {n: r.port for n, r in regions.items()}
        with running_fleet(tmp_path, etcd3.url, zones_for(ports, n=2), prefix) as fleet:
            a, b = fleet.nodes
            etcd3.members[0].kill()
            try:
                status, body = post(a, FORCE, {"state": "drain"})
                assert status == 200, body
                wait_for(lambda: ask(b) != US_EAST, timeout=3)
                assert post(b, FORCE, {"state": "auto"})[0] == 200
                wait_for(lambda: ask(a) == US_EAST, timeout=3)
                assert http(a, "/healthz")[1]["status"] == "ok"
            finally:
                etcd3.members[0].start()


def test_a_node_started_while_etcd_is_down_starts_from_its_cache(etcd1, tmp_path: Path) -> None:
    prefix = ("--store-prefix", "/cold/")
    with regions_in_thread(*NAMES, version="41") as regions:
        ports = {n: r.port for n, r in regions.items()}
        with running_fleet(tmp_path, etcd1.url, zones_for(ports, n=1), prefix) as fleet:
            (a,) = fleet.nodes
            assert post(a, FORCE, {"state": "drain", "by": "carol"})[0] == 200
            cache = json.loads((fleet.states[0] / ".geodns-shared-cache.json").read_text())
            assert "forces/inference.example.com/us-east-1" in cache["keys"]
            fleet.kill(0)
            etcd1.stop()
            try:
                a = fleet.start(0)
                assert ask(a) == AP_NORTHEAST  # the drain, from the cache, before any etcd
                assert http(a, "/healthz")[1]["status"] == "degraded"
                assert any("unreachable at start" in line for line in a.lines), a.log()
            finally:
                etcd1.start()
            wait_for(lambda: http(a, "/healthz")[1]["status"] == "ok", timeout=10)
            assert post(a, FORCE, {"state": "auto"})[0] == 200
            wait_for(lambda: ask(a) == US_EAST, timeout=1)
