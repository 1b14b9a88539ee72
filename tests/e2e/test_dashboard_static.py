"""The admin dashboard's front end in headless Chromium, against a stand-in server.

A small aiohttp app started here serves the real static files (geodns/admin/static/) and an
/api/state that each test controls, and records the POSTs the page makes. It stands in for the
admin server until that exists; the contract is the /api/state JSON the page is built against.

The screenshot goes to a temporary file; with GEODNS_UPDATE_SCREENSHOT=1 it replaces
docs/dashboard.png (committed, so a plain test run leaves the work tree clean).
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp import web

from tests.conftest import ROOT, wait_for

pytest_plugins = ["tests.browser"]

STATIC = ROOT / "geodns" / "admin" / "static"
COUNTRIES = json.loads((ROOT / "geodns" / "data" / "countries.json").read_text())
SERVICE = "inference.example.com"
TOKEN = "s3cret-token"
# Okabe-Ito colours, as a colour-blind-safe palette for regions
COLORS = {"us-east-1": "#0072B2", "eu-west-1": "#E69F00", "ap-northeast-1": "#009E73"}
MAP_ID = "#map-" + SERVICE.replace(".", "\\.")  # the map's id, escaped for CSS
REFUSED = ("CN", "KP", "IR")  # e.g. a residency rule that fails closed


def demo_countries() -> dict[str, str | None]:
    """Europe and Africa -> eu-west-1, the Americas -> us-east-1, Asia and Oceania -> Tokyo."""
    by_continent = {
        "EU": "eu-west-1",
        "AF": "eu-west-1",
        "NA": "us-east-1",
        "SA": "us-east-1",
        "AS": "ap-northeast-1",
        "OC": "ap-northeast-1",
    }
    out: dict[str, str | None] = {}
    for cc, c in COUNTRIES.items():
        if c["continent"] in by_continent:
            out[cc] = by_continent[c["continent"]]
    for cc in REFUSED:
        out[cc] = None
    return out


def demo_state(now: float | None = None) -> dict[str, Any]:
    now = time.time() if now is None else now

    def region(name, lat, lon, addrs, **kw) -> dict[str, Any]:
        r = {
            "name": name,
            "state": "up",
            "checked": "up",
            "forced": None,
            "since": now - 3 * 3600 - 720,
            "last_check": now - 1.2,
            "latency_ms": 3.2,
            "error": None,
            "utilization": 0.42,
            "version": "42",
            "answers_last_minute": 1234,
            "addresses": addrs,
            "location": {"lat": lat, "lon": lon},
            "color": COLORS[name],
        }
        r.update(kw)
        return r

    return {
        "server": {
            "version": "0.1.0",
            "started": now - 3 * 3600 - 900,
            "now": now,
            "config_version": 3,
            "config_loaded": now - 1260,
            "reload_error": None,
            "geoip": {
                "file": "dbip-city-lite-latest.mmdb",
                "build_date": "2023-04-01",
                "attribution": "IP Geolocation by DB-IP (https://db-ip.com), CC BY 4.0",
            },
            "demo": True,
        },
        "services": [
            {
                "name": SERVICE,
                "ttl": 30,
                "answers": 1,
                "regions": [
                    region(
                        "us-east-1",
                        38.9,
                        -77.0,
                        ["192.0.2.10", "2001:db8::10"],
                        latency_ms=3.2,
                        utilization=0.42,
                        answers_last_minute=4812,
                    ),
                    region(
                        "eu-west-1",
                        53.3,
                        -6.3,
                        ["192.0.2.20", "2001:db8::20"],
                        since=now - 180,
                        latency_ms=11.8,
                        utilization=0.81,
                        version="43",
                        answers_last_minute=3377,
                    ),
                    region(
                        "ap-northeast-1",
                        35.7,
                        139.7,
                        ["192.0.2.30", "2001:db8::30"],
                        latency_ms=148.6,
                        utilization=0.94,
                        answers_last_minute=2109,
                        error="last failure 14m ago: HTTP 503 from /healthz",
                    ),
                ],
                "countries": demo_countries(),
            }
        ],
        "changes": [
            {
                "time": now - 1080,
                "service": SERVICE,
                "region": "eu-west-1",
                "from": "up",
                "to": "down",
                "reason": "3 failures: timeout after 2.0s",
            },
            {
                "time": now - 180,
                "service": SERVICE,
                "region": "eu-west-1",
                "from": "down",
                "to": "up",
                "reason": "2 successes: HTTP 200 in 11.8 ms",
            },
            {
                "time": now - 840,
                "service": SERVICE,
                "region": "ap-northeast-1",
                "from": "up",
                "to": "drain",
                "reason": "forced by admin (127.0.0.1)",
            },
            {
                "time": now - 600,
                "service": SERVICE,
                "region": "ap-northeast-1",
                "from": "drain",
                "to": "up",
                "reason": "forced: auto (127.0.0.1)",
            },
        ],
    }


@dataclass
class StandIn:
    """The stand-in admin server: what it serves and what it was sent."""

    url: str = ""
    state: dict[str, Any] = field(default_factory=demo_state)
    fail_state: bool = False  # /api/state answers 503, as if the server were gone
    posts: list[dict[str, Any]] = field(default_factory=list)

    def set_state(self, state: dict[str, Any]) -> None:
        self.state = state

    def region(self, name: str) -> dict[str, Any]:
        return next(r for r in self.state["services"][0]["regions"] if r["name"] == name)


def build_app(standin: StandIn) -> web.Application:
    async def index(request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "index.html")

    async def api_state(request: web.Request) -> web.Response:
        if standin.fail_state:
            return web.json_response({"error": "unavailable"}, status=503)
        state = copy.deepcopy(standin.state)
        state["server"]["now"] = time.time()
        return web.json_response(state)

    async def record(request: web.Request) -> web.Response:
        body = await request.json()
        standin.posts.append(
            {
                "path": request.path,
                "authorization": request.headers.get("Authorization"),
                "body": body,
            }
        )
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return web.json_response({"error": "bad token"}, status=401)
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/", index)
    app.router.add_get("/api/state", api_state)
    app.router.add_post("/api/services/{service}/regions/{region}/state", record)
    app.router.add_post("/api/demo/regions/{region}", record)
    app.router.add_static("/static/", STATIC)
    return app


@pytest.fixture
def standin() -> Iterator[StandIn]:
    """The stand-in server on 127.0.0.1, in a thread with its own event loop."""
    server = StandIn()
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(build_app(server), access_log=None)
    started = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        port = runner.addresses[0][1]
        server.url = f"http://127.0.0.1:{port}"
        started.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert started.wait(10), "stand-in admin server did not start"
    try:
        yield server
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


@pytest.fixture
def page(browser_page: Any, standin: StandIn) -> Iterator[Any]:
    """The dashboard's page, with every request it makes recorded in page.requests."""
    browser_page.requests = []
    errors: list[str] = []
    browser_page.on("request", lambda req: browser_page.requests.append(req.url))
    browser_page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield browser_page
    hosts = {urlsplit(u).hostname for u in browser_page.requests if not u.startswith("data:")}
    assert hosts <= {"127.0.0.1"}, f"the page asked other hosts: {sorted(browser_page.requests)}"
    assert errors == [], f"uncaught errors in the page's script: {errors}"


def open_dashboard(page: Any, standin: StandIn, fragment: str = "") -> None:
    page.goto(standin.url + "/" + fragment)
    page.wait_for_selector(f'[data-service="{SERVICE}"] [data-region="eu-west-1"] .state .badge')
    page.wait_for_selector(f'svg.map[data-service="{SERVICE}"] path[data-country="GB"][data-route]')


def row(region: str) -> str:
    return f'[data-service="{SERVICE}"] [data-region="{region}"]'


def test_shows_regions_states_and_map(page: Any, standin: StandIn) -> None:
    open_dashboard(page, standin)
    for name in COLORS:
        assert page.text_content(f"{row(name)} .state .badge") == "up"
    assert page.text_content(f"{row('us-east-1')} .answers") == "4,812"
    assert page.get_attribute(f"{row('ap-northeast-1')} .util", "data-value") == "0.94"
    assert "HTTP 503" in page.text_content(f"{row('ap-northeast-1')} .error")
    assert page.text_content("#server-version") == "0.1.0"
    assert page.text_content("#geoip-build-date") == "2023-04-01"
    assert "DB-IP" in page.text_content("#geoip-attribution")
    assert page.is_hidden("#reload-error")

    svg = MAP_ID
    gb = page.locator(f'{svg} path[data-country="GB"]')
    assert gb.get_attribute("data-route") == "eu-west-1"
    assert gb.evaluate("p => getComputedStyle(p).fill") == "rgb(230, 159, 0)"  # #E69F00
    assert page.get_attribute(f'{svg} path[data-country="US"]', "fill") == COLORS["us-east-1"]
    assert page.get_attribute(f'{svg} path[data-country="CN"]', "class") == "refused"
    assert page.get_attribute(f'{svg} path[data-country="GL"]', "data-route") == "us-east-1"
    assert page.locator(f"{svg} g.marker").count() == 3

    page.hover(f'{svg} path[data-country="FR"]')
    assert page.text_content("#tooltip") == "France (FR) → eu-west-1"

    times = page.locator("#changes tbody tr td.time").all_text_contents()
    assert len(times) == 4
    regions = page.locator("#changes tbody tr").evaluate_all(
        "rows => rows.map(r => r.dataset.changeRegion)"
    )
    assert regions == ["eu-west-1", "ap-northeast-1", "ap-northeast-1", "eu-west-1"]  # newest first


def test_follows_state_changes_without_reload(page: Any, standin: StandIn) -> None:
    open_dashboard(page, standin)
    page.evaluate("window.__sameDocument = true")
    state = demo_state()
    eu = state["services"][0]["regions"][1]
    eu.update(state="drain", forced="drain", checked="up")
    state["services"][0]["countries"]["GB"] = "us-east-1"
    state["server"]["reload_error"] = {
        "time": time.time() - 5,
        "errors": ["zones/example.com.yaml:12: records.www.A: not an IPv4 address"],
    }
    state["server"]["config_version"] = 4
    standin.set_state(state)

    page.wait_for_function(
        "s => document.querySelector(s).textContent === 'drain (forced)'",
        arg=f"{row('eu-west-1')} .state .badge",
        timeout=5000,
    )
    assert page.get_attribute(f"{row('eu-west-1')} button[data-action=drain]", "aria-pressed") == (
        "true"
    )
    page.wait_for_selector("#reload-error", state="visible", timeout=5000)
    assert "records.www.A" in page.text_content("#reload-errors")
    gb = f'svg.map[data-service="{SERVICE}"] path[data-country="GB"]'
    assert page.get_attribute(gb, "data-route") == "us-east-1"
    assert page.text_content("#config-version") == "v4"
    assert page.evaluate("window.__sameDocument") is True  # patched, not reloaded

    standin.fail_state = True
    page.wait_for_selector("#updated[data-status=stale]", timeout=6000)
    page.wait_for_selector("#conn-error", state="visible")
    assert "Cannot reach" in page.text_content("#conn-error")
    standin.fail_state = False
    page.wait_for_selector("#updated[data-status=ok]", timeout=6000)
    assert page.is_hidden("#conn-error")


def test_token_from_fragment_is_sent(page: Any, standin: StandIn) -> None:
    open_dashboard(page, standin, f"#token={TOKEN}")
    assert page.evaluate("location.hash") == ""  # taken out of the address bar
    page.click(f"{row('eu-west-1')} button[data-action=drain]")
    wait_for(lambda: standin.posts, timeout=5)
    post = standin.posts[-1]
    assert post["path"] == f"/api/services/{SERVICE}/regions/eu-west-1/state"
    assert post["authorization"] == f"Bearer {TOKEN}"
    assert post["body"] == {"state": "drain"}

    page.click(f"{row('us-east-1')} button[data-demo-utilization='0.97']")
    wait_for(lambda: len(standin.posts) == 2, timeout=5)
    assert standin.posts[-1]["path"] == "/api/demo/regions/us-east-1"
    assert standin.posts[-1]["body"] == {"utilization": 0.97}

    # a wrong token: the server's 401 is shown plainly
    page.fill("#token", "wrong")
    page.click(f"{row('us-east-1')} button[data-action=auto]")
    page.wait_for_selector("#message[data-kind=error]", timeout=5000)
    assert "401" in page.text_content("#message")
    assert standin.posts[-1]["authorization"] == "Bearer wrong"


def test_without_a_token_nothing_is_posted(page: Any, standin: StandIn) -> None:
    open_dashboard(page, standin)
    page.click(f"{row('eu-west-1')} button[data-action=down]")
    page.wait_for_selector("#message[data-kind=error]", timeout=5000)
    assert "token" in page.text_content("#message")
    assert standin.posts == []


def test_screenshot(page: Any, standin: StandIn, tmp_path: Path) -> None:
    open_dashboard(page, standin)
    page.wait_for_selector("#updated[data-status=ok]")
    page.mouse.move(0, 0)
    out = tmp_path / "dashboard.png"
    if os.environ.get("GEODNS_UPDATE_SCREENSHOT") == "1":
        out = ROOT / "docs" / "dashboard.png"
        out.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(out))
    assert out.stat().st_size > 10_000


def test_country_data() -> None:
    """countries.json and world.json agree, and hold what the map and the server need."""
    world = json.loads((STATIC / "world.json").read_text())
    assert (STATIC / "world.json").stat().st_size < 300_000
    assert len(COUNTRIES) >= 249
    for cc, c in COUNTRIES.items():
        assert len(cc) == 2 and cc.isupper(), cc
        assert c["continent"] in {"AF", "AN", "AS", "EU", "NA", "OC", "SA"}, cc
        assert -90 <= c["lat"] <= 90 and -180 <= c["lon"] <= 180, cc
        assert c["name"] and c["name"] == c["name"].strip(), cc
    # Natural Earth writes ISO_A2 -99 for these; they must still be here under their codes
    for cc in ("FR", "NO", "XK", "GB", "US", "CN", "JP", "GF", "SJ"):
        assert cc in world["countries"], cc
    assert set(world["countries"]) <= set(COUNTRIES)
    # GeoNames' continents, as MaxMind and DB-IP use them
    expect = {"RU": "EU", "TR": "AS", "EG": "AF", "CY": "EU", "PA": "NA", "GF": "SA", "AU": "OC"}
    assert {cc: COUNTRIES[cc]["continent"] for cc in expect} == expect
    # points lie where they should, roughly
    assert 49 < COUNTRIES["GB"]["lat"] < 59 and -8 < COUNTRIES["GB"]["lon"] < 2
    assert 42 < COUNTRIES["FR"]["lat"] < 51 and -5 < COUNTRIES["FR"]["lon"] < 8
    assert all(p["d"].startswith("M") for p in world["countries"].values())


def test_a_country_split_among_regions_shows_its_shares(page: Any, standin: StandIn) -> None:
    # us-east-1 sheds 42% of its client networks to eu-west-1 (capacity): the map shows
    # the US in both colours, the tooltip the shares, the legend the partial countries.
    state = demo_state()
    service = state["services"][0]
    service["country_shares"] = {
        "US": {"eu-west-1": 0.4375, "us-east-1": 0.5625},
        "CA": {"eu-west-1": 0.4375, "us-east-1": 0.5625},
    }
    standin.set_state(state)
    open_dashboard(page, standin)
    us = page.locator(f'{MAP_ID} path[data-country="US"]')
    wait_for(lambda: us.get_attribute("class") == "split", 10)
    assert us.get_attribute("data-route") == "us-east-1"  # the larger share
    assert us.get_attribute("data-shares") == "us-east-1 56% · eu-west-1 44%"
    fill = us.get_attribute("fill")
    assert fill.startswith("url(#split-")
    colours = page.locator(f"{MAP_ID} defs pattern#{fill[5:-1]} rect").evaluate_all(
        "rs => rs.map(r => r.getAttribute('fill'))"
    )
    assert colours == [COLORS["us-east-1"], COLORS["eu-west-1"]]

    us.dispatch_event("mousemove")  # its bounding box's centre is not on its shape
    tip = page.text_content("#tooltip")
    assert "us-east-1 56% · eu-west-1 44% of its client networks" in tip

    legend = page.text_content(f'[data-service="{SERVICE}"] [data-legend="us-east-1"]')
    whole = sum(
        1 for cc, r in demo_countries().items() if r == "us-east-1" and cc not in ("US", "CA")
    )
    assert legend == f"us-east-1{whole} countries, 2 in part"
    eu = page.text_content(f'[data-service="{SERVICE}"] [data-legend="eu-west-1"]')
    assert eu.endswith(", 2 in part")


def test_latency_measured_by_clients_is_shown_per_area_and_region(
    page: Any, standin: StandIn
) -> None:
    state = demo_state()
    state["measured"] = {
        "min_samples": 5,
        "max_age": 600.0,
        "stabilize_ms": 10.0,
        "stabilize_percent": 10.0,
        "networks": 1,
        "areas": [
            {
                "area": "US",
                "level": "country",
                "regions": {
                    "us-east-1": {
                        "ms": 251.2,
                        "samples": 32,
                        "failed": 0,
                        "age_s": 0.4,
                        "enough": True,
                    },
                    "eu-west-1": {
                        "ms": 1.3,
                        "samples": 3,
                        "failed": 0,
                        "age_s": 0.2,
                        "enough": False,
                    },
                },
            },
        ],
    }
    standin.set_state(state)
    open_dashboard(page, standin)
    page.wait_for_selector("#measured:not([hidden])")
    headers = page.locator("#measured-table thead th").all_text_contents()
    assert headers == ["client area", "eu-west-1", "us-east-1"]
    row = '#measured-table tr[data-area="US"]'
    assert page.text_content(f'{row} td[data-region="us-east-1"]') == "251.2 ms (32)"
    assert "muted" in page.get_attribute(f'{row} td[data-region="eu-west-1"]', "class")
    assert "United States" in page.text_content(f"{row} td.mono")
    assert "used from 5 samples" in page.text_content("#measured-meta")


def test_without_measurements_the_table_is_hidden(page: Any, standin: StandIn) -> None:
    open_dashboard(page, standin)
    assert page.is_hidden("#measured")
