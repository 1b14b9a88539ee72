"""Named admin tokens and the audit log of a real `geodns serve`: over HTTP, from the CLI,
in the fleet's etcd, and on the dashboard."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.conftest import EXAMPLE_ZONES, ROOT, ServerProcess, running_server, wait_for
from tests.e2e.test_admin import http, metrics
from tests.etcd_cluster import etcd_cluster
from tests.fleet import NAMES, TOKEN, fleet_zone, running_fleet
from tests.regions import regions_in_thread

pytest_plugins = ["tests.browser"]

ALICE = "alice-0123456789abcdef"
CI = "ci-fedcba9876543210"
SINGLE = "single-token-5555555555"
FORCE = "/api/services/inference.example.com/regions/{}/state"


def tokens_file(tmp: Path) -> Path:
    path = tmp / "admin-tokens"
    path.write_text(f"# name token\nalice {ALICE}\n\ndeploy-ci {CI}\n")
    return path


def audit(server: ServerProcess, limit: int = 100) -> dict[str, Any]:
    status, body = http(server, f"/api/audit?limit={limit}")
    assert status == 200, body
    return body


def test_each_change_is_recorded_with_the_name_of_its_token(tmp_path: Path) -> None:
    with running_server(
        EXAMPLE_ZONES,
        "--admin-tokens-file",
        str(tokens_file(tmp_path)),
        "--state-dir",
        str(tmp_path),
        env={"GEODNS_ADMIN_TOKEN": SINGLE},
    ) as server:
        assert audit(server) == {"kept_in": "memory", "keep": 1000, "error": None, "records": []}
        status, body = http(server, FORCE.format("eu-west-1"), {"state": "drain"}, ALICE)
        assert status == 200, body
        status, _ = http(server, FORCE.format("nowhere"), {"state": "drain"}, CI)
        assert status == 404
        # The single token of GEODNS_ADMIN_TOKEN goes on working, named `admin`.
        status, _ = http(server, "/api/reload", {}, SINGLE)
        assert status == 200
        # A wrong token changes nothing and is not recorded: who sent it is unknown.
        status, _ = http(server, "/api/reload", {}, "not-a-token")
        assert status == 401
        records = audit(server)["records"]
        counted = metrics(server)["geodns_admin_actions_total"]
        # The force's `by` defaults to the token's name.
        state = http(server, "/api/state")[1]
        eu = next(r for r in state["services"][0]["regions"] if r["name"] == "eu-west-1")
        assert eu["forced_by"].startswith("alice ")
        log = server.log()
    assert [(r["who"], r["action"], r["result"], r["status"]) for r in records] == [
        ("admin", "reload", "ok", 200),
        ("deploy-ci", "force", "refused", 404),
        ("alice", "force", "ok", 200),
    ]
    assert counted[(("action", "force"), ("result", "ok"))] == 1
    assert counted[(("action", "force"), ("result", "refused"))] == 1
    assert counted[(("action", "reload"), ("result", "ok"))] == 1
    assert counted[(("action", "rollout_abort"), ("result", "ok"))] == 0
    drain = records[2]
    assert drain["target"] == "inference.example.com/eu-west-1"
    assert drain["detail"] == "drain"
    assert drain["error"] is None
    assert drain["remote"] == "127.0.0.1"
    assert isinstance(drain["at"], float) and drain["node"]
    assert "no region 'nowhere'" in records[1]["error"]
    # Each one is a log line of geodns.audit too.
    assert "geodns.audit: alice: force inference.example.com/eu-west-1 drain: ok (200)" in log
    assert "admin API tokens: admin, alice, deploy-ci" in log


def test_the_cli_acts_under_its_tokens_name(tmp_path: Path) -> None:
    token_file = tmp_path / "ci-token"
    token_file.write_text(CI + "\n")
    with running_server(
        EXAMPLE_ZONES,
        "--admin-tokens-file",
        str(tokens_file(tmp_path)),
        "--state-dir",
        str(tmp_path),
    ) as server:
        assert server.admin_url is not None
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "geodns",
                "rollout",
                "start",
                "inference.example.com",
                "--to",
                "43",
                "--admin",
                server.admin_url,
                "--admin-token-file",
                str(token_file),
            ],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=30,
        )
        records = audit(server)["records"]
    assert len(records) == 1, (done.stderr, records)
    record = records[0]
    assert (record["who"], record["action"], record["detail"]) == (
        "deploy-ci",
        "rollout start",
        "to 43",
    )
    # The result recorded is the one the CLI was given.
    assert record["result"] == ("ok" if done.returncode == 0 else "refused"), done.stderr


def test_a_bad_tokens_file_is_refused_with_every_problem(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text(f"alice {ALICE}\nalice {CI}\nbob {ALICE}\njust-a-name\n")
    done = subprocess.run(
        [sys.executable, "-m", "geodns", "serve", "--admin-tokens-file", str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=30,
    )
    assert done.returncode == 2
    errors = done.stderr.strip().splitlines()
    assert errors == [
        f"{path}:2: name 'alice' is already on line 1",
        f"{path}:3: bob's token is alice's too (line 1): the audit log could not tell them apart",
        f"{path}:4: expected `name token`, got 1 words",
    ]


def test_the_single_token_cannot_also_be_a_named_one(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "geodns",
            "serve",
            "--admin-tokens-file",
            str(tokens_file(tmp_path)),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=30,
        env={**os.environ, "GEODNS_ADMIN_TOKEN": ALICE},
    )
    assert done.returncode == 2
    assert "the single admin token is also alice's" in done.stderr


def test_in_a_fleet_the_audit_log_is_kept_in_etcd_and_every_node_lists_it(tmp_path: Path) -> None:
    prefix = "/audit-test/"
    with etcd_cluster(1) as etcd, regions_in_thread(*NAMES, version="41") as regions:
        ports = {n: r.port for n, r in regions.items()}
        args = ("--store-prefix", prefix, "--admin-tokens-file", str(tokens_file(tmp_path)))
        zones = [fleet_zone(ports), fleet_zone(ports)]
        with running_fleet(tmp_path, etcd.url, zones, args) as fleet:
            a, b = fleet.nodes
            path = FORCE.format("us-east-1")
            assert http(a, path, {"state": "drain"}, ALICE)[0] == 200
            assert http(b, path, {"state": "auto"}, TOKEN)[0] == 200
            # Each node lists both changes, whichever node took them.
            for node in (a, b):
                body = audit(node)
                assert body["kept_in"] == "store" and body["error"] is None
                assert [(r["who"], r["detail"], r["node"]) for r in body["records"]] == [
                    ("admin", "auto", "node1"),
                    ("alice", "drain", "node0"),
                ]
            # They are keys of the fleet's prefix in etcd, which a new node reads too.
            listed = etcd.etcdctl("get", "--prefix", f"{prefix}audit/", "--print-value-only")
            values = [json.loads(v) for v in listed.splitlines() if v.strip()]
            assert sorted(v["who"] for v in values) == ["admin", "alice"]
            # The fleet's view skips them: they are no routing state, and not a problem.
            fleet_view = http(a, "/api/state")[1]["fleet"]
            assert not any("audit/" in p for p in fleet_view.get("problems", []))
            fleet.stack.close()  # both nodes stop: the records stay in etcd
            fleet.nodes.clear()
            node = fleet.start(0)
            assert [r["who"] for r in audit(node)["records"]] == ["admin", "alice"]


def test_the_dashboard_lists_recent_admin_actions(tmp_path: Path, browser_page: Any) -> None:
    with running_server(
        EXAMPLE_ZONES,
        "--admin-tokens-file",
        str(tokens_file(tmp_path)),
        "--state-dir",
        str(tmp_path),
    ) as server:
        assert server.admin_url is not None
        page = browser_page
        page.goto(f"{server.admin_url}#token={ALICE}")
        assert page.locator("#audit-empty").is_visible()
        # A pipeline's change through the API, then the operator's own from the page.
        assert http(server, "/api/reload", {}, CI)[0] == 200
        row = page.locator('section.service tbody.region[data-region="us-east-1"]')
        row.locator('button[data-action="up"]').click()
        rows = page.locator("#audit tbody tr")
        wait_for(lambda: rows.count() == 2, timeout=10)
        newest, older = rows.nth(0), rows.nth(1)
        assert newest.get_attribute("data-who") == "alice"
        assert newest.locator(".what").inner_text() == "force inference.example.com/us-east-1 up"
        assert newest.locator(".result").inner_text().strip() == "ok 200"
        assert older.get_attribute("data-who") == "deploy-ci"
        assert older.locator(".what").inner_text() == "reload"
        assert "memory" in page.locator("#audit-meta").inner_text()
        assert not page.locator("#audit-empty").is_visible()
