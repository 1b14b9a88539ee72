"""A simulated region's `latency` (the demo's "+80 ms" buttons): its API answers that much
later, its health checks do not, and a bad value is refused with a message."""

from __future__ import annotations

import time
import urllib.request

import pytest

from tests.regions import regions_in_thread


def _timed(url: str) -> float:
    started = time.monotonic()
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.status == 200
    return time.monotonic() - started


def test_latency_delays_the_api_and_not_the_health_checks() -> None:
    with regions_in_thread("us-east-1") as regions:
        region = regions["us-east-1"]
        assert region.configure(latency=0.3) is None
        assert _timed(region.url + "/") >= 0.3
        assert _timed(region.health_url) < 0.25
        assert region.settings()["latency"] == 0.3
        assert region.configure(latency=0) is None
        assert _timed(region.url + "/") < 0.25


@pytest.mark.parametrize("bad", [-1, "fast", True, None])
def test_a_bad_latency_is_refused(bad: object) -> None:
    with regions_in_thread("us-east-1") as regions:
        problem = regions["us-east-1"].configure(latency=bad)
    assert problem is not None and problem.startswith("latency ")
