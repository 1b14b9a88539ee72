"""The fleet as one real `geodns serve` on the embedded store shows it: itself the only node,
the store connected, its own health votes deciding each region. /api/state, /healthz,
/metrics, `geodns fleet` and the dashboard's Fleet panel in headless Chromium.

(Several nodes on etcd, and a store lost and back, are tested beside the etcd store.)
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from geodns import fleetcli
from geodns.demo.region import SimulatedRegion
from tests.conftest import ServerProcess, running_server, wait_for
from tests.e2e.test_admin import http, metrics
from tests.e2e.test_rolling_update import NAMES, SERVICE, zone_text
from tests.regions import regions_in_thread

pytest_plugins = ["tests.browser"]

NODE = "dns-a"


@pytest.fixture(scope="module")
def node(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[dict[str, SimulatedRegion], ServerProcess, Path]]:
    """Three healthy regions checked every 0.2 s by one node, its state in a directory of
    its own."""
    base = tmp_path_factory.mktemp("fleet")
    zones, state = base / "zones", base / "state"
    zones.mkdir()
    with regions_in_thread(*NAMES, version="41") as regions:
        (zones / "example.com.yaml").write_text(zone_text({n: r.port for n, r in regions.items()}))
        with running_server(
            zones, "--watch-interval", "0", "--node-name", NODE, "--state-dir", str(state)
        ) as srv:
            wait_for(lambda: _all_voted(srv), timeout=10, interval=0.1)
            yield regions, srv, base


def _all_voted(srv: ServerProcess) -> bool:
    votes = http(srv, "/api/state")[1]["fleet"]["votes"].get(SERVICE, {})
    return all(votes.get(r, {}).get("result") == "up" for r in NAMES)


def test_the_node_is_alone_on_the_embedded_store(node: Any) -> None:
    _, srv, base = node
    status, state = http(srv, "/api/state")
    assert status == 200
    fleet = state["fleet"]
    assert fleet["node"] == NODE
    assert [(n["name"], n["self"], n["agrees"]) for n in fleet["nodes"]] == [(NODE, True, True)]
    assert fleet["nodes"][0]["version"] == state["server"]["version"]
    assert fleet["nodes"][0]["dns"]  # where it listens
    assert fleet["disagree"] == []
    store = fleet["store"]
    assert (store["kind"], store["connected"], store["error"]) == ("embedded", True, None)
    # The state file by name, not where it is.
    assert store["description"].endswith("state/.geodns-state.json")
    assert str(base) not in json.dumps(state)
    us = fleet["votes"][SERVICE]["us-east-1"]
    assert us["result"] == "up"
    assert (us["up"], us["down"]) == (1, 0)
    assert us["votes"][NODE]["health"] == "up"
    assert us["votes"][NODE]["version"] == "41"


def test_healthz_names_the_node_and_its_store(node: Any) -> None:
    _, srv, _ = node
    status, body = http(srv, "/healthz")
    assert status == 200
    assert body["status"] == "ok"
    assert body["node"] == NODE
    assert body["store"]["kind"] == "embedded"
    assert body["store"]["connected"] is True
    assert body["store"]["error"] is None


def test_metrics_follow_a_region_down_and_up(node: Any) -> None:
    regions, srv, _ = node
    m = metrics(srv)
    assert m["geodns_store_connected"] == {(("kind", "embedded"),): 1.0}
    assert m["geodns_fleet_nodes"] == {(): 1.0}
    assert m["geodns_fleet_disagreeing_nodes"] == {(): 0.0}
    assert m["geodns_store_lost_total"] == {(): 0.0}
    assert m["geodns_store_revision"][()] >= 1  # this node's own record, at least
    eu = labels(service=SERVICE, region="eu-west-1")
    assert m["geodns_region_quorum_up"][eu] == 1.0
    assert m["geodns_region_votes"][labels(service=SERVICE, region="eu-west-1", health="up")] == 1

    regions["eu-west-1"].mode = "failing"
    try:
        wait_for(lambda: metrics(srv)["geodns_region_quorum_up"][eu] == 0.0, timeout=5)
        m = metrics(srv)
        votes = m["geodns_region_votes"]
        assert votes[labels(service=SERVICE, region="eu-west-1", health="down")] == 1
        assert votes[labels(service=SERVICE, region="eu-west-1", health="up")] == 0
    finally:
        regions["eu-west-1"].mode = "healthy"
    wait_for(lambda: metrics(srv)["geodns_region_quorum_up"][eu] == 1.0, timeout=5)


def labels(**kw: str) -> tuple[tuple[str, str], ...]:
    """A sample's labels as tests.e2e.test_admin.metrics keys them."""
    return tuple(sorted(kw.items()))


def fleet_command(srv: ServerProcess, *options: str) -> argparse.Namespace:
    """`geodns fleet OPTIONS` parsed as the top-level parser would."""
    parser = argparse.ArgumentParser(prog="geodns")
    fleetcli.add_parser(parser.add_subparsers(dest="command", required=True))
    assert srv.admin_url is not None
    return parser.parse_args(["fleet", "--admin", srv.admin_url, *options])


def test_geodns_fleet_prints_the_section(node: Any, capsys: pytest.CaptureFixture[str]) -> None:
    _, srv, _ = node
    assert fleetcli.run(fleet_command(srv, "--json")) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["node"] == NODE
    assert printed["store"]["kind"] == "embedded"

    assert fleetcli.run(fleet_command(srv)) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("store embedded store …/state/.geodns-state.json:")
    assert "connected since" in lines[0]
    assert lines[1] == "nodes: 1"
    assert lines[2].split()[:2] == ["*", NODE]
    assert lines[2].split()[-1] == "agrees"
    assert SERVICE in lines
    table = lines[lines.index(SERVICE) + 1 :]
    assert table[0].split() == ["region", NODE, "quorum"]
    assert table[1].split()[:4] == ["us-east-1", "up", "up", "(majority,"]


def test_geodns_fleet_says_when_no_server_answers(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="geodns")
    fleetcli.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["fleet", "--admin", "http://127.0.0.1:9", "--timeout", "2"])
    assert fleetcli.run(args) == 2
    assert "cannot reach the admin API at http://127.0.0.1:9" in capsys.readouterr().err


def test_the_dashboard_shows_the_fleet(node: Any, browser_page: Any) -> None:
    _, srv, _ = node
    page = browser_page
    foreign: list[str] = []
    page.on("request", lambda r: None if r.url.startswith(srv.admin_url) else foreign.append(r.url))
    page.goto(srv.admin_url)
    row = page.locator(f'#fleet-nodes tr[data-node="{NODE}"]')
    row.wait_for()
    assert "self" in (row.get_attribute("class") or "")
    assert row.locator(".self-tag").text_content() == "this node"
    assert row.locator(".agrees").get_attribute("data-agrees") == "true"
    assert "agrees" in row.locator(".agrees").inner_text()
    wait_for(lambda: row.locator(".seen").inner_text() == "now", timeout=5)
    store = page.locator("#fleet-store")
    assert store.get_attribute("data-connected") == "true"
    assert "embedded" in store.inner_text()
    assert "connected" in store.inner_text()
    votes = page.locator(f'table.votes[data-service="{SERVICE}"]')
    for region in NAMES:
        tr = votes.locator(f'tr[data-region="{region}"]')
        assert tr.locator(f'td.vote[data-node="{NODE}"]').get_attribute("data-vote") == "up"
        assert tr.locator("td.result").get_attribute("data-result") == "up"
        assert "majority" in tr.locator("td.result").inner_text()
    assert page.locator("#store-error").is_hidden()
    assert "1 node" in page.locator("#fleet-meta").inner_text()
    assert not foreign, f"the dashboard fetched from elsewhere: {foreign}"
