"""A token bucket: at most `rate` events a second on average, in bursts of `burst`."""

from __future__ import annotations


class TokenBucket:
    """Refilled at `rate` tokens a second up to `burst`; `take` spends one if there is one.

    The caller passes the time (any monotonic seconds), so that the bucket does no IO and
    tests need no clock.
    """

    __slots__ = ("at", "burst", "rate", "tokens")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst  # full: the first burst goes through
        self.at = now

    def take(self, now: float) -> bool:
        tokens = self.tokens + (now - self.at) * self.rate
        self.tokens = tokens if tokens < self.burst else self.burst
        self.at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True
