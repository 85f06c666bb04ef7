"""The playout buffer on its own: explicit sample counts, no device, no thread, no sleep."""

from __future__ import annotations

import numpy as np

from rtedge.audio.playout import BURST_S, PlayoutBuffer

RATE = 48000
PERIOD = 480  # 10 ms


def buffer(latency_frames: int = 960, volume: float = 1.0) -> PlayoutBuffer:
    return PlayoutBuffer(
        rate=RATE, channels=2, period_frames=PERIOD, latency_frames=latency_frames, volume=volume
    )


def loud(frames: int, value: int = 8000) -> np.ndarray:
    return np.full(frames * 2, value, np.int16)


def quiet(frames: int) -> np.ndarray:
    return np.zeros(frames * 2, np.int16)


def test_capacity_is_target_plus_a_burst_plus_a_period() -> None:
    buf = buffer(latency_frames=960)
    assert buf.target_frames == 960
    assert buf.capacity_frames == 960 + int(BURST_S * RATE) + PERIOD
    assert buffer(latency_frames=10).target_frames == PERIOD  # never under one period


def test_over_capacity_the_oldest_sound_goes_and_is_counted() -> None:
    buf = buffer()
    cap = buf.capacity_frames
    buf.push(loud(cap, 1000))
    dropped = buf.push(loud(100, 2000))
    assert dropped == 100 and buf.frames_dropped == 100
    assert buf.buffered_frames() == cap
    speech, _ = buf.take(PERIOD)
    assert speech[0] == 1000  # what is left of the old audio plays first
    while buf.buffered_frames() > 100:
        speech, _ = buf.take(min(PERIOD, buf.buffered_frames() - 100))
    speech, _ = buf.take(100)
    assert (speech == 2000).all()  # the new audio was kept whole


def test_over_capacity_silence_is_shed_before_any_sound() -> None:
    buf = buffer()
    cap = buf.capacity_frames
    buf.push(quiet(200))  # a short pause: queued
    buf.push(loud(cap - 200))
    dropped = buf.push(loud(150))
    assert dropped == 0 and buf.frames_dropped == 0
    assert buf.frames_shed == 200
    assert buf.buffered_frames() == cap - 50


def test_volume_scales_the_samples_and_the_level() -> None:
    buf = buffer(latency_frames=PERIOD, volume=0.5)
    buf.push(loud(PERIOD, 10000))
    speech, level = buf.take(PERIOD)
    assert (speech == 5000).all()
    assert abs(level - 5000 / 32768) < 1e-3


def test_an_earcon_plays_over_silence_and_is_not_counted_as_speech() -> None:
    buf = buffer()
    buf.add_earcon(loud(PERIOD + 100, 3000))
    speech, level = buf.take(PERIOD)  # priming: no speech yet, the earcon still sounds
    assert (speech == 3000).all() and level == 0.0
    assert buf.silence_periods == 1
    speech, _ = buf.take(PERIOD)
    assert (speech[: 100 * 2] == 3000).all() and not speech[100 * 2 :].any()


def test_flush_empties_and_primes_again() -> None:
    buf = buffer(latency_frames=960)
    buf.push(loud(960))
    assert buf.take(PERIOD)[0].any()
    buf.flush()
    assert buf.buffered_frames() == 0
    buf.push(loud(PERIOD))
    assert not buf.take(PERIOD)[0].any()  # under the target again: waits
    buf.push(loud(PERIOD))
    assert buf.take(PERIOD)[0].any()
