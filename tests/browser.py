"""Headless Chromium for front-end tests: Debian's `chromium` driven by Playwright.

A test module uses the fixtures with

    pytest_plugins = ["tests.browser"]

and then asks for `browser_page` (a fresh page, 1400x900, in a fresh context) or `browser`.

Playwright's own browser download (`playwright install`) needs the internet, so this drives the
system Chromium (`apt-get install chromium`, /usr/bin/chromium) instead. Both fixtures skip when
Chromium or the `playwright` package is missing, and fail instead when GEODNS_REQUIRE_TOOLS=1
(as CI sets it), like `require_tool` in tests/conftest.py.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

REQUIRE_TOOLS = os.environ.get("GEODNS_REQUIRE_TOOLS") == "1"
VIEWPORT = {"width": 1400, "height": 900}
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str:
    """The system Chromium; skipped (or failed under GEODNS_REQUIRE_TOOLS=1) when missing."""
    path = os.environ.get("GEODNS_CHROMIUM") or shutil.which("chromium") or None
    if path is None and os.path.exists("/usr/bin/chromium"):
        path = "/usr/bin/chromium"
    if path is None:
        missing("chromium is not installed (apt-get install chromium)")
    return path


def missing(why: str) -> None:
    if REQUIRE_TOOLS:
        pytest.fail(f"{why}, and GEODNS_REQUIRE_TOOLS=1 requires it")
    pytest.skip(why)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """A headless Chromium, one per test module."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("the playwright package is not installed (pip install -e '.[test]')")
    executable = chromium_path()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def browser_page(browser: Any) -> Iterator[Any]:
    """A new page in its own context (no shared storage), 1400x900, closed after the test."""
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.set_default_timeout(10_000)
    try:
        yield page
    finally:
        context.close()
