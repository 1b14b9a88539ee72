"""The token bucket that bounds the query log and RUM reports."""

from __future__ import annotations

from geodns.tokenbucket import TokenBucket


def test_a_burst_then_the_rate() -> None:
    bucket = TokenBucket(rate=2, burst=3, now=0.0)
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert not bucket.take(0.4)  # 0.8 of a token
    assert bucket.take(0.5)
    assert not bucket.take(0.5)
    # Idle time refills up to the burst, never beyond.
    assert sum(bucket.take(100.0) for _ in range(10)) == 3
