"""The supervisor's reconnect policy on its own: delays for each way a call ends or fails to
start, with time given as numbers (no clock, no sleeps)."""

from __future__ import annotations

import random

import pytest

from rtedge.realtime.reconnect import ReconnectPolicy
from rtedge.settings import ReconnectSettings


def policy(**kw: float) -> ReconnectPolicy:
    settings = ReconnectSettings.model_validate(
        {"initial_s": 1, "max_s": 8, "multiplier": 2, "jitter": 0, **kw}
    )
    return ReconnectPolicy(settings)


def test_failures_back_off_exponentially_up_to_the_cap() -> None:
    p = policy()
    delays = [p.connect_failed() for _ in range(3)]
    delays += [p.call_ended("ice_failed", opened_at=100.0, now=101.0) for _ in range(3)]
    assert delays == [1, 2, 4, 8, 8, 8]


def test_a_call_healthy_for_healthy_after_s_resets_the_backoff() -> None:
    p = policy(healthy_after_s=30)
    for _ in range(4):
        p.connect_failed()
    assert p.call_ended("liveness", opened_at=100.0, now=129.9) == 8  # not quite healthy
    assert p.call_ended("liveness", opened_at=100.0, now=130.0) == 1  # healthy: from the start
    assert p.connect_failed() == 2


def test_rotation_and_session_expired_rebuild_at_once_and_reset() -> None:
    p = policy()
    p.connect_failed()
    p.connect_failed()
    assert p.call_ended("session_expired", opened_at=None, now=0.0) == 0.0
    assert p.connect_failed() == 1
    assert p.call_ended("rotation", opened_at=0.0, now=1.0) == 0.0
    assert p.rotated() == 0.0 and p.connect_failed() == 1


def test_a_refused_key_waits_auth_backoff_without_growing_the_backoff() -> None:
    p = policy(auth_backoff_s=300)
    assert [p.connect_failed("auth") for _ in range(3)] == [300, 300, 300]
    assert p.connect_failed("server") == 1


def test_a_429_waits_at_least_its_retry_after() -> None:
    p = policy()
    assert p.connect_failed("rate_limited", retry_after=20) == 20
    assert p.connect_failed("rate_limited", retry_after=None) == 2  # the backoff's second step
    assert p.connect_failed("rate_limited", retry_after=0.5) == 4  # the backoff is longer


def test_jitter_spreads_delays_within_its_band() -> None:
    settings = ReconnectSettings(initial_s=4, max_s=4, jitter=0.25)
    p = ReconnectPolicy(settings, rng=random.Random(3))
    delays = [p.connect_failed() for _ in range(100)]
    assert all(d == pytest.approx(4, abs=1.0) for d in delays)
    assert max(delays) - min(delays) > 1.0
