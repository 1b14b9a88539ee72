"""A circuit breaker per region: closed -> open -> half-open -> closed (or open again).

closed     requests flow; `failures` consecutive failures (or one timeout, if
           `open_on_timeout`) open it.
open       requests skip the region until `cooldown` seconds have passed since it opened.
half-open  the cool-down is over: the next request is a probe, the only one let through
           while it runs. Success closes the breaker; failure opens it for another cool-down.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half-open"


@dataclass(frozen=True)
class BreakerConfig:
    """When a region's breaker opens and when it is tried again."""

    failures: int = 2  # consecutive failures that open a closed breaker
    cooldown: float = 5.0  # seconds an open breaker waits before letting one probe through
    open_on_timeout: bool = True  # a request timeout opens the breaker at once

    def __post_init__(self) -> None:
        if self.failures < 1:
            raise ValueError(f"failures must be at least 1, not {self.failures}")
        if self.cooldown < 0:
            raise ValueError(f"cooldown must not be negative, not {self.cooldown}")


@dataclass(frozen=True)
class BreakerState:
    """A snapshot of one region's breaker, as `FailoverClient.breakers()` returns it."""

    region: str
    state: str  # "closed" | "open" | "half-open"
    failures: int  # consecutive failures so far (reset by a success)
    last_error: str | None  # the latest failure's description, None before any
    retry_in: float | None  # open: seconds until a probe is let through; else None
    probing: bool  # half-open: a probe request is running now

    def describe(self) -> str:
        """`circuit open (2 failures: connection refused)`, as reasons quote it."""
        if self.state == CLOSED:
            return "circuit closed"
        detail = f"{self.failures} failure{'s' if self.failures != 1 else ''}"
        if self.last_error:
            detail += f": {self.last_error}"
        if self.state == HALF_OPEN and self.probing:
            return f"circuit half-open, probe in flight ({detail})"
        return f"circuit {self.state} ({detail})"


class CircuitBreaker:
    """One region's breaker. Not thread-safe: use it from one event loop."""

    def __init__(
        self,
        region: str,
        config: BreakerConfig,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.region = region
        self.config = config
        self._clock = clock
        self._open = False
        self._opened_at = 0.0
        self._probing = False
        self.failures = 0
        self.last_error: str | None = None

    @property
    def state(self) -> str:
        if not self._open:
            return CLOSED
        if self._clock() - self._opened_at >= self.config.cooldown:
            return HALF_OPEN
        return OPEN

    def snapshot(self) -> BreakerState:
        state = self.state
        retry_in = None
        if state == OPEN:
            retry_in = max(0.0, self._opened_at + self.config.cooldown - self._clock())
        return BreakerState(
            self.region, state, self.failures, self.last_error, retry_in, self._probing
        )

    def acquire(self) -> str | None:
        """Ask to send a request: "closed" or "probe" when allowed, None when not.

        A "probe" must be followed by `success`, `failure` or `release`, exactly once.
        """
        state = self.state
        if state == CLOSED:
            return CLOSED
        if state == HALF_OPEN and not self._probing:
            self._probing = True
            return "probe"
        return None

    def force(self) -> str:
        """Send a request whatever the state (every region is open): counts like a probe."""
        if self._open and not self._probing:
            self._probing = True
            return "probe"
        return CLOSED if not self._open else "forced"

    def success(self, ticket: str) -> None:
        if ticket == "probe":
            self._probing = False
        self._open = False
        self.failures = 0

    def failure(self, error: str, timeout: bool = False, ticket: str = CLOSED) -> None:
        if ticket == "probe":
            self._probing = False
        self.failures += 1
        self.last_error = error
        opens = self.failures >= self.config.failures or (timeout and self.config.open_on_timeout)
        if self._open or opens:
            # A failed probe, or a failure while open, starts a new cool-down.
            self._open = True
            self._opened_at = self._clock()

    def release(self, ticket: str) -> None:
        """The request ended without a verdict (cancelled): let another probe through."""
        if ticket == "probe":
            self._probing = False
