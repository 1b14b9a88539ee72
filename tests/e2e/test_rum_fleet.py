"""Measured latency in a fleet: samples reported to one node reach every node through etcd,
so that all of them answer a client area by the same measurements (and show the same
digest); when the node that received them dies, its estimates leave with its lease."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.conftest import wait_for
from tests.e2e.test_rum import TOKEN, explain, first_by_srv, post, zone_text
from tests.etcd_cluster import etcd_cluster
from tests.fleet import http, running_fleet
from tests.regions import regions_in_thread

CALIFORNIA = "24.5.6.0/24"  # the latency table puts us-west-2 first for it (in-country anchors)


@pytest.fixture(scope="module")
def etcd1():
    with etcd_cluster(1) as cluster:
        yield cluster


def report(ms: dict[str, float], n: int) -> bytes:
    now = time.time()
    samples = [
        {"region": region, "ttfb_ms": value, "ok": True, "t": now - i * 0.01}
        for region, value in ms.items()
        for i in range(n)
    ]
    return json.dumps({"version": 1, "client": CALIFORNIA, "samples": samples}).encode()


def sources(node) -> dict[str, str]:
    rows = explain(node, CALIFORNIA.split("/")[0])["latency"]
    return {r["region"]: r["source"] for r in rows}


def test_samples_sent_to_one_node_order_every_node_alike(etcd1, tmp_path: Path) -> None:
    token = tmp_path / "rum-token"
    token.write_text(TOKEN + "\n")
    args = (
        *("--rum-token-file", str(token), "--rum-publish-interval", "0.1"),
        *("--rum-gateway", "127.0.0.0/8", "--rum-min-samples", "3", "--rum-rate", "50"),
        *("--store-lease-ttl", "2"),
    )
    with (
        regions_in_thread("us-east-1", "us-west-2") as regions,
        running_fleet(
            tmp_path,
            etcd1.url,
            [zone_text({n: r.port for n, r in regions.items()})] * 2,
            args,
        ) as fleet,
    ):
        reporter, other = fleet.nodes
        assert first_by_srv(other, CALIFORNIA) == "us-west-2"  # the table's order
        # Two samples per region at the reporting node: too few for routing alone...
        assert post(reporter, report({"us-east-1": 12.0, "us-west-2": 180.0}, 2))[0] == 202
        time.sleep(0.5)
        assert first_by_srv(other, CALIFORNIA) == "us-west-2"
        # ... and the other node's samples make them enough: neither node has enough
        # alone, the fleet has, and both nodes answer by it.
        assert post(other, report({"us-east-1": 14.0, "us-west-2": 170.0}, 2))[0] == 202
        for node in fleet.nodes:
            wait_for(lambda n=node: first_by_srv(n, CALIFORNIA) == "us-east-1", timeout=10)
            assert sources(node)["us-east-1"] == "measured"
        measured = {
            r["region"]: r["samples"]
            for r in explain(other, CALIFORNIA.split("/")[0])["measured"]
            if r["level"] == "network"
        }
        assert measured == {"us-west-2": 4, "us-east-1": 4}

        # Same estimates, same digest: the fleet view shows the nodes agree.
        def agree() -> bool:
            nodes = http(other, "/api/state")[1]["fleet"]["nodes"]
            return len(nodes) == 2 and all(n["agrees"] for n in nodes)

        wait_for(agree, timeout=10)
        # The reporting node dies: its half of the samples leaves with its lease, and the
        # other node's two are too few again: back to the table.
        fleet.kill(0)
        wait_for(lambda: first_by_srv(other, CALIFORNIA) == "us-west-2", timeout=15)
