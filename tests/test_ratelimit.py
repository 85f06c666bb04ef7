"""Token-bucket arithmetic on an injected clock (no sleeps)."""

from __future__ import annotations

from rtedge.ratelimit import TokenBucket
from rtedge.timers import ManualTimers


def test_burst_then_rate() -> None:
    clock = ManualTimers(100.0)
    bucket = TokenBucket(rate=10, burst=5, clock=clock)
    assert [bucket.allow() for _ in range(7)] == [True] * 5 + [False] * 2
    assert bucket.take_refused() == 2 and bucket.take_refused() == 0
    clock.now += 0.1  # one token back
    assert bucket.allow() and not bucket.allow()
    clock.now += 60  # refills to the burst, not beyond
    assert sum(bucket.allow() for _ in range(20)) == 5


def test_sustained_rate_is_the_rate() -> None:
    clock = ManualTimers(100.0)
    bucket = TokenBucket(rate=2000, burst=2000, clock=clock)
    allowed = 0
    for _ in range(10_000):  # 10 s of 1000 events/s: all pass
        clock.now += 0.001
        allowed += bucket.allow()
    assert allowed == 10_000
    allowed = 0
    for _ in range(50_000):  # 5 s of 10000 events/s: the burst plus 2000/s
        clock.now += 0.0001
        allowed += bucket.allow()
    assert 2000 * 5 <= allowed <= 2000 * 5 + 2000 + 1
