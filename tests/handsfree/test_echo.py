"""The echo reference ring, the capture/playback alignment, and AEC3's echo reduction on a
synthetic echo path (no device: the samples are handed over directly)."""

from __future__ import annotations

import numpy as np
import pytest

from rtedge.audio.echo import Aligner, EchoCanceller, ReferenceTap, estimate_delay_ms
from tests.handsfree.speech import NEGATIVE_SENTENCES, speech

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


class Card:
    """One crystal at 1000 frames/s: the playback thread writes 20 frames ahead of what plays,
    the capture period arrives when its last frame is taken; each side may run late, and
    xruns move one side's count against the other for good."""

    def __init__(self) -> None:
        self.t = 100.0
        self.lost = 0  # capture frames lost to overruns
        self.silence = 0  # frames the device played that were never written (underruns)

    def step(self, a: Aligner, *, play_late: float = 0, capture_late: float = 0) -> int:
        self.t += 0.02
        written_at = self.t - 0.01 + play_late  # the last write: due 10 ms ago
        written = round((written_at - play_late) * 1000) + 20 - self.silence
        captured = round(self.t * 1000) - self.lost
        return a.update(written, written_at, captured, self.t + capture_late)


def test_aligner_ignores_either_side_running_late() -> None:
    a = Aligner(rate=1000, window=4, tolerance=10)
    card = Card()
    first = card.step(a)
    offsets = [
        card.step(a, play_late=0.03 * (i % 2), capture_late=0.03 * (i % 3 == 0)) for i in range(40)
    ]
    assert set(offsets) == {first} and a.changes == 0
    # read as one figure (written minus captured), the late playback writes would have moved it


def test_aligner_follows_lost_capture_frames_and_underruns_past_its_slack() -> None:
    a = Aligner(rate=1000, window=4, tolerance=10, slack=100)
    card = Card()
    start = card.step(a)
    for _ in range(7):
        card.step(a)
    card.lost += 20  # an overrun: 20 frames never reached us; the echo nears its reference
    after = [card.step(a, play_late=0.02 * (i == 1)) for i in range(12)]
    assert after[-1] == start + 20 and a.changes == 1  # the same capture frame, 20 ms later
    assert len(set(after[8:])) == 1
    card.silence += 60  # an underrun: the echo comes 60 ms later; AEC3 follows that
    later = [card.step(a) for _ in range(12)]
    assert set(later) == {start + 20} and a.changes == 1
    card.silence += 60  # 120 in all: past the slack
    later = [card.step(a) for _ in range(12)]
    assert later[-1] == start + 20 - 120 and a.changes == 2


def test_aligner_stays_when_a_whole_window_runs_late() -> None:
    a = Aligner(rate=1000, window=4, tolerance=10, slack=100)
    card = Card()
    start = card.step(a)
    late = [card.step(a, capture_late=0.05 * (i < 4), play_late=0.04) for i in range(16)]
    assert set(late) == {start} and a.changes == 0


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


def test_the_delay_estimate_sees_an_echo_before_its_reference() -> None:
    far = speech(NEGATIVE_SENTENCES[0]).astype(np.float64)
    late_reference = np.concatenate([np.zeros(int(0.1 * 48000)), far])[: far.size]
    near = echo_path(far, 48000, 30, 0.5).astype(np.int16)
    assert estimate_delay_ms(near, late_reference.astype(np.int16), 48000) == pytest.approx(
        -70, abs=2
    )
