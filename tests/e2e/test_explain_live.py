"""`geodns explain` asks the running server, so that during an incident it shows what the
server answers; offline evaluation (every region up) is asked for, or said, explicitly."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from geodns import cli
from geodns.cli import explain as explain_command
from tests.conftest import EXAMPLE_ZONES, ROOT, ServerProcess, running_server
from tests.e2e.test_admin import TOKEN, US, answer_of, ask, http

US_CLIENT = "216.160.83.56"  # in US (the embedded DB-IP Lite and the test database alike)
FORCE = "/api/services/inference.example.com/regions/us-east-1/state"
EMBEDDED_NOTE = (
    "client located by the embedded DB-IP Lite database of 2023-04-01,"
    " --geoip-database FILE for a current one"
)


@pytest.fixture(scope="module")
def incident(tmp_path_factory: pytest.TempPathFactory):
    """A server whose us-east-1 an operator forced down."""
    zones = tmp_path_factory.mktemp("explain") / "zones"
    zones.mkdir()
    shutil.copy(EXAMPLE_ZONES / "example.com.yaml", zones / "example.com.yaml")
    with running_server(zones, "--watch-interval", "0", env={"GEODNS_ADMIN_TOKEN": TOKEN}) as srv:
        assert http(srv, FORCE, {"state": "down"}, token=TOKEN)[0] == 200
        yield srv


def explain(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "geodns", "explain", "inference.example.com", US_CLIENT, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=check,
    )


def selected(text: str) -> str:
    return next(line.strip() for line in text.splitlines() if "select A:" in line)


def admin(server: ServerProcess) -> str:
    assert server.admin_url is not None
    return server.admin_url.rstrip("/")


def test_live_shows_what_the_server_answers_and_offline_does_not(incident: ServerProcess) -> None:
    served = answer_of(ask(incident, US))
    assert served != ["192.0.2.10"]  # us-east-1 is down: the server answers elsewhere
    live = explain("--admin", admin(incident)).stdout
    lines = live.splitlines()
    assert lines[0] == f"inference.example.com for {US_CLIENT}:"
    assert lines[1].startswith(f"  state: live server at {admin(incident)} (state version ")
    assert "published 20" in lines[1]
    assert "left out: us-east-1 down" in live
    assert selected(live).split()[-1] == served[0]  # what dig gets
    offline = explain("--offline").stdout
    lines = offline.splitlines()
    assert lines[1] == f"  state: offline, every region up (--offline; {EMBEDDED_NOTE})"
    assert selected(offline) == "select A: us-east-1 192.0.2.10"
    # The same shape in both modes: header, state, the steps, the scope last.
    assert len(live.splitlines()) == len(offline.splitlines())
    assert live.splitlines()[-1].startswith("  ECS scope: /")
    assert offline.splitlines()[-1].startswith("  ECS scope: /")


def test_json_has_one_shape_in_both_modes(incident: ServerProcess) -> None:
    live = json.loads(explain("--admin", admin(incident), "--json").stdout)
    offline = json.loads(explain("--offline", "--json").stdout)
    assert live.keys() == offline.keys()
    assert live["state"].keys() == offline["state"].keys()
    assert live["state"]["source"] == "live" and live["state"]["server"] == admin(incident)
    assert isinstance(live["state"]["version"], int)
    assert offline["state"] == {
        "source": "offline",
        "server": None,
        "version": None,
        "published": None,
        "file": None,
        "note": f"--offline; {EMBEDDED_NOTE}",
    }
    assert "us-east-1" not in live["regions"][:1]
    assert offline["regions"][0] == "us-east-1"


def test_the_default_address_is_asked_first(
    incident: ServerProcess, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # As if it listened on :8053.
    monkeypatch.setattr(explain_command, "EXPLAIN_ADMIN", admin(incident))
    assert cli.main(["explain", "inference.example.com", US_CLIENT]) == 0
    out = capsys.readouterr().out
    assert f"state: live server at {admin(incident)}" in out
    assert "us-east-1 192.0.2.10" not in selected(out)


def test_no_server_at_the_default_address_is_said(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The discard port: nothing listens.
    monkeypatch.setattr(explain_command, "EXPLAIN_ADMIN", "http://127.0.0.1:9")
    assert cli.main(["explain", "inference.example.com", US_CLIENT]) == 0
    out = capsys.readouterr().out
    assert (
        "state: offline, every region up (no server answered at http://127.0.0.1:9;"
        f" --admin URL to ask one; {EMBEDDED_NOTE})" in out
    )
    assert selected(out) == "select A: us-east-1 192.0.2.10"


def test_a_state_file_is_an_offline_evaluation(tmp_path: Path) -> None:
    state = tmp_path / "incident.yaml"
    state.write_text("inference.example.com:\n  us-east-1: {state: down}\n")
    out = explain("--state", str(state)).stdout
    assert f"  state: offline, regions as in incident.yaml (--state given; {EMBEDDED_NOTE})" in out
    assert "us-east-1 192.0.2.10" not in selected(out)


def test_an_admin_address_that_does_not_answer_is_an_error() -> None:
    result = explain("--admin", "http://127.0.0.1:9", check=False)
    assert result.returncode == 2
    assert "cannot reach the admin API at http://127.0.0.1:9" in result.stderr
    result = explain("--admin", "http://127.0.0.1:9", "--offline", check=False)
    assert result.returncode == 2 and "offline" in result.stderr


def test_the_servers_refusal_is_an_error(incident: ServerProcess) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "geodns", "explain", "www.example.com", US_CLIENT],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 2
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "geodns",
            "explain",
            "www.example.com",
            US_CLIENT,
            "--admin",
            admin(incident),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 2
    assert "not a service name" in result.stderr


def test_the_embedded_database_is_said_only_where_it_located_the_client() -> None:
    # Once in the state line, not as a warning on every run: an explanation of a client it
    # cannot place (a private address) does not rely on it, and a given database is no caveat.
    located = explain("--offline")
    assert "WARNING" not in located.stderr and "GeoIP" not in located.stderr
    assert EMBEDDED_NOTE in located.stdout
    private = subprocess.run(
        [
            sys.executable,
            "-m",
            "geodns",
            "explain",
            "--offline",
            "inference.example.com",
            "10.1.2.3",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    assert private.stderr == ""
    assert "  state: offline, every region up (--offline)" in private.stdout
