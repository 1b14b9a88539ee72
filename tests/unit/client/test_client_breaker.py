"""The per-region circuit breaker, on a fake clock."""

from __future__ import annotations

import pytest

from geodns.client.breaker import BreakerConfig, CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def breaker(**config: object) -> tuple[CircuitBreaker, Clock]:
    clock = Clock()
    return CircuitBreaker("us-east-1", BreakerConfig(**config), clock), clock


def test_defaults() -> None:
    assert BreakerConfig() == BreakerConfig(failures=2, cooldown=5.0, open_on_timeout=True)


@pytest.mark.parametrize("bad", [{"failures": 0}, {"cooldown": -1.0}])
def test_bad_config_is_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        BreakerConfig(**bad)


def test_opens_after_consecutive_failures_only() -> None:
    b, _ = breaker(failures=2)
    assert b.acquire() == "closed"
    b.failure("connection refused")
    assert b.state == "closed"
    b.success("closed")  # a success in between resets the count
    assert b.failures == 0
    b.failure("connection refused")
    b.failure("HTTP 503")
    assert b.state == "open"
    assert b.acquire() is None
    snap = b.snapshot()
    assert (snap.state, snap.failures, snap.last_error, snap.retry_in) == (
        "open",
        2,
        "HTTP 503",
        5.0,
    )
    assert snap.describe() == "circuit open (2 failures: HTTP 503)"


def test_a_timeout_opens_at_once_unless_configured_not_to() -> None:
    b, _ = breaker(failures=3)
    b.failure("timed out after 2 s", timeout=True)
    assert b.state == "open"
    b, _ = breaker(failures=3, open_on_timeout=False)
    b.failure("timed out after 2 s", timeout=True)
    assert b.state == "closed"


def test_half_open_lets_one_probe_through_and_success_closes() -> None:
    b, clock = breaker(failures=1, cooldown=5.0)
    b.failure("connection refused")
    clock.now += 4.9
    assert b.state == "open"
    assert b.snapshot().retry_in == pytest.approx(0.1)
    clock.now += 0.1
    assert b.state == "half-open"
    assert b.acquire() == "probe"
    assert b.acquire() is None  # only one probe at a time
    assert (
        b.snapshot().describe()
        == "circuit half-open, probe in flight (1 failure: connection refused)"
    )
    b.success("probe")
    assert b.state == "closed"
    assert b.failures == 0
    assert b.acquire() == "closed"


def test_failed_probe_opens_for_another_cooldown() -> None:
    b, clock = breaker(failures=1, cooldown=5.0)
    b.failure("HTTP 500")
    clock.now += 5.0
    assert b.acquire() == "probe"
    clock.now += 1.0
    b.failure("HTTP 500", ticket="probe")
    assert b.state == "open"
    assert b.snapshot().retry_in == 5.0
    clock.now += 5.0
    assert b.acquire() == "probe"


def test_a_cancelled_probe_frees_the_slot() -> None:
    b, clock = breaker(failures=1, cooldown=1.0)
    b.failure("HTTP 500")
    clock.now += 1.0
    ticket = b.acquire()
    assert ticket == "probe"
    b.release(ticket)
    assert b.acquire() == "probe"


def test_force_sends_through_an_open_breaker() -> None:
    b, _ = breaker(failures=1, cooldown=60.0)
    b.failure("HTTP 500")
    ticket = b.force()
    assert ticket == "probe"
    assert b.force() == "forced"  # a probe is already running
    b.success(ticket)
    assert b.state == "closed"
