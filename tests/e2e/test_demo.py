"""`geodns demo` as a newcomer runs it: real simulated regions, health checks, DNS, admin API."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import dns.edns
import dns.message
import dns.query
import dns.rcode
import pytest

from tests.conftest import ROOT, wait_for
from tests.e2e.test_admin import http_at

US = "216.160.83.0/24"
GB = "81.2.69.0/24"
# The demo's regions all live on 127.0.0.1; the SRV answer's first target names the chosen one.
US_EAST, EU_WEST, AP_NORTHEAST = "us-east-1", "eu-west-1", "ap-northeast-1"
# The demo's checks: interval 0.5 s, fall 3, rise 2; a probe times out after 0.4 s.
DETECTION = 3 * 0.5 + 0.4 + 1.0  # fall x interval, one timeout, and a margin for a busy CI


@dataclass
class Demo:
    proc: subprocess.Popen[str]
    out: list[str] = field(default_factory=list)
    err: list[str] = field(default_factory=list)
    dns_port: int = 0
    admin_url: str = ""
    token: str = ""
    rum_token: str = ""

    def ask(self, subnet: str, name: str = "_inference._tcp.example.com") -> str:
        """The region a client in `subnet` is sent to first, or the rcode."""
        query = dns.message.make_query(name, "SRV")
        address, prefix = subnet.split("/")
        query.use_edns(0, options=[dns.edns.ECSOption(address, int(prefix))])
        reply = dns.query.udp(query, "127.0.0.1", port=self.dns_port, timeout=2)
        if reply.rcode() != dns.rcode.NOERROR:
            return dns.rcode.to_text(reply.rcode())
        first = min(reply.answer[0], key=lambda r: r.priority)
        return first.target.labels[0].decode()

    def region(self, name: str, **spec: object) -> dict:
        status, body = http_at(self.admin_url, f"/api/demo/regions/{name}", spec, self.token)
        assert status == 200, body
        return body


@contextlib.contextmanager
def running_demo() -> Iterator[Demo]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "geodns",
            "demo",
            "--listen",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    demo = Demo(proc)
    ready = threading.Event()

    def read_out() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            demo.out.append(line.rstrip("\n"))
            if m := re.search(r"dashboard +(http://\S+/)#token=(\S+)", line):
                demo.admin_url, demo.token = m.group(1), m.group(2)
            if m := re.search(r"GEODNS_RUM_TOKEN=(\S+)", line):
                demo.rum_token = m.group(1)
            if m := re.search(r"DNS +127\.0\.0\.1:(\d+)", line):
                demo.dns_port = int(m.group(1))
            if "Ctrl-C" in line:
                ready.set()
        ready.set()

    def read_err() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            demo.err.append(line.rstrip("\n"))

    threading.Thread(target=read_out, daemon=True).start()
    threading.Thread(target=read_err, daemon=True).start()
    try:
        if not ready.wait(20) or not demo.dns_port:
            raise RuntimeError("geodns demo did not start:\n" + "\n".join(demo.out + demo.err))
        yield demo
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def demo() -> Iterator[Demo]:
    with running_demo() as d:
        yield d


def test_demo_prints_what_to_try_and_answers_it(demo: Demo) -> None:
    text = "\n".join(demo.out)
    srv = "_inference._tcp.example.com SRV +short"
    assert f"dig @127.0.0.1 -p {demo.dns_port} {srv} +subnet={GB}" in text
    assert demo.ask(GB) == EU_WEST
    assert demo.ask(US) == US_EAST
    assert demo.ask("202.214.5.0/24") == AP_NORTHEAST
    _, state = http_at(demo.admin_url, "/api/state")
    regions = state["services"][0]["regions"]
    assert state["server"]["demo"] is True
    # The first health-check round ran before the first answer.
    assert all(r["checked"] == "up" and r["version"] == "42" for r in regions), regions
    assert regions[0]["utilization"] == pytest.approx(0.35)


def test_a_failed_region_leaves_answers_quickly_and_comes_back(demo: Demo) -> None:
    assert demo.ask(US) == US_EAST
    demo.region("us-east-1", mode="failing")
    failed_at = time.monotonic()
    wait_for(lambda: demo.ask(US) != US_EAST, timeout=DETECTION, interval=0.05)
    detected = time.monotonic() - failed_at
    # The next by latency from Seattle: the US row, corrected in-country, ranks Tokyo
    # before Dublin (docs/latency-and-cost.md).
    assert demo.ask(US) == AP_NORTHEAST
    _, state = http_at(demo.admin_url, "/api/state")
    region = state["services"][0]["regions"][0]
    assert (region["state"], region["error"]) == ("down", "HTTP 500")
    assert state["changes"][0]["reason"] == "3 failures: HTTP 500"
    assert any(
        "region us-east-1 of inference.example.com: up -> down (3 failures: HTTP 500)" in line
        for line in demo.err
    )
    demo.region("us-east-1", mode="healthy")
    wait_for(lambda: demo.ask(US) == US_EAST, timeout=DETECTION, interval=0.05)
    print(f"detection took {detected:.2f} s")


def test_a_busy_region_sheds_its_clients_in_steps(demo: Demo) -> None:
    """Above the band a region sheds a share of its client networks that grows by at most
    4/32 per TTL (docs/capacity.md), the first step once its smoothed load is above it."""
    subnets = [f"{a}.{b}.{c}.0/24" for a in (73, 24) for b in range(0, 250, 5) for c in (1, 150)]
    east = [s for s in subnets if demo.ask(s) == US_EAST]
    assert len(east) > 80
    demo.region("us-east-1", utilization=0.97)  # above the example's high watermark, 0.92

    def us_east() -> dict:
        _, state = http_at(demo.admin_url, "/api/state")
        return state["services"][0]["regions"][0]

    # The level is smoothed over half a TTL (15 s): from 0.35 it crosses 0.92 after ~38 s.
    wait_for(lambda: us_east()["shed"] > 0, timeout=60, interval=0.2)
    assert us_east()["utilization"] == pytest.approx(0.97)
    assert 0 < us_east()["shed"] <= 4 / 32
    moved = [s for s in east if demo.ask(s) != US_EAST]
    assert 0 < len(moved) < len(east) / 3, (len(moved), len(east))

    # The map shows the US split, not what one stand-in network of it gets.
    def us_shares() -> dict | None:
        _, state = http_at(demo.admin_url, "/api/state")
        return state["services"][0]["country_shares"].get("US")

    shares = wait_for(us_shares, timeout=10, interval=0.2)
    assert sum(shares.values()) == pytest.approx(1.0)
    assert 0.5 < shares["us-east-1"] < 1.0 and len(shares) >= 2
    _, state = http_at(demo.admin_url, "/api/state")
    assert state["services"][0]["countries"]["US"] == "us-east-1"  # the larger share


def test_a_hanging_region_is_marked_down_and_the_others_stay_up(demo: Demo) -> None:
    demo.region("ap-northeast-1", mode="hanging")
    wait_for(lambda: demo.ask("202.214.5.0/24") != AP_NORTHEAST, timeout=DETECTION)
    _, state = http_at(demo.admin_url, "/api/state")
    states = {r["name"]: (r["state"], r["error"]) for r in state["services"][0]["regions"]}
    assert states["ap-northeast-1"][0] == "down"
    assert "timeout" in states["ap-northeast-1"][1]
    assert states["us-east-1"] == ("up", None) and states["eu-west-1"] == ("up", None)


def test_the_load_script_rides_through_a_failed_region(demo: Demo) -> None:
    load = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "geodns.client.load",
            "--service",
            "inference.example.com",
            "--dns",
            f"127.0.0.1:{demo.dns_port}",
            "--duration",
            "4",
            "--rate",
            "20",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
    )
    time.sleep(1.5)
    demo.region("us-east-1", mode="failing")
    out, _ = load.communicate(timeout=30)
    print(out)
    assert load.returncode == 0, out
    assert "0 failed" in out
    assert "switch us-east-1 -> eu-west-1" in out


def test_the_demo_control_sets_a_region_latency(demo: Demo) -> None:
    body = demo.region("us-east-1", latency=0.08)
    assert body["latency"] == pytest.approx(0.08)
    status, body = http_at(
        demo.admin_url, "/api/demo/regions/us-east-1", {"latency": "slow"}, demo.token
    )
    assert status == 400 and "latency 'slow' is not a number of seconds" in body["error"]


def test_clients_measuring_a_region_slower_move_from_it(demo: Demo) -> None:
    # The load script the demo prints, reporting as clients in the US: once us-east-1
    # answers them 250 ms late, their measurements move their answers to the next region.
    assert demo.rum_token, demo.out
    load = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "geodns.client.load",
            *("--service", "inference.example.com", "--dns", f"127.0.0.1:{demo.dns_port}"),
            *("--duration", "40", "--rate", "20", "--probe-interval", "0.3"),
            *("--rum-url", demo.admin_url.rstrip("/") + "/api/rum", "--rum-client", US),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
        env={**os.environ, "GEODNS_RUM_TOKEN": demo.rum_token},
    )
    try:

        def us_row() -> dict | None:
            _, state = http_at(demo.admin_url, "/api/state")
            for area in state["measured"]["areas"]:
                if area["area"] == "US" and all(
                    area["regions"].get(r, {}).get("enough") for r in (US_EAST, EU_WEST)
                ):
                    return area
            return None

        wait_for(us_row, timeout=20, interval=0.3)
        assert demo.ask(US) == US_EAST  # measured, but nobody better by 10 ms and 10%
        demo.region(US_EAST, latency=0.25)
        wait_for(lambda: demo.ask(US) != US_EAST, timeout=20, interval=0.2)
        assert demo.ask(US) == AP_NORTHEAST  # Seattle's next region by the table
        row = us_row()
        assert row is not None and row["regions"][US_EAST]["ms"] >= 200
        assert demo.ask(GB) == EU_WEST
    finally:
        load.kill()
        load.communicate()
