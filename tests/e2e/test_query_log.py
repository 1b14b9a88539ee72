"""The sampled query log of a real `geodns serve`, read back as JSON lines from its stderr."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path
from typing import Any

import dns.edns
import dns.message
import dns.query

from tests.conftest import EXAMPLE_ZONES, ServerProcess, running_server, wait_for, wait_for_scopes
from tests.geo_fixtures import build_test_mmdb


def records(server: ServerProcess, logger: str = "geodns.query") -> list[dict[str, Any]]:
    out = []
    for line in list(server.lines):
        if line.startswith("{"):
            record = json.loads(line)
            if record["logger"] == logger:
                out.append(record)
    return out


def ask(server: ServerProcess, name: str, subnet: str | None = None) -> dns.message.Message:
    options = []
    if subnet is not None:
        address, prefix = subnet.split("/")
        options.append(dns.edns.ECSOption(address, int(prefix)))
    return server.udp(dns.message.make_query(name, "A", use_edns=0, options=options))


def flush(server: ServerProcess) -> None:
    """Wait until everything the server logged before now has been read: an admin request
    (its access log line) comes after every query record already written to stderr."""
    before = len(records(server, "aiohttp.access"))
    assert server.admin_url is not None
    with urllib.request.urlopen(server.admin_url + "healthz", timeout=5) as reply:
        reply.read()
    wait_for(lambda: len(records(server, "aiohttp.access")) > before)


def test_records_name_the_region_for_a_service_and_none_for_a_static_name() -> None:
    with running_server(
        EXAMPLE_ZONES, "--log-format", "json", "--query-log", "--access-log"
    ) as server:
        reply = ask(server, "inference.example.com", "81.2.69.0/24")
        ask(server, "www.example.com")
        flush(server)
        service, static = records(server)
        # Every line of the process is JSON with the stable keys, not only the query log's.
        assert all(json.loads(line)["ts"].endswith("Z") for line in server.lines)
    assert service["client"] == "127.0.0.1"
    assert isinstance(service["port"], int) and service["port"] > 0
    assert service["qname"] == "inference.example.com."
    assert service["qtype"] == "A"
    assert service["rcode"] == "NOERROR"
    assert service["service"] == "inference.example.com"
    assert service["region"] == "eu-west-1"  # London's nearest
    assert service["regions"] == ["eu-west-1"]
    scope = reply.options[0].scopelen
    assert service["ecs"] == {"address": "81.2.69.0", "source": 24, "scope": scope}
    # No merged scopes in this server (scope cache off): no class decides, so the full path
    # answers, per GeoIP network.
    assert service["path"] == "full"
    assert service["route"] == "network"
    assert service["decision"] is None
    assert service["level"] == "INFO" and "eu-west-1" in service["msg"]

    assert static["qname"] == "www.example.com."
    assert static["ecs"] is None
    assert static["rcode"] == "NOERROR"
    assert static["region"] is None and static["regions"] == []
    assert static["service"] is None
    assert static["route"] == "static"
    assert static["path"] == "full"


def test_a_repeated_query_comes_from_the_reply_cache_and_a_class_decides(tmp_path: Path) -> None:
    mmdb = build_test_mmdb(tmp_path / "city.mmdb")
    with running_server(
        EXAMPLE_ZONES,
        "--log-format",
        "json",
        "--query-log",
        "--access-log",
        "--geoip-database",
        str(mmdb),
        scope_cache=str(tmp_path / "cache"),
        listen=("127.0.0.1:0",),
    ) as server:
        wait_for_scopes(server)
        ask(server, "inference.example.com", "216.160.83.0/24")
        ask(server, "inference.example.com", "216.160.83.0/24")
        flush(server)
        first, again = records(server)
    assert first["path"] == "fast" and again["path"] == "cache"
    for record in (first, again):
        assert record["region"] == "us-east-1"
        assert record["route"] == "class"
        # The class's routing decision, step by step, as the class path keeps it.
        steps = [line.partition(":")[0] for line in record["decision"]]
        assert steps[:2] == ["residency", "health"]
        assert "order" in steps


def test_the_rate_bound_holds_under_a_burst() -> None:
    rate = 5
    with running_server(
        EXAMPLE_ZONES,
        "--log-format",
        "json",
        "--query-log",
        "--query-log-rate",
        str(rate),
        "--access-log",
        "--rrl-rate",
        "0",  # response rate limiting would drop most of the burst from one address
    ) as server:
        query = dns.message.make_query("www.example.com", "A")
        start = time.monotonic()
        for _ in range(600):
            dns.query.udp(query, "127.0.0.1", port=server.port, timeout=2)
        elapsed = time.monotonic() - start
        flush(server)
        logged = len(records(server))
    # The bucket holds one second's worth and refills at `rate` a second.
    assert rate <= logged <= rate + rate * elapsed + 1, (logged, elapsed)
    assert logged < 600


def test_nothing_is_logged_when_the_query_log_is_off() -> None:
    with running_server(EXAMPLE_ZONES, "--log-format", "json", "--access-log") as server:
        for subnet in ("81.2.69.0/24", "216.160.83.0/24"):
            ask(server, "inference.example.com", subnet)
        ask(server, "www.example.com")
        flush(server)
        assert records(server) == []
        assert not any("geodns.query" in line for line in server.lines)
