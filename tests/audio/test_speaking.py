"""The speaking detector on a fake clock: onset, the pauses inside a reply, the end, a flush."""

from __future__ import annotations

from rtedge.audio.speaking import SpeakingDetector
from rtedge.timers import ManualTimers


def run(
    det: SpeakingDetector, clock: ManualTimers, level: float, seconds: float, step: float = 0.02
):
    changes: list[tuple[float, bool]] = []
    end = clock.now + seconds
    while clock.now < end - 1e-9:
        clock.now += step
        changed = det.update(level)
        if changed is not None:
            changes.append((round(clock.now, 3), changed))
    return changes


def test_voice_starts_after_onset_and_ends_after_hangover() -> None:
    clock = ManualTimers(100.0)
    det = SpeakingDetector(clock=clock, onset_s=0.04, hangover_s=0.8)
    assert run(det, clock, 0.0, 1.0) == []
    changes = run(det, clock, 0.2, 2.0)
    assert changes == [(101.06, True)]  # third sounding poll: 40 ms of sound
    assert det.speaking
    changes = run(det, clock, 0.0, 2.0)
    assert changes == [(103.8, False)]  # 0.8 s after the last sound
    assert round(det.since, 3) == 103.8


def test_pauses_inside_a_reply_do_not_end_it() -> None:
    clock = ManualTimers(100.0)
    det = SpeakingDetector(clock=clock)
    changes = []
    for _ in range(5):  # words of 0.6 s with 0.5 s pauses
        changes += run(det, clock, 0.1, 0.6)
        changes += run(det, clock, 0.0, 0.5)
    assert [c for _, c in changes] == [True]
    assert run(det, clock, 0.0, 1.0)[-1][1] is False


def test_clicks_and_comfort_noise_are_not_voice() -> None:
    clock = ManualTimers(100.0)
    det = SpeakingDetector(clock=clock)
    for _ in range(20):
        assert run(det, clock, 0.3, 0.02) == []  # one period of sound, then silence
        assert run(det, clock, 0.0, 0.2) == []
    assert run(det, clock, 0.001, 3.0) == []  # about -60 dBFS: noise, not voice


def test_reset_ends_voice_at_once() -> None:
    clock = ManualTimers(100.0)
    det = SpeakingDetector(clock=clock)
    run(det, clock, 0.2, 0.5)
    assert det.speaking
    assert det.reset() is False
    assert not det.speaking
    assert det.reset() is None
    # sound resumes only after a fresh onset
    assert run(det, clock, 0.2, 0.02) == []
    assert run(det, clock, 0.2, 0.1)[0][1] is True
