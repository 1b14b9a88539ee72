"""Metrics of a real `geodns serve`: the read-only --metrics listener, process and Python
collectors, SRV answers, residency refusals by rule, shed shares, the last reload's result."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.rcode
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import EXAMPLE_ZONES, ROOT, ServerProcess, running_server, wait_for
from tests.e2e.test_admin import http
from tests.e2e.test_fail_closed import zone_with
from tests.e2e.test_geo import addresses, ask
from tests.geo_fixtures import build_test_mmdb

SERVICE = "inference.example.com"
SRV_NAME = "_inference._tcp.example.com"
US, GB = "216.160.83.0/24", "81.2.69.0/24"
Samples = dict[str, dict[tuple, float]]


def fetch(url: str, method: str = "GET") -> tuple[int, str, str]:
    """Status, Content-Type and body of one request."""
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as reply:
            return reply.status, reply.headers.get("Content-Type", ""), reply.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type", ""), exc.read().decode()


def samples(text: str) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def scrape(server: ServerProcess) -> Samples:
    url = wait_for(lambda: server.metrics_url)
    status, _, text = fetch(url)
    assert status == 200
    return samples(text)


def families(text: str) -> set[str]:
    return {family.name for family in text_string_to_metric_families(text)}


@pytest.fixture(scope="module")
def mmdb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_test_mmdb(tmp_path_factory.mktemp("geo") / "test-city.mmdb")


@pytest.fixture(scope="module")
def scraped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The example zone with the metrics listener on IPv6 loopback."""
    state = tmp_path_factory.mktemp("state")
    with running_server(EXAMPLE_ZONES, "--metrics", "[::1]:0", "--state-dir", str(state)) as srv:
        yield srv


def test_the_metrics_listener_serves_the_admin_sides_families(scraped: ServerProcess) -> None:
    url = wait_for(lambda: scraped.metrics_url)
    assert url.startswith("http://[::1]:")
    status, kind, text = fetch(url)
    assert status == 200 and kind.startswith("text/plain; version=")
    status, admin_text = http(scraped, "/metrics")
    assert status == 200
    # One registry behind both addresses.
    assert families(text) == families(admin_text)
    names = families(text)
    assert {"geodns_queries", "geodns_answers", "geodns_region_state"} <= names
    # The process and the interpreter, as every Python exporter has them.
    assert {"process_cpu_seconds", "process_resident_memory_bytes", "process_open_fds"} <= names
    assert {"python_info", "python_gc_collections"} <= names


def test_the_metrics_listener_serves_nothing_else(scraped: ServerProcess) -> None:
    url = wait_for(lambda: scraped.metrics_url)
    base = url.removesuffix("/metrics")
    for path in ("/", "/healthz", "/api/state", "/static/dashboard.js", "/metrics/x"):
        assert fetch(base + path)[0] == 404, path
    # Read-only: a change the admin side would take is not even routed here.
    assert fetch(url, "POST")[0] == 405
    assert fetch(base + "/api/reload", "POST")[0] == 404


def test_metrics_without_the_admin_side(tmp_path: Path) -> None:
    with running_server(
        EXAMPLE_ZONES, "--metrics", "127.0.0.1:0", "--state-dir", str(tmp_path), http="off"
    ) as srv:
        srv.udp(dns.message.make_query("www.example.com", "A"))
        m = scrape(srv)
        key = (("qtype", "A"), ("rcode", "NOERROR"), ("transport", "udp"), ("zone", "example.com"))
        assert m["geodns_queries_total"][key] >= 1
        assert m["process_open_fds"][()] > 0
        assert srv.admin_url is None


def serve_quietly(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "geodns", "serve", "--listen", "127.0.0.1:0", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=30,
    )


def test_a_busy_metrics_port_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = serve_quietly(
            "--http", "off", "--metrics", f"127.0.0.1:{port}", "--state-dir", str(tmp_path)
        )
    assert result.returncode == 2, result.stderr
    assert f"--metrics 127.0.0.1:{port}: cannot listen: Address already in use" in result.stderr


@pytest.mark.parametrize(
    ("given", "problem"),
    [
        ("127.0.0.1", "give HOST:PORT"),
        ("::1", "give HOST:PORT"),
        ("[::1]", "give HOST:PORT"),
        ("localhost:9153", "is not an IP address"),
        ("127.0.0.1:99999", "out of range"),
    ],
)
def test_a_bad_metrics_address_says_so(given: str, problem: str) -> None:
    result = serve_quietly("--http", "off", "--metrics", given)
    assert result.returncode == 2
    assert "--metrics" in result.stderr and problem in result.stderr, result.stderr


def test_srv_answers_are_counted_for_their_first_target(tmp_path: Path) -> None:
    with running_server(
        EXAMPLE_ZONES, "--state-dir", str(tmp_path), listen=("127.0.0.1:0",)
    ) as srv:
        for _ in range(3):
            reply = ask(srv, US, "SRV", SRV_NAME)  # ECS: the class path and its cache
            first = min(reply.answer[0], key=lambda r: r.priority)
            assert first.target.to_text() == "us-east-1.inference.example.com."
        ask(srv, GB, "SRV", SRV_NAME)
        query = dns.message.make_query(SRV_NAME, "SRV")  # no ECS: the full path
        srv.tcp(query)
        srv.tcp(query)
        answers = samples(http(srv, "/metrics")[1])["geodns_answers_total"]
        # The loopback client is not located: the default order, us-east-1 first.
        assert answers[(("region", "us-east-1"), ("service", SERVICE))] == 5
        assert answers[(("region", "eu-west-1"), ("service", SERVICE))] == 1
        # The dashboard's answers per minute read the same counts.
        regions = http(srv, "/api/state")[1]["services"][0]["regions"]
        per_minute = {r["name"]: r["answers_last_minute"] for r in regions}
        assert per_minute == {"us-east-1": 5, "eu-west-1": 1, "ap-northeast-1": 0}


def test_residency_refusals_are_counted_by_rule(mmdb: Path, tmp_path: Path) -> None:
    rules = (
        "      - clients: {continent: EU}\n        regions: [eu-west-1]\n"
        "        when_none: {answer: [192.0.2.29]}\n"
        "      - clients: {countries: [JP]}\n        regions: [ap-northeast-1]\n"
        "        when_none: refuse\n"
    )
    zones = zone_with(tmp_path, rules, "    unlocated: refuse\n")
    state = tmp_path / "state.yaml"
    state.write_text(f"{SERVICE}:\n  eu-west-1: {{state: down}}\n")
    with running_server(
        zones,
        "--geoip-database",
        str(mmdb),
        "--state",
        str(state),
        "--metrics",
        "127.0.0.1:0",
        "--state-dir",
        str(tmp_path),
        listen=("127.0.0.1:0",),
    ) as srv:
        for _ in range(3):
            assert addresses(ask(srv, GB)) == ["192.0.2.29"]  # failed closed: rule 0
        assert addresses(ask(srv, GB, "AAAA")) == []  # the endpoint has no IPv6: NODATA
        srv.udp(dns.message.make_query(SERVICE, "A"))  # loopback, not located: unlocated
        assert ask(srv, "8.8.8.0/24").rcode() == dns.rcode.REFUSED  # unlocated too
        assert addresses(ask(srv, US)) == ["192.0.2.10"]  # no rule: not counted
        assert addresses(ask(srv, "202.214.5.0/24")) == ["192.0.2.30"]  # JP, healthy: not
        refusals = scrape(srv)["geodns_residency_refusals_total"]
        assert refusals == {
            (("rule", "0"), ("service", SERVICE)): 4,
            (("rule", "1"), ("service", SERVICE)): 0,
            (("rule", "unlocated"), ("service", SERVICE)): 2,
        }


def test_shed_shares_are_read_from_the_state(tmp_path: Path) -> None:
    state = tmp_path / "state.yaml"
    state.write_text(f"{SERVICE}:\n  us-east-1: {{utilization: 0.95}}\n")
    with running_server(
        EXAMPLE_ZONES,
        "--state",
        str(state),
        "--metrics",
        "127.0.0.1:0",
        "--state-dir",
        str(tmp_path),
        listen=("127.0.0.1:0",),
    ) as srv:
        m = scrape(srv)
        shed, accept = m["geodns_region_shed_ratio"], m["geodns_region_accept_ratio"]
        assert shed[(("region", "us-east-1"), ("service", SERVICE))] == 1.0  # above high
        assert shed[(("region", "eu-west-1"), ("service", SERVICE))] == 0.0
        assert accept[(("region", "us-east-1"), ("service", SERVICE))] == 0.0
        assert accept[(("region", "eu-west-1"), ("service", SERVICE))] == 1.0
        # What the dashboard's table shows.
        regions = http(srv, "/api/state")[1]["services"][0]["regions"]
        assert {r["name"]: r["shed"] for r in regions} == {
            "us-east-1": 1.0,
            "eu-west-1": 0.0,
            "ap-northeast-1": 0.0,
        }


def test_the_last_reloads_result_lasts_as_long_as_the_problem(tmp_path: Path) -> None:
    zones = tmp_path / "zones"
    zones.mkdir()
    zone = zones / "example.com.yaml"
    shutil.copy(EXAMPLE_ZONES / "example.com.yaml", zone)
    good = zone.read_text()
    with running_server(
        zones,
        "--watch-interval",
        "0.1",
        "--metrics",
        "127.0.0.1:0",
        "--state-dir",
        str(tmp_path),
        listen=("127.0.0.1:0",),
    ) as srv:

        def successful() -> float:
            return scrape(srv)["geodns_config_last_reload_successful"][()]

        assert successful() == 1
        zone.write_text(good.replace("mail: {A: 192.0.2.25}", "mail: {A: 999.0.2.25}"))
        wait_for(lambda: successful() == 0, timeout=5, interval=0.1)
        zone.write_text(good.replace("mail: {A: 192.0.2.25}", "mail: {A: 192.0.2.26}"))
        wait_for(lambda: successful() == 1, timeout=5, interval=0.1)
