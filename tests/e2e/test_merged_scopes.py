"""Merged ECS scopes from the real server: wider than the GeoIP network, and never false.

One server runs on the embedded DB-IP database, as a new user's would; the first build of
its scopes takes 10-20 s at the lowest priority, so the server is shared by the module.
"""

from __future__ import annotations

import ipaddress
import json
import random
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import (
    EXAMPLE_ZONES,
    ROOT,
    ServerProcess,
    child_pids,
    running_server,
    wait_for,
    wait_for_scopes,
)
from tests.e2e.test_geo import AP, EU, US, addresses, ask, scope
from tests.geo_fixtures import build_test_mmdb


def api_state(srv: ServerProcess) -> dict:
    assert srv.admin_url is not None
    with urllib.request.urlopen(srv.admin_url + "api/state", timeout=5) as resp:
        return json.load(resp)


def metrics(srv: ServerProcess) -> str:
    assert srv.admin_url is not None
    with urllib.request.urlopen(srv.admin_url + "metrics", timeout=5) as resp:
        return resp.read().decode()


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("scopes")


@pytest.fixture(scope="module")
def embedded(cache: Path) -> Iterator[ServerProcess]:
    with running_server(EXAMPLE_ZONES, scope_cache=str(cache)) as srv:
        wait_for_scopes(srv)
        yield srv


@pytest.mark.parametrize(
    ("subnet", "expected"),
    [("81.2.69.0/24", EU), ("24.5.6.0/24", US), ("1.0.16.0/24", AP)],
)
def test_the_done_when_subnets_get_wider_scopes(
    embedded: ServerProcess, subnet: str, expected: str
) -> None:
    reply = ask(embedded, subnet)
    assert addresses(reply) == [expected]
    # Each of these /24s is a network of its own in the database; its neighbours of the
    # same class (the same country row, or the EU rule's one region) share the answer.
    assert scope(reply) < 24


def test_every_address_in_a_claimed_scope_gets_the_claimed_answer(
    embedded: ServerProcess,
) -> None:
    rng = random.Random(4)
    subnets = ["81.2.69.0/24", "24.5.6.0/24", "1.0.16.0/24", "200.160.0.0/24"]
    subnets += [f"{ipaddress.IPv4Address(rng.getrandbits(24) << 8)}/24" for _ in range(12)]
    widened = 0
    for subnet in subnets:
        reply = ask(embedded, subnet)
        # A scope may be longer than the source (RFC 7871 7.2.1): a GeoIP network of its
        # own inside the /24 (Seattle's 216.160.83.0/26 in the embedded database).
        claimed = ipaddress.ip_network(
            (ipaddress.ip_network(subnet).network_address, scope(reply)), strict=False
        )
        widened += claimed.prefixlen < 24
        for _ in range(8):
            inside = claimed.network_address + (rng.randrange(claimed.num_addresses) & ~0xFF)
            other = ask(embedded, f"{inside}/24")
            assert addresses(other) == addresses(reply), (subnet, claimed, inside)
    assert widened >= 4


def test_scopes_are_reported(embedded: ServerProcess) -> None:
    status = api_state(embedded)["server"]["geoip"]["ecs_scopes"]
    assert status["state"] == "merged" and status["classes"] == 1, status
    assert "geodns_ecs_scopes_merged 1.0" in metrics(embedded)


def test_while_a_region_sheds_the_scope_is_the_clients_bucket(cache: Path, tmp_path: Path) -> None:
    state = tmp_path / "state.yaml"
    state.write_text("inference.example.com:\n  us-east-1: {utilization: 0.8}\n")
    with running_server(
        EXAMPLE_ZONES, "--state", str(state), scope_cache=str(cache), listen=("127.0.0.1:0",)
    ) as srv:
        wait_for_scopes(srv)  # from the cache the first server filled
        # us-east-1 sheds a share of buckets (/24s) by their hash: the answer holds for
        # the client's /24 at most, though its class spans much more; within the bucket,
        # where the class holds: the embedded database's California 24.5.6.0/24 is one
        # class (the US west of where Tokyo ranks before Dublin) with its neighbours.
        # The EU rule leaves GB clients one region: nothing is shed there.
        assert scope(ask(srv, "24.5.6.0/24")) == 24
        assert scope(ask(srv, "24.5.0.0/16")) == 24  # longer than the source
        assert scope(ask(srv, "81.2.69.0/24")) < 24


def test_off_keeps_the_geoip_networks(cache: Path) -> None:
    with running_server(EXAMPLE_ZONES, listen=("127.0.0.1:0",)) as srv:
        assert scope(ask(srv, "81.2.69.0/24")) == 24
        assert api_state(srv)["server"]["geoip"]["ecs_scopes"] == {"state": "off"}
        assert "geodns_ecs_scopes_merged 0.0" in metrics(srv)


def test_a_reload_that_moves_a_region_builds_again(tmp_path: Path) -> None:
    mmdb = build_test_mmdb(tmp_path / "city.mmdb")
    zones = tmp_path / "zones"
    shutil.copytree(EXAMPLE_ZONES, zones)
    with running_server(
        zones,
        "--geoip-database",
        str(mmdb),
        "--watch-interval",
        "0.2",
        scope_cache=str(tmp_path / "cache"),
        listen=("127.0.0.1:0",),
    ) as srv:
        wait_for_scopes(srv)
        zone = zones / "example.com.yaml"
        zone.write_text(zone.read_text().replace("lat: 35.7, lon: 139.7", "lat: 1.3, lon: 103.8"))
        wait_for(lambda: sum("ECS scopes merged" in line for line in srv.lines) >= 2, 60)
        assert len(list((tmp_path / "cache").glob("scopes-*.npz"))) == 2


def test_an_unwritable_cache_leaves_geoip_scopes(tmp_path: Path) -> None:
    mmdb = build_test_mmdb(tmp_path / "city.mmdb")
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where the cache directory should be\n")
    with running_server(
        EXAMPLE_ZONES,
        "--geoip-database",
        str(mmdb),
        scope_cache=str(blocked / "geodns"),
        listen=("127.0.0.1:0",),
    ) as srv:
        line = wait_for(
            lambda: next((x for x in srv.lines if "ECS scopes stay the GeoIP" in x), None), 30
        )
        assert "not-a-dir" in line
        assert scope(ask(srv, "81.2.69.0/24")) == 24
        status = api_state(srv)["server"]["geoip"]["ecs_scopes"]
        assert status["state"] == "failed" and "not-a-dir" in status["error"]


def test_explain_reads_the_scopes_a_server_built(embedded: ServerProcess, cache: Path) -> None:
    def explain(*extra: str) -> str:
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "geodns",
                "explain",
                "inference.example.com",
                "81.2.69.142",
                "--prefix",
                "24",
                *extra,
            ],
            capture_output=True,
            text=True,
            cwd=ROOT,
            check=True,
        )
        return out.stdout.splitlines()[-1].strip()

    served = scope(ask(embedded, "81.2.69.0/24"))
    merged = explain("--scope-cache", str(cache))
    assert merged.startswith(f"ECS scope: /{served} (of A answers; merged"), merged
    assert explain("--scope-cache", "off").startswith("ECS scope: /24 (of A answers; the GeoIP")


def test_a_build_dies_with_a_killed_server(tmp_path: Path) -> None:
    """SIGKILL leaves the server no chance to stop its builder: the kernel does."""
    with running_server(
        EXAMPLE_ZONES, scope_cache=str(tmp_path / "cache"), listen=("127.0.0.1:0",)
    ) as srv:

        def builder() -> int | None:
            found = child_pids(srv.proc.pid, "geodns.control.scopebuild")
            return found[0] if found else None

        child = wait_for(builder, 10)  # a first build over the embedded file: ~20 s
        time.sleep(2)  # past its imports: the kernel's signal, not its own check, stops it
        assert Path(f"/proc/{child}").exists()
        srv.proc.kill()
        srv.proc.wait()
        wait_for(lambda: not Path(f"/proc/{child}").exists() or _zombie(child), 5)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True


def test_every_worker_gets_the_merged_scopes(embedded: ServerProcess, cache: Path) -> None:
    with running_server(
        EXAMPLE_ZONES, "--workers", "2", scope_cache=str(cache), listen=("127.0.0.1:0",)
    ) as srv:
        wait_for_scopes(srv)  # from the cache the module's first server filled
        expected = scope(ask(embedded, "24.5.6.0/24"))
        assert expected < 24

        def every_worker_merged() -> bool:
            # A new socket per query: SO_REUSEPORT spreads source ports over both workers.
            return {scope(ask(srv, "24.5.6.0/24")) for _ in range(24)} == {expected}

        # The second worker hears of the scopes over its channel just after the log line.
        wait_for(every_worker_merged, 5)
