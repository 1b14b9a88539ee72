"""A rolling update through the admin API of a real server whose regions are real aiohttp
apps reporting their model version: the min_old guard, one-TTL drains, version-named
hosts, validation, completion, a restart mid-rollout, and a residency rule's only region,
which the guard never drains and the operator updates by hand."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import dns.edns
import dns.message
import dns.query
import dns.rcode
import pytest

from geodns.demo.region import SimulatedRegion
from tests.conftest import ServerProcess, running_server, wait_for
from tests.e2e.test_admin import TOKEN, http
from tests.regions import regions_in_thread

US_EAST, EU_WEST, AP_NORTHEAST = "192.0.2.10", "192.0.2.20", "192.0.2.30"
US = "216.160.83.0/24"
GB = "81.2.69.0/24"
SERVICE = "inference.example.com"
API = f"/api/services/{SERVICE}/rollouts"
NAMES = ("us-east-1", "eu-west-1", "ap-northeast-1")
ADDRESSES = dict(zip(NAMES, (US_EAST, EU_WEST, AP_NORTHEAST), strict=True))
PLACES = {"us-east-1": (38.9, -77.0), "eu-west-1": (53.3, -6.3), "ap-northeast-1": (35.7, 139.7)}


def zone_text(
    ports: dict[str, int],
    residency: str = "",
    interval: float = 0.2,
    timeout: float = 0.2,
    service_keys: str = "",
) -> str:
    """The zone: three regions checked at `ports`; `service_keys`, lines indented as keys
    of the service, are added to it."""
    regions = "".join(
        f"""\
      {name}:
        addresses: [{ADDRESSES[name]}]
        location: {{lat: {PLACES[name][0]}, lon: {PLACES[name][1]}}}
        health: {{url: "http://127.0.0.1:{port}/healthz"}}
"""
        for name, port in ports.items()
    )
    return f"""\
zone: example.com
soa: {{mname: ns1, rname: hostmaster, serial: 1}}
ns: [ns1]
records: {{ns1: {{A: 192.0.2.53}}}}
services:
  inference:
    ttl: 1
{service_keys}    health: {{interval: {interval}, timeout: {timeout}, rise: 1, fall: 1}}
    regions:
{regions}{residency}"""


def ask(server: ServerProcess, name: str = SERVICE, subnet: str = US) -> str:
    query = dns.message.make_query(name, "A")
    address, prefix = subnet.split("/")
    query.use_edns(0, options=[dns.edns.ECSOption(address, int(prefix))])
    reply = server.udp(query)
    if reply.rcode() != dns.rcode.NOERROR:
        return dns.rcode.to_text(reply.rcode())
    return " ".join(sorted(r.address for rrset in reply.answer for r in rrset)) or "NODATA"


def post(server: ServerProcess, path: str, body: dict | None = None) -> tuple[int, dict]:
    return http(server, path, body or {}, token=TOKEN)


@contextlib.contextmanager
def fleet(
    zones_dir: Path, residency: str = ""
) -> Iterator[tuple[dict[str, SimulatedRegion], ServerProcess]]:
    """Three regions on 41, and a server checking them every 0.2 s."""
    with regions_in_thread(*NAMES, version="41") as regions:
        (zones_dir / "example.com.yaml").write_text(
            zone_text({n: r.port for n, r in regions.items()}, residency)
        )
        with running_server(
            zones_dir, "--watch-interval", "0", env={"GEODNS_ADMIN_TOKEN": TOKEN}
        ) as srv:
            yield regions, srv


@pytest.fixture
def zones_dir(tmp_path: Path) -> Path:
    path = tmp_path / "zones"
    path.mkdir()
    return path


def test_a_rolling_update_from_start_to_completion(zones_dir: Path) -> None:
    with fleet(zones_dir) as (regions, srv):
        assert ask(srv) == US_EAST
        status, body = post(srv, API, {"to": "42", "min_old": 2})
        assert status == 201, body
        assert (body["from_version"], body["to"], body["status"]) == ("41", "42", "running")

        status, body = post(srv, f"{API}/current/regions/us-east-1/begin")
        assert status == 200, body
        assert body["phase"] == "draining" and body["may_deploy"] is False
        # One TTL (1 s here) after the drain began, a moment before this reply.
        assert body["server_time"] < body["deploy_after"] <= body["server_time"] + 1
        assert ask(srv) != US_EAST  # drained: its clients go elsewhere at once
        region = http(srv, "/api/state")[1]["services"][0]["regions"][0]
        assert (region["name"], region["state"], region["rollout"]) == (
            "us-east-1",
            "drain",
            "draining",
        )
        wait_for(lambda: http(srv, f"{API}/current/regions/us-east-1")[1]["may_deploy"], timeout=3)

        # Deploy: the region comes back on 42. It serves v42 hosts, not plain answers.
        regions["us-east-1"].version = "42"
        wait_for(lambda: ask(srv, f"v42.{SERVICE}") == US_EAST, timeout=5, interval=0.1)
        assert ask(srv) != US_EAST
        # The nearest v41 region from Seattle (the US row, corrected in-country).
        assert ask(srv, f"v41.{SERVICE}") == AP_NORTHEAST
        assert ask(srv, f"v99.{SERVICE}") == "NXDOMAIN"
        # A known version with no healthy region: NODATA, never another version.
        regions["us-east-1"].mode = "failing"
        wait_for(lambda: ask(srv, f"v42.{SERVICE}") == "NODATA", timeout=5, interval=0.1)
        regions["us-east-1"].mode = "healthy"
        wait_for(lambda: ask(srv, f"v42.{SERVICE}") == US_EAST, timeout=5, interval=0.1)

        # Before validation, two other regions must stay on 41.
        status, body = post(srv, f"{API}/current/regions/eu-west-1/begin")
        assert status == 409
        assert body["error"] == "refused: only 1 other region healthy on v41, min_old is 2"

        status, body = post(srv, f"{API}/current/validate")
        assert (status, body["status"]) == (200, "validated")
        wait_for(lambda: ask(srv) == US_EAST, timeout=3, interval=0.1)

        for name in ("eu-west-1", "ap-northeast-1"):
            status, body = post(srv, f"{API}/current/regions/{name}/begin")
            assert status == 200, body
            regions[name].version = "42"
            wait_for(
                lambda n=name: http(srv, f"{API}/current")[1]["regions"][n]["phase"] == "updated",
                timeout=5,
                interval=0.1,
            )
        status, body = http(srv, f"{API}/current")
        assert body["status"] == "completed"
        _, state = http(srv, "/api/state")
        assert state["services"][0]["versions"]["approved"] == ["42"]
        assert ask(srv) == US_EAST
        saved = json.loads((zones_dir / ".geodns-state.json").read_text())
        assert saved["keys"][f"rollouts/{SERVICE}"]["value"]["status"] == "completed"


def test_a_restart_mid_rollout_resumes_it(zones_dir: Path) -> None:
    with regions_in_thread(*NAMES, version="41") as regions:
        (zones_dir / "example.com.yaml").write_text(
            zone_text({n: r.port for n, r in regions.items()})
        )
        env = {"GEODNS_ADMIN_TOKEN": TOKEN}
        with running_server(zones_dir, "--watch-interval", "0", env=env) as srv:
            assert post(srv, API, {"to": "42"})[0] == 201
            assert post(srv, f"{API}/current/regions/us-east-1/begin")[0] == 200
            assert ask(srv) != US_EAST
        with running_server(zones_dir, "--watch-interval", "0", env=env) as srv:
            status, body = http(srv, f"{API}/current/regions/us-east-1")
            assert (status, body["phase"], body["status"]) == (200, "draining", "running")
            assert ask(srv) != US_EAST  # still held drained after the restart
            status, body = post(srv, f"{API}/current/abort")
            assert (status, body["status"]) == (200, "aborted")
            wait_for(lambda: ask(srv) == US_EAST, timeout=3, interval=0.1)


def test_rollout_routes_need_the_token_and_name_real_services(zones_dir: Path) -> None:
    with fleet(zones_dir) as (_, srv):
        assert http(srv, API, {"to": "42"})[0] == 401
        assert post(srv, "/api/services/nope.example.com/rollouts", {"to": "42"})[0] == 404
        assert http(srv, f"{API}/current")[0] == 404
        status, body = post(srv, API, {"to": "41"})
        assert status == 409 and "already serves" in body["error"]


def rollout_cli(server: ServerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "geodns", "rollout", "--admin", server.admin_url or "", *args],
        capture_output=True,
        text=True,
        timeout=20,
        env={**os.environ, "GEODNS_ADMIN_TOKEN": TOKEN},
    )


def test_the_rollout_cli_drives_a_real_server(zones_dir: Path) -> None:
    with fleet(zones_dir) as (_, srv):
        done = rollout_cli(srv, "start", SERVICE, "--to", "42")
        assert done.returncode == 0, done.stderr
        done = rollout_cli(srv, "begin", SERVICE, "us-east-1")
        assert done.returncode == 0, done.stderr
        assert "deploy after" in done.stdout
        done = rollout_cli(srv, "begin", SERVICE, "eu-west-1")
        assert done.returncode == 1
        assert "refused:" in done.stdout + done.stderr
        done = rollout_cli(srv, "status", SERVICE, "us-east-1", "--json")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["phase"] == "draining"


def test_the_state_can_live_elsewhere(zones_dir: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "state"
    with regions_in_thread(*NAMES, version="41") as regions:
        (zones_dir / "example.com.yaml").write_text(
            zone_text({n: r.port for n, r in regions.items()})
        )
        args = ("--watch-interval", "0", "--state-dir", str(elsewhere))
        with running_server(zones_dir, *args, env={"GEODNS_ADMIN_TOKEN": TOKEN}) as srv:
            assert post(srv, API, {"to": "42"})[0] == 201
    saved = json.loads((elsewhere / ".geodns-state.json").read_text())
    assert saved["keys"][f"rollouts/{SERVICE}"]["value"]["to"] == "42"
    assert not (zones_dir / ".geodns-state.json").exists()


def test_a_rollouts_file_from_before_the_store_is_taken_in(zones_dir: Path, tmp_path: Path) -> None:
    # A node upgraded with `--rollouts-file FILE` (and its forces beside it) keeps both.
    old = tmp_path / "state" / "rollouts.json"
    old.parent.mkdir()
    with regions_in_thread(*NAMES, version="41") as regions:
        (zones_dir / "example.com.yaml").write_text(
            zone_text({n: r.port for n, r in regions.items()})
        )
        env = {"GEODNS_ADMIN_TOKEN": TOKEN}
        with running_server(zones_dir, "--watch-interval", "0", env=env) as srv:
            assert post(srv, API, {"to": "42"})[0] == 201
            assert post(srv, f"{API}/current/regions/us-east-1/begin")[0] == 200
        saved = json.loads((zones_dir / ".geodns-state.json").read_text())
        rollout = saved["keys"][f"rollouts/{SERVICE}"]["value"]
        old.write_text(json.dumps({"format": 1, "rollouts": {SERVICE: rollout}}))
        (old.parent / ".geodns-forces.json").write_text(
            json.dumps(
                {
                    "format": 1,
                    "forces": [
                        {
                            "service": SERVICE,
                            "region": "ap-northeast-1",
                            "state": "down",
                            "set_at": 1.0,
                            "by": "ops",
                        }
                    ],
                }
            )
        )
        args = ("--watch-interval", "0", "--rollouts-file", str(old))
        with running_server(zones_dir, *args, env=env) as srv:
            status, body = http(srv, f"{API}/current/regions/us-east-1")
            assert (status, body["phase"]) == (200, "draining")
            region = http(srv, "/api/state")[1]["services"][0]["regions"][2]
            assert (region["name"], region["state"]) == ("ap-northeast-1", "down")
            assert any("no longer read" in line for line in srv.lines)


# As the example zone: European clients only ever get eu-west-1.
EU_ONLY = """\
    residency:
      - {clients: {continent: EU}, regions: [eu-west-1], when_none: refuse}
"""


def phase(srv: ServerProcess, region: str) -> str | None:
    step = http(srv, f"{API}/current")[1]["regions"].get(region)
    return None if step is None else step["phase"]


def test_a_residency_rules_only_region_is_updated_by_hand_and_completes_the_rollout(
    zones_dir: Path,
) -> None:
    with fleet(zones_dir, EU_ONLY) as (regions, srv):
        assert ask(srv, subnet=GB) == EU_WEST
        assert post(srv, API, {"to": "42", "min_old": 1})[0] == 201
        assert post(srv, f"{API}/current/regions/us-east-1/begin")[0] == 200
        regions["us-east-1"].version = "42"
        wait_for(lambda: phase(srv, "us-east-1") == "updated", timeout=5, interval=0.1)
        assert post(srv, f"{API}/current/validate")[0] == 200

        # Issue 11: the guard drained eu-west-1 here, and GB clients were refused.
        status, body = post(srv, f"{API}/current/regions/eu-west-1/begin")
        assert status == 409
        assert body["error"].startswith(
            "refused: eu-west-1 is the only region of residency rule 0 (continent EU), and the"
            " guard never drains a rule's last region: add a second region to the rule, or"
            " update eu-west-1 outside the guard now: drain it yourself"
        )
        assert ask(srv, subnet=GB) == EU_WEST

        # The operator's own drain: GB clients fail closed, knowingly, while it is deployed.
        force = f"/api/services/{SERVICE}/regions/eu-west-1/state"
        assert post(srv, force, {"state": "drain"})[0] == 200
        wait_for(lambda: ask(srv, subnet=GB) == "REFUSED", timeout=3, interval=0.1)
        regions["eu-west-1"].version = "42"
        wait_for(lambda: phase(srv, "eu-west-1") == "updated", timeout=5, interval=0.1)
        assert post(srv, force, {"state": "auto"})[0] == 200
        wait_for(lambda: ask(srv, subnet=GB) == EU_WEST, timeout=3, interval=0.1)

        assert post(srv, f"{API}/current/regions/ap-northeast-1/begin")[0] == 200
        regions["ap-northeast-1"].version = "42"
        wait_for(
            lambda: http(srv, f"{API}/current")[1]["status"] == "completed",
            timeout=5,
            interval=0.1,
        )
        assert ask(srv, subnet=GB) == EU_WEST
