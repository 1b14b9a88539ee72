"""POST /api/services/<service>/regions/<region>/load on a real `geodns serve`: a pushed
load sheds a share of the region's client networks, to regions with room; bad, oversized
and unauthenticated pushes are refused with a clear 4xx and counted."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator

import dns.edns
import dns.message
import pytest

from geodns.admin.app import MAX_LOAD_BODY
from geodns.health.load import STEP
from tests.conftest import EXAMPLE_ZONES, ServerProcess, running_server
from tests.e2e.test_admin import answer_of, http, metrics

TOKEN = "load-push-token"
PATH = "/api/services/inference.example.com/regions/{}/load"
EAST, EU, AP = "192.0.2.10", "192.0.2.20", "192.0.2.30"
# US networks (Comcast's 73.0.0.0/8 and 24.0.0.0/8 in DB-IP Lite): many buckets.
SUBNETS = [f"{a}.{b}.{c}.0/24" for a in (73, 24) for b in range(0, 250, 10) for c in (1, 77, 150)]


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with running_server(EXAMPLE_ZONES, env={"GEODNS_ADMIN_TOKEN": TOKEN}) as srv:
        yield srv


def raw(server: ServerProcess, region: str, data: bytes, token: str | None = TOKEN) -> int:
    assert server.admin_url is not None
    request = urllib.request.Request(server.admin_url.rstrip("/") + PATH.format(region), data=data)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as reply:
            return reply.status
    except urllib.error.HTTPError as exc:
        return exc.code


def answers(server: ServerProcess) -> dict[str, object]:
    out = {}
    for subnet in SUBNETS:
        query = dns.message.make_query("inference.example.com", "A", use_edns=0)
        address, prefix = subnet.split("/")
        query.use_edns(0, options=[dns.edns.ECSOption(address, int(prefix))])
        out[subnet] = answer_of(server.udp(query))
    return out


def test_a_pushed_load_sheds_to_regions_with_room(server: ServerProcess) -> None:
    before = answers(server)
    east = [s for s, a in before.items() if a == [EAST]]
    assert len(east) > 50, before
    for region, u in (("eu-west-1", 0.2), ("ap-northeast-1", 0.3), ("us-east-1", 1.0)):
        status, body = http(server, PATH.format(region), {"utilization": u}, token=TOKEN)
        assert status == 200, body
    assert (body["shed"], body["accept"], body["expires"]) == (STEP, 0.0, 60.0)
    after = answers(server)
    moved = [s for s in east if after[s] != [EAST]]
    assert 0.03 < len(moved) / len(east) < 0.3, (len(moved), len(east))
    assert all(after[s] in ([EU], [AP]) for s in moved)
    assert all(after[s] == before[s] for s in SUBNETS if s not in east)
    status, state = http(server, "/api/state")
    regions = {r["name"]: r for r in state["services"][0]["regions"]}
    assert (regions["us-east-1"]["shed"], regions["us-east-1"]["accept"]) == (STEP, 0.0)


def test_bad_pushes_are_refused_and_counted(server: ServerProcess) -> None:
    good = b'{"utilization": 0.5}'
    assert raw(server, "eu-west-1", good, token=None) == 401
    assert raw(server, "eu-west-1", good, token="wrong") == 401
    assert raw(server, "eu-west-1", b"{not json") == 400
    assert raw(server, "eu-west-1", b"[0.5]") == 400
    assert raw(server, "eu-west-1", b'{"queue": 3}') == 400
    assert raw(server, "eu-west-1", b'{"utilization": "busy"}') == 400
    assert raw(server, "mars-1", good) == 404
    assert raw(server, "eu-west-1", b" " * (MAX_LOAD_BODY + 1)) == 413
    status, body = http(server, PATH.format("eu-west-1"), {"utilization": 7, "x": 1}, TOKEN)
    assert status == 400 and "unknown key 'x'" in body["error"]
    counts = metrics(server)["geodns_load_pushes_total"]
    for result, n in (("unauthorized", 2), ("bad_request", 5), ("not_found", 1), ("too_large", 1)):
        assert counts[(("result", result),)] == n, (result, counts)
