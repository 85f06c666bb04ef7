"""The speaking detector on a fake clock: onset, the pauses inside a reply, the end, a flush."""

from __future__ import annotations

from rtedge.audio.speaking import SpeakingDetector, VoiceWatch
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


class Speaker:
    """What the watch reads: the level at the playback position and the frames still to play."""

    def __init__(self) -> None:
        self.level = 0.0
        self.pending = 0
        self.reads = 0

    def read(self) -> float:
        self.reads += 1
        return self.level


def watched(clock: ManualTimers) -> tuple[VoiceWatch, Speaker, list[tuple[float, bool]]]:
    spk = Speaker()
    changes: list[tuple[float, bool]] = []
    watch = VoiceWatch(SpeakingDetector(clock=clock), spk.read, lambda: spk.pending, timers=clock)
    watch.start(lambda on: changes.append((round(clock.now, 3), on)))
    return watch, spk, changes


def frames(watch: VoiceWatch, clock: ManualTimers, seconds: float, step: float = 0.02) -> None:
    end = clock.now + seconds
    while clock.now < end - 1e-9:
        clock.advance(step)
        watch.frame()
    clock.advance(0)  # the change is reported on the loop's next turn


def test_watch_judges_on_each_frame_and_sets_no_timer_of_its_own_meanwhile() -> None:
    clock = ManualTimers(100.0)
    watch, spk, changes = watched(clock)
    spk.level = 0.2
    frames(watch, clock, 1.0)
    assert changes == [(100.06, True)]  # the third frame with sound: 40 ms of it
    assert spk.reads == 50  # one read per frame, no poll beside them
    assert clock.pending == 1  # the fallback, pushed back by every frame


def test_watch_polls_after_the_frames_stop_until_the_speaker_is_quiet_then_sleeps() -> None:
    clock = ManualTimers(100.0)
    watch, spk, changes = watched(clock)
    spk.level = 0.2
    frames(watch, clock, 0.5)
    spk.pending = 4800  # the frames stop; what was handed over still plays for 0.1 s
    clock.advance(0.1)
    spk.level, spk.pending = 0.0, 0
    clock.advance(2.0)
    assert [c for _, c in changes] == [True, False]
    # the end is heard 0.8 s (hangover) after the last sound, within one poll
    assert 100.6 + 0.8 <= changes[-1][0] <= 100.6 + 0.8 + 0.021, changes
    assert clock.pending == 0  # quiet, nothing to play: no timer, no wakeups
    reads = spk.reads
    clock.advance(60.0)
    assert spk.reads == reads


def test_watch_hears_buffered_audio_that_starts_after_the_frames_stopped() -> None:
    clock = ManualTimers(100.0)
    watch, spk, changes = watched(clock)
    frames(watch, clock, 0.2)  # silence handed over, then nothing more arrives
    spk.pending = 48000
    clock.advance(1.0)  # the buffered reply reaches the playback position only now
    spk.level = 0.2
    clock.advance(0.1)
    assert changes and changes[0][1] is True, changes


def test_stopped_watch_reports_nothing() -> None:
    clock = ManualTimers(100.0)
    watch, spk, changes = watched(clock)
    watch.stop()
    spk.level = 0.2
    frames(watch, clock, 0.5)
    clock.advance(1.0)
    assert changes == [] and clock.pending == 0
