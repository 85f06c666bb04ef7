"""The echo reference ring, the capture/playback alignment, and AEC3's echo reduction on a
synthetic echo path (no device: the samples are handed over directly)."""

from __future__ import annotations

import numpy as np
import pytest

from rtedge.audio.echo import Aligner, EchoCanceller, ReferenceTap, estimate_delay_ms
from tests.handsfree.speech import speech

pytest.importorskip("pywebrtc_audio")


def test_tap_reads_by_position_mono_left_channel() -> None:
    tap = ReferenceTap(rate=100, channels=2, seconds=1.0)
    stereo = np.repeat(np.arange(1, 51, dtype=np.int16), 2)
    tap.write(0, stereo, queued=10)
    assert list(tap.read(50, 5)) == [46, 47, 48, 49, 50]
    assert list(tap.read(55, 10)) == [46, 47, 48, 49, 50, 0, 0, 0, 0, 0]  # not written yet
    assert tap.queued == 10


def test_tap_wraps_and_forgets_what_is_too_old() -> None:
    tap = ReferenceTap(rate=100, channels=1, seconds=1.0)  # 100 frames
    for start in range(0, 250, 50):
        tap.write(start, np.arange(start, start + 50, dtype=np.int16), queued=0)
    assert list(tap.read(250, 3)) == [247, 248, 249]
    assert list(tap.read(152, 4)) == [0, 0, 150, 151]  # 148, 149: overwritten
    assert list(tap.read(140, 4)) == [0, 0, 0, 0]  # overwritten long ago


def test_tap_rewind_after_flush_and_gap_is_silence() -> None:
    tap = ReferenceTap(rate=100, channels=1, seconds=1.0)
    tap.write(0, np.full(40, 7, dtype=np.int16), queued=0)
    tap.write(30, np.full(10, 9, dtype=np.int16), queued=0)  # flush rewound the clock to 30
    assert list(tap.read(40, 12)) == [7, 7] + [9] * 10
    tap.write(60, np.full(10, 5, dtype=np.int16), queued=0)  # 40..60 never played
    assert list(tap.read(62, 4)) == [0, 0, 5, 5]


def test_aligner_takes_the_earliest_arrival_and_ignores_jitter() -> None:
    a = Aligner(window=4, tolerance=10)
    assert [a.update(x) for x in (100, 130, 90, 95)] == [100, 100, 100, 100]  # 90: in tolerance
    assert [a.update(x) for x in (140, 91, 120, 99)] == [100] * 4  # jitter above it: ignored
    assert [a.update(x) for x in (150, 150, 150, 150)] == [100, 100, 100, 150]  # moved for good
    assert [a.update(x) for x in (-50, 150, 150, 150)] == [150, 150, 150, -50]  # a stall
    assert a.changes == 2


def echo_path(far: np.ndarray, rate: int, delay_ms: float, gain: float) -> np.ndarray:
    d = int(rate * delay_ms / 1000)
    out = np.zeros(far.size, dtype=np.float64)
    for extra_ms, g in ((0, gain), (7, gain * 0.35), (19, gain * 0.15)):
        k = d + int(rate * extra_ms / 1000)
        out[k:] += far[: far.size - k] * g
    return out


def test_aec3_removes_30_db_and_finds_the_delay() -> None:
    rate = 48000
    far = np.concatenate([speech(t) for t in ("The weather today is mild.", "It may rain later.")])
    far = np.tile(far, 3)
    near = echo_path(far.astype(np.float64), rate, 60, 0.5)
    near += np.random.default_rng(1).normal(0, 20, near.size)
    near16 = np.clip(near, -32768, 32767).astype(np.int16)
    aec = EchoCanceller(rate, echo_cancel=True, noise_suppression=False, auto_gain=False)
    period = 960
    out = np.concatenate(
        [
            aec.process(near16[i : i + period], far[i : i + period])
            for i in range(0, far.size - period + 1, period)
        ]
    )
    half = out.size // 2
    erle = 10 * np.log10(
        np.mean(near16[half : out.size].astype(float) ** 2) / np.mean(out[half:].astype(float) ** 2)
    )
    assert erle >= 30, erle
    assert aec.erle_db is not None and aec.erle_db >= 25
    assert aec.delay_ms is not None and abs(aec.delay_ms - 60) <= 2


def test_delay_estimate_none_without_correlation() -> None:
    rng = np.random.default_rng(2)
    a = rng.normal(0, 3000, 16000).astype(np.int16)
    b = rng.normal(0, 3000, 16000).astype(np.int16)
    assert estimate_delay_ms(a, b, 16000) is None
