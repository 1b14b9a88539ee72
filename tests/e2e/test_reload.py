"""Live reload of a real server: file edits, SIGHUP and POST /api/reload; broken edits refused."""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import dns.message
import dns.rcode
import pytest

from tests.conftest import EXAMPLE_ZONES, ServerProcess, running_server, wait_for
from tests.e2e.test_admin import GB, TOKEN, answer_of, ask, http, metrics


@pytest.fixture
def zones_dir(tmp_path: Path) -> Path:
    target = tmp_path / "zones"
    target.mkdir()
    shutil.copy(EXAMPLE_ZONES / "example.com.yaml", target / "example.com.yaml")
    return target


def www(server: ServerProcess) -> str | list[str]:
    reply = server.udp(dns.message.make_query("www2.example.com", "A"))
    if reply.rcode() != dns.rcode.NOERROR:
        return dns.rcode.to_text(reply.rcode())
    return sorted(r.address for rrset in reply.answer for r in rrset)


def add_record(zone: Path) -> None:
    text = zone.read_text()
    assert "\nrecords:\n" in text
    zone.write_text(text.replace("\nrecords:\n", "\nrecords:\n  www2: {A: 192.0.2.222}\n", 1))


def test_a_valid_edit_goes_live_and_a_broken_one_is_refused(zones_dir: Path) -> None:
    zone = zones_dir / "example.com.yaml"
    with running_server(
        zones_dir, "--watch-interval", "0.1", env={"GEODNS_ADMIN_TOKEN": TOKEN}
    ) as srv:
        assert www(srv) == "NXDOMAIN"
        add_record(zone)
        wait_for(lambda: www(srv) == ["192.0.2.222"], timeout=5, interval=0.1)
        assert http(srv, "/healthz")[1]["config_version"] == 2

        good = zone.read_text()
        lines = good.splitlines()
        broken_line = next(i for i, line in enumerate(lines) if "www2" in line) + 1
        zone.write_text(good.replace("www2: {A: 192.0.2.222}", "www2: {A: 999.1.2.3}"))

        def refused() -> dict | None:
            return http(srv, "/api/state")[1]["server"]["reload_error"]

        error = wait_for(refused, timeout=5, interval=0.1)
        assert any(f"example.com.yaml:{broken_line}:" in e for e in error["errors"]), error
        assert any("999.1.2.3" in e for e in error["errors"])
        # The old config keeps serving, whole.
        assert www(srv) == ["192.0.2.222"]
        assert answer_of(ask(srv, GB)) == ["192.0.2.20"]
        assert http(srv, "/healthz")[1]["config_version"] == 2
        reloads = metrics(srv)["geodns_config_reloads_total"]
        assert reloads[(("result", "failed"),)] == 1
        assert reloads[(("result", "ok"),)] == 1
        assert f"example.com.yaml:{broken_line}" in srv.log()

        # The POST says why too, and nothing changes.
        status, body = http(srv, "/api/reload", {}, token=TOKEN)
        assert status == 422 and not body["ok"]
        assert any("999.1.2.3" in e for e in body["errors"])

        zone.write_text(good)
        wait_for(lambda: refused() is None, timeout=5, interval=0.1)
        assert www(srv) == ["192.0.2.222"]


def test_sighup_and_the_api_reload(zones_dir: Path) -> None:
    zone = zones_dir / "example.com.yaml"
    with running_server(
        zones_dir, "--watch-interval", "0", env={"GEODNS_ADMIN_TOKEN": TOKEN}
    ) as srv:
        add_record(zone)
        assert www(srv) == "NXDOMAIN"  # nobody looks at the files
        os.kill(srv.proc.pid, signal.SIGHUP)
        wait_for(lambda: www(srv) == ["192.0.2.222"], timeout=5, interval=0.1)
        zone.write_text(zone.read_text().replace("192.0.2.222", "192.0.2.223"))
        status, body = http(srv, "/api/reload", {}, token=TOKEN)
        assert (status, body["ok"], body["config_version"]) == (200, True, 3)
        assert www(srv) == ["192.0.2.223"]


def test_forced_states_survive_a_reload(zones_dir: Path) -> None:
    zone = zones_dir / "example.com.yaml"
    with running_server(
        zones_dir, "--watch-interval", "0", env={"GEODNS_ADMIN_TOKEN": TOKEN}
    ) as srv:
        path = "/api/services/inference.example.com/regions/eu-west-1/state"
        assert http(srv, path, {"state": "drain"}, token=TOKEN)[0] == 200
        assert answer_of(ask(srv, GB)) == ["192.0.2.29"]  # failing closed
        add_record(zone)
        assert http(srv, "/api/reload", {}, token=TOKEN)[0] == 200
        assert www(srv) == ["192.0.2.222"]
        assert answer_of(ask(srv, GB)) == ["192.0.2.29"]  # failing closed
        region = http(srv, "/api/state")[1]["services"][0]["regions"][1]
        assert (region["name"], region["forced"]) == ("eu-west-1", "drain")


def test_reload_reaches_every_worker(zones_dir: Path) -> None:
    zone = zones_dir / "example.com.yaml"
    with running_server(
        zones_dir,
        "--workers",
        "2",
        "--watch-interval",
        "0",
        listen=("127.0.0.1:0",),
        env={"GEODNS_ADMIN_TOKEN": TOKEN},
    ) as srv:
        add_record(zone)
        assert http(srv, "/api/reload", {}, token=TOKEN)[0] == 200
        # Each query comes from a new source port, so both workers get some; the other
        # worker hears of the reload a moment after the reply.
        wait_for(
            lambda: {str(www(srv)) for _ in range(30)} == {"['192.0.2.222']"},
            timeout=5,
            interval=0.1,
        )
