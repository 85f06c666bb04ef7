from __future__ import annotations

import random

from rtedge.backoff import Backoff


def test_backoff_grows_caps_and_resets() -> None:
    b = Backoff(1, 10, multiplier=2)
    assert [b.next_delay() for _ in range(6)] == [1, 2, 4, 8, 10, 10]
    b.reset()
    assert b.next_delay() == 1


def test_backoff_jitter_stays_in_band_and_spreads() -> None:
    b = Backoff(4, 4, jitter=0.25, rng=random.Random(7))
    delays = [b.next_delay() for _ in range(200)]
    assert all(3.0 <= d <= 5.0 for d in delays)
    assert max(delays) - min(delays) > 1.0  # a fleet does not reconnect in step
