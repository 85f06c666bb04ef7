from __future__ import annotations

import random

from rtedge.realtime.supervisor import Backoff
from rtedge.settings import ReconnectSettings


def test_backoff_grows_caps_and_resets() -> None:
    s = ReconnectSettings(initial_s=1, max_s=10, multiplier=2, jitter=0)
    b = Backoff(s)
    assert [b.next_delay() for _ in range(6)] == [1, 2, 4, 8, 10, 10]
    b.reset()
    assert b.next_delay() == 1


def test_backoff_jitter_stays_in_band_and_spreads() -> None:
    s = ReconnectSettings(initial_s=4, max_s=4, multiplier=2, jitter=0.25)
    b = Backoff(s, random.Random(7))
    delays = [b.next_delay() for _ in range(200)]
    assert all(3.0 <= d <= 5.0 for d in delays)
    assert max(delays) - min(delays) > 1.0  # a fleet does not reconnect in step
