"""An operator's forced state outlives the server (kill -9 included), and a restarted server
cleans up the temp files that interrupted writes of its state file left."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import EXAMPLE_ZONES, running_server, wait_for
from tests.e2e.test_admin import TOKEN, US, answer_of, ask, http

US_EAST = ["192.0.2.10"]
STATE_FILE = ".geodns-state.json"
FORCE = "/api/services/inference.example.com/regions/us-east-1/state"


@pytest.fixture
def zones_dir(tmp_path: Path) -> Path:
    zones = tmp_path / "zones"
    zones.mkdir()
    shutil.copy(EXAMPLE_ZONES / "example.com.yaml", zones / "example.com.yaml")
    return zones


def us_east(state: dict) -> dict:
    return next(r for r in state["services"][0]["regions"] if r["name"] == "us-east-1")


def test_a_forced_down_region_stays_down_after_a_restart(zones_dir: Path) -> None:
    env = {"GEODNS_ADMIN_TOKEN": TOKEN}
    with running_server(zones_dir, "--watch-interval", "0", env=env) as first:
        assert answer_of(ask(first, US)) == US_EAST
        status, body = http(first, FORCE, {"state": "down", "by": "alice"}, token=TOKEN)
        assert (status, body["state"], body["forced"]) == (200, "down", "down")
        assert answer_of(ask(first, US)) != US_EAST
        first.proc.kill()  # kill -9: nothing is written at exit
        first.proc.wait()
    kept = json.loads((zones_dir / STATE_FILE).read_text())["keys"]
    force = kept["forces/inference.example.com/us-east-1"]["value"]
    assert (force["state"], force["by"]) == ("down", "alice")
    with running_server(zones_dir, "--watch-interval", "0", env=env) as second:
        # The first answer of the new server already obeys the force.
        assert answer_of(ask(second, US)) not in (US_EAST, "SERVFAIL")
        _, state = http(second, "/api/state")
        region = us_east(state)
        assert (region["state"], region["forced"], region["forced_by"]) == ("down", "down", "alice")
        assert any("forced down, as set" in line and "by alice" in line for line in second.lines)
        # Given back to its checks, it answers again, and stays so after the next restart.
        assert http(second, FORCE, {"state": "auto"}, token=TOKEN)[0] == 200
        assert answer_of(ask(second, US)) == US_EAST
    with running_server(zones_dir, "--watch-interval", "0", env=env) as third:
        assert answer_of(ask(third, US)) == US_EAST
        assert us_east(http(third, "/api/state")[1])["forced"] is None


def test_a_force_for_a_region_no_longer_in_the_zones_is_kept_and_ignored(
    zones_dir: Path,
) -> None:
    mars = {"mod_revision": 1, "value": {"state": "down", "set_at": 1.0, "by": "bob"}}
    (zones_dir / STATE_FILE).write_text(
        json.dumps(
            {"format": 1, "revision": 1, "keys": {"forces/inference.example.com/mars-1": mars}}
        )
    )
    with running_server(zones_dir, "--watch-interval", "0") as srv:
        assert any("region mars-1" in x and "ignored" in x for x in srv.lines), srv.log()
        assert answer_of(ask(srv, US)) == US_EAST
        ignored = http(srv, "/api/state")[1]["server"]["ignored_forces"]
        assert [(f["region"], f["by"]) for f in ignored] == [("mars-1", "bob")]
    assert "mars-1" in (zones_dir / STATE_FILE).read_text()


def test_a_damaged_state_file_stops_the_start_and_says_which(zones_dir: Path) -> None:
    (zones_dir / STATE_FILE).write_text("{not json")
    refused = pytest.raises(RuntimeError, match=r"\.geodns-state\.json: not JSON")
    with refused, running_server(zones_dir, startup_timeout=10):
        pass


def test_a_start_removes_the_temp_files_killed_writes_left(zones_dir: Path) -> None:
    # The names write_atomically gives its temp files (tempfile.mkstemp, in the same directory).
    stale = [
        zones_dir / "..geodns-state.json.q1w2e3r4.tmp",
        zones_dir / "..geodns-state.json.a9s8d7f6.tmp",
    ]
    for path in stale:
        path.write_text('{"format": 1, "rol')
    unrelated = zones_dir / ".notes.tmp"
    unrelated.write_text("mine")
    with running_server(zones_dir, "--watch-interval", "0") as srv:
        assert answer_of(ask(srv, US)) == US_EAST
        assert not any(path.exists() for path in stale)
        assert any("removed 2 temp file(s)" in line for line in srv.lines), srv.log()
    assert unrelated.read_text() == "mine"


def test_the_versions_seen_survive_a_kill_9(tmp_path: Path) -> None:
    # A version a region once reported stays known: its version-named host answers NODATA
    # (no region serves it now), never NXDOMAIN, after a restart too.
    from tests.e2e.test_rolling_update import NAMES, SERVICE, ask, zone_text
    from tests.regions import regions_in_thread

    zones = tmp_path / "zones"
    zones.mkdir()
    with regions_in_thread(*NAMES, version="41") as regions:
        (zones / "example.com.yaml").write_text(zone_text({n: r.port for n, r in regions.items()}))
        with running_server(zones, "--watch-interval", "0") as first:
            regions["ap-northeast-1"].version = "42"
            wait_for(lambda: ask(first, f"v42.{SERVICE}") != "NXDOMAIN", timeout=5)
            regions["ap-northeast-1"].version = "41"
            wait_for(lambda: ask(first, f"v42.{SERVICE}") == "NODATA", timeout=5)
            first.proc.kill()
            first.proc.wait()
        with running_server(zones, "--watch-interval", "0") as second:
            assert ask(second, f"v42.{SERVICE}") == "NODATA"
            assert ask(second, f"v43.{SERVICE}") == "NXDOMAIN"
        saved = json.loads((zones / STATE_FILE).read_text())["keys"]
        assert saved[f"versions/{SERVICE}"]["value"]["seen"] == ["41", "42"]
