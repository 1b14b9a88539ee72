"""The dashboard of a real `geodns demo`, in headless Chromium: it shows the regions, and a
region failed from its own buttons moves both the page and the DNS answers."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, wait_for
from tests.e2e.test_demo import AP_NORTHEAST, DETECTION, EU_WEST, US, US_EAST, Demo, running_demo

pytest_plugins = ["tests.browser"]

SERVICE = "inference.example.com"
SCREENSHOT = ROOT / "docs" / "dashboard.png"


@pytest.fixture
def demo() -> Any:
    with running_demo() as d:
        yield d


def region_row(page: Any, region: str) -> Any:
    return page.locator(
        f'section.service[data-service="{SERVICE}"] tbody.region[data-region="{region}"]'
    )


def test_the_dashboard_shows_and_drives_a_real_server(demo: Demo, browser_page: Any) -> None:
    page = browser_page
    foreign: list[str] = []
    page.on(
        "request",
        lambda r: None if r.url.startswith(demo.admin_url) else foreign.append(r.url),
    )
    page.goto(f"{demo.admin_url}#token={demo.token}")
    for region in ("us-east-1", "eu-west-1", "ap-northeast-1"):
        badge = region_row(page, region).locator(".state .badge")
        badge.wait_for()
        wait_for(lambda b=badge: b.get_attribute("data-state") == "up", timeout=5)
    # The token left the address bar.
    assert "token" not in page.url
    gb = page.locator(f'svg.map[data-service="{SERVICE}"] path[data-country="GB"]')
    assert gb.get_attribute("data-route") == "eu-west-1"
    us = page.locator(f'svg.map[data-service="{SERVICE}"] path[data-country="US"]')
    assert us.get_attribute("data-route") == "us-east-1"
    assert "DB-IP" in page.locator("#geoip-attribution").inner_text()
    scopes = page.locator("#ecs-scopes")
    assert scopes.get_attribute("data-state") in ("building", "waiting", "merged")
    meta = page.locator(f'section.service[data-service="{SERVICE}"] h2 .meta')
    wait_for(lambda: "version 42" in meta.inner_text(), timeout=5)

    assert demo.ask(US) == US_EAST
    region_row(page, "us-east-1").locator('button[data-demo-mode="failing"]').click()
    badge = region_row(page, "us-east-1").locator(".state .badge")
    wait_for(lambda: badge.get_attribute("data-state") == "down", timeout=DETECTION + 2.5)
    assert (
        demo.ask(US) == AP_NORTHEAST
    )  # Seattle's next: the US row, corrected in-country, ranks Tokyo before Dublin
    wait_for(lambda: us.get_attribute("data-route") != "us-east-1", timeout=5)
    assert "HTTP 500" in region_row(page, "us-east-1").locator(".error").inner_text()
    assert page.locator("#changes tbody tr").count() >= 1
    if os.environ.get("GEODNS_SCREENSHOT"):
        # Refresh docs/dashboard.png: GEODNS_SCREENSHOT=1 pytest tests/e2e/test_dashboard.py
        page.wait_for_timeout(2500)
        page.screenshot(path=str(SCREENSHOT), full_page=True)

    # An operator's drain, from the table's buttons, shows as forced.
    region_row(page, "ap-northeast-1").locator('button[data-action="drain"]').click()
    drained = region_row(page, "ap-northeast-1").locator(".state .badge")
    wait_for(lambda: drained.get_attribute("data-state") == "drain", timeout=5)
    assert "forced" in region_row(page, "ap-northeast-1").locator(".state").inner_text()
    # The demo's first merge of ECS scopes over the embedded database: about 20 s.
    wait_for(lambda: scopes.get_attribute("data-state") == "merged", timeout=90)
    assert scopes.inner_text() == "merged"
    assert not foreign, f"the dashboard fetched from elsewhere: {foreign}"


def test_without_the_token_buttons_say_why(demo: Demo, browser_page: Any) -> None:
    page = browser_page
    page.goto(demo.admin_url)
    region_row(page, "eu-west-1").locator(".state .badge").wait_for()
    region_row(page, "eu-west-1").locator('button[data-action="drain"]').click()
    message = page.locator("#message-text")
    wait_for(lambda: message.is_visible() and message.inner_text() != "", timeout=5)
    assert "token" in message.inner_text().lower()
    assert demo.ask("81.2.69.0/24") == EU_WEST


def test_screenshot_is_committed() -> None:
    assert Path(SCREENSHOT).stat().st_size > 20_000


def no_horizontal_scroll(page: Any) -> bool:
    width = page.evaluate(
        "() => Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)"
    )
    return width <= page.viewport_size["width"]


@pytest.mark.parametrize("width", [360, 390, 800])
def test_a_phone_wide_page_scrolls_down_not_sideways(demo: Demo, browser: Any, width: int) -> None:
    context = browser.new_context(viewport={"width": width, "height": 844})
    try:
        page = context.new_page()
        page.set_default_timeout(10_000)
        page.goto(demo.admin_url)
        region_row(page, "eu-west-1").locator(".state .badge").wait_for()
        assert no_horizontal_scroll(page), page.evaluate("document.body.scrollWidth")
        section = page.locator(f'section.service[data-service="{SERVICE}"]')
        for part in (section.locator("svg.map"), section.locator("table.regions")):
            box = part.bounding_box()
            assert part.is_visible() and box is not None
            assert box["x"] >= 0 and box["width"] > width / 2
        # The table's wider columns scroll inside their own box, which fits the page.
        table = section.locator("table.regions")
        wrap = table.locator("xpath=..").bounding_box()
        assert wrap is not None and wrap["x"] + wrap["width"] <= width
        headers = table.locator("thead th").all_inner_texts()
        row = region_row(page, "eu-west-1")
        labels = [row.locator("td").nth(i).get_attribute("data-label") for i in range(8)]
        assert [label.lower() for label in labels] == [h.lower() for h in headers]
        if width <= 560:
            # A phone: each region a card, one cell a line under its column's name, and
            # nothing to scroll sideways even inside the table's box.
            assert not table.locator("thead").is_visible()
            assert table.evaluate("t => t.scrollWidth <= t.parentElement.clientWidth")
            check = row.locator("td.check").bounding_box()
            state = row.locator("td.state").bounding_box()
            assert check is not None and state is not None and check["y"] > state["y"]
        else:
            assert table.locator("thead").is_visible()
        drain = region_row(page, "eu-west-1").locator('button[data-action="drain"]')
        drain.scroll_into_view_if_needed()
        assert drain.is_visible()
    finally:
        context.close()


def test_a_drain_that_strands_a_jurisdiction_is_confirmed(demo: Demo, browser_page: Any) -> None:
    page = browser_page
    page.goto(f"{demo.admin_url}#token={demo.token}")
    eu = region_row(page, "eu-west-1").locator(".state .badge")
    eu.wait_for()
    wait_for(lambda: eu.get_attribute("data-state") == "up", timeout=5)
    asked: list[str] = []
    answer = {"accept": False}

    def on_dialog(dialog: Any) -> None:
        asked.append(dialog.message)
        if answer["accept"]:
            dialog.accept()
        else:
            dialog.dismiss()

    page.on("dialog", on_dialog)
    # eu-west-1 is the only region of the EU residency rule: the page asks, and "no" keeps it.
    region_row(page, "eu-west-1").locator('button[data-action="drain"]').click()
    wait_for(lambda: len(asked) == 1, timeout=5)
    assert asked[0] == (
        "Draining eu-west-1 leaves continent EU clients with no region: they will get the "
        "unavailable answer 192.0.2.29, 2001:db8:29::1. Drain anyway?"
    )
    wait_for(lambda: "cancelled" in page.locator("#message-text").inner_text(), timeout=5)
    assert eu.get_attribute("data-state") == "up"
    assert demo.ask("81.2.69.0/24") == EU_WEST
    # A drain that strands no one is not asked about.
    region_row(page, "ap-northeast-1").locator('button[data-action="drain"]').click()
    drained = region_row(page, "ap-northeast-1").locator(".state .badge")
    wait_for(lambda: drained.get_attribute("data-state") == "drain", timeout=5)
    assert len(asked) == 1
    # "Yes" drains it.
    answer["accept"] = True
    region_row(page, "eu-west-1").locator('button[data-action="drain"]').click()
    wait_for(lambda: eu.get_attribute("data-state") == "drain", timeout=5)
    assert len(asked) == 2
