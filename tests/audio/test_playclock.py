"""The playback clock with an injected clock: what plays now, from what was written and when."""

from __future__ import annotations

from rtedge.audio.playclock import PlaybackClock
from rtedge.timers import ManualTimers

RATE = 48000
PERIOD = 960


def test_played_frames_follow_the_device_queue_and_the_time_since() -> None:
    now = ManualTimers(100.0)
    clock = PlaybackClock(RATE, PERIOD, now=now)
    clock.account(2 * PERIOD, 0.0, queued=2 * PERIOD)  # all still in the device
    assert clock.played_frames() == 0
    now.now += 0.01
    assert clock.played_frames() == 480
    now.now += 10
    assert clock.played_frames() == 2 * PERIOD  # never past what was written


def test_played_frames_never_go_back() -> None:
    now = ManualTimers(100.0)
    clock = PlaybackClock(RATE, PERIOD, now=now)
    clock.account(PERIOD, 0.0, queued=0)
    assert clock.played_frames() == PERIOD
    clock.account(PERIOD, 0.0, queued=2 * PERIOD)  # the device reports more queued than written
    assert clock.played_frames() == PERIOD


def test_spans_carry_the_level_and_where_the_speech_run_began() -> None:
    now = ManualTimers(100.0)
    clock = PlaybackClock(RATE, PERIOD, now=now)
    clock.account(PERIOD, 0.0, 0)
    clock.account(PERIOD, 0.3, 0)
    clock.account(PERIOD, 0.4, 0)
    span = clock.span_at(2 * PERIOD + 10)
    assert span is not None and span.level == 0.4 and span.run_start == PERIOD
    first = clock.span_at(5)
    assert first is not None and first.run_start is None
    assert clock.span_at(3 * PERIOD + 10) is span  # just past the end: the last period's
    assert clock.span_at(4 * PERIOD + 10) is None  # a period past it: nothing known


def test_dropping_the_device_queue_rewinds_to_what_played() -> None:
    now = ManualTimers(100.0)
    clock = PlaybackClock(RATE, PERIOD, now=now)
    clock.account(PERIOD, 0.3, 0)
    clock.account(2 * PERIOD, 0.3, queued=2 * PERIOD)
    now.now += 0.01  # 480 frames of the queue played
    assert clock.played_frames() == PERIOD + 480
    clock.drop_queued(2 * PERIOD - 480)
    assert clock.written == PERIOD + 480
    assert clock.span_at(PERIOD + 479) is not None
    clock.account(PERIOD, 0.3, 0)  # a new run starts after a flush
    span = clock.span_at(PERIOD + 500)
    assert span is not None and span.start == PERIOD + 480 and span.run_start == PERIOD + 480
