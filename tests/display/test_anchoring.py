"""Where a response's frames sit on the audio clock (pure logic, no waiting)."""

from __future__ import annotations

from fractions import Fraction

import av
import pytest

from rtedge.display.pacing import ENDED, Anchoring, Timeline, VideoTimeline


def test_waits_for_audio_then_anchors_on_its_onset() -> None:
    a = Anchoring(25)
    tl = Timeline("r1", "r1", created=10.0)
    a.observe(tl, 10.1, None, 0)
    assert tl.anchor is None
    a.observe(tl, 10.3, 10.25, 0)
    assert tl.anchor == 10.25


def test_a_later_response_needs_a_later_run() -> None:
    a = Anchoring(25)
    r1 = Timeline("r1", "r1", 0.0)
    a.observe(r1, 1.0, 0.5, 0)
    r2 = Timeline("r2", "r2", 2.0)
    a.observe(r2, 2.1, 0.5, 0)  # r1's audio still playing: not r2's
    assert r2.anchor is None
    a.observe(r2, 3.0, 2.9, 0)
    assert r2.anchor == 2.9


def test_anchor_timeout_shows_frames_from_now() -> None:
    a = Anchoring(25, anchor_timeout_s=1.0)
    tl = Timeline("r", "r", 5.0)
    a.observe(tl, 6.0, None, 10)  # head is frame 10: it is due now
    assert tl.anchor == pytest.approx(6.0 - 10 / 25)


def test_pauses_do_not_move_frames() -> None:
    a = Anchoring(25)
    tl = Timeline("r", "r", 0.0)
    assert a.due(tl, 0.0, 0.0, 0) == 0.0
    assert a.due(tl, 1.0, None, 25) == pytest.approx(1.0)  # quiet between words: on schedule
    assert a.due(tl, 1.3, 1.25, 32) == pytest.approx(1.28)  # a new run: still the same anchor
    assert a.last_onset == 1.25


def test_done_response_ends_when_playback_has_been_silent() -> None:
    a = Anchoring(25, end_silence_s=0.3)
    tl = Timeline("r", "r", 0.0)
    a.observe(tl, 0.0, 0.0, 0)
    assert not a.ended(tl, 0.5, 0.0)
    assert a.due(tl, 0.9, None, 22) == pytest.approx(0.88)  # not done: a pause, keep going
    assert a.due(tl, 2.0, None, 50) == pytest.approx(2.0)
    a.observe(tl, 2.1, 0.0, 50)
    tl.done = True
    assert not a.ended(tl, 2.2, 0.0)  # audio still playing: frames still shown
    assert not a.ended(tl, 2.35, None)  # a short pause
    assert a.ended(tl, 2.45, None)  # finished (or flushed)
    assert a.due(tl, 2.45, None, 60) is ENDED
    cancelled = Timeline("s", "s", 3.0)
    a.observe(cancelled, 3.0, 3.0, 0)
    cancelled.cancelled = True
    assert a.ended(cancelled, 3.1, 3.0)
    silent = Timeline("t", "t", 5.0)  # anchored by the timeout: no audio to end with
    a.observe(silent, 7.5, None, 0)
    silent.done = True
    assert not a.ended(silent, 9.0, None)


def test_video_timeline_follows_pts_and_resyncs_after_a_jump() -> None:
    vt = VideoTimeline(0.05)
    frames = []
    for pts in (0, 3000, 6000, 9000 + 90000 * 5):
        f = av.VideoFrame(16, 16, "yuv420p")
        f.pts = pts
        f.time_base = Fraction(1, 90000)
        frames.append(f)
    assert vt.due(frames[0], 1.0) == pytest.approx(1.05)
    assert vt.due(frames[1], 1.01) == pytest.approx(1.05 + 1 / 30)  # arrival jitter ignored
    assert vt.due(frames[2], 1.2) == pytest.approx(1.05 + 2 / 30)  # late: stays on its slot
    assert vt.due(frames[3], 1.3) == pytest.approx(1.35)  # 5 s jump: start over


def test_speaking_start_anchors_through_a_silent_lead_in() -> None:
    a = Anchoring(25, audio_delay_s=0.1)
    tl = Timeline("r", "r", created=1.02)
    assert a.due(tl, 1.03, None, 0, speaking_since=1.0) is None  # audio still on its way
    assert a.due(tl, 1.1, None, 0, speaking_since=1.0) == pytest.approx(1.1)  # start + delay
    a.observe(tl, 1.8, 1.8, 17, speaking_since=1.0)  # the lead-in ends: no shift
    assert tl.anchor == pytest.approx(1.1)
    assert a.delay_s == pytest.approx(0.1)  # 0.8 s is a lead-in, not a delay: not learned


def test_an_onset_before_the_estimate_wins_and_teaches_the_delay() -> None:
    a = Anchoring(25, audio_delay_s=0.1)
    tl = Timeline("r", "r", created=1.0)
    assert a.due(tl, 1.07, 1.06, 0, speaking_since=1.0) == pytest.approx(1.06)
    assert a.delay_s == pytest.approx(0.06)
    nxt = Timeline("s", "s", created=5.0)
    assert a.due(nxt, 5.07, None, 0, speaking_since=5.0) == pytest.approx(5.06)  # learned
    # A sample later than the estimate (a short lead-in) never raises the estimate.
    a.observe(nxt, 5.2, 5.15, 3, speaking_since=5.0)
    assert a.delay_s == pytest.approx(0.06)


def test_a_short_lead_in_is_not_taken_for_the_delay() -> None:
    # An echoed answer opens with the mic-to-service latency as silence (~80 ms): its onset is
    # the delay plus that lead-in. Taken as the delay, every later response would be that late.
    a = Anchoring(25, audio_delay_s=0.1)
    tl = Timeline("r", "r", created=1.02)
    assert a.due(tl, 1.1, None, 0, speaking_since=1.0) == pytest.approx(1.1)
    a.observe(tl, 1.19, 1.18, 2, speaking_since=1.0)  # first sound 80 ms into the response
    assert tl.anchor == pytest.approx(1.1)
    assert a.delay_s == pytest.approx(0.1)
    nxt = Timeline("s", "s", created=5.02)
    assert a.due(nxt, 5.05, None, 0, speaking_since=5.0) is None
    assert a.due(nxt, 5.1, None, 0, speaking_since=5.0) == pytest.approx(5.1)


def test_a_low_sample_ages_out_of_the_estimate() -> None:
    a = Anchoring(25, audio_delay_s=0.1)
    t = 1.0
    tl = Timeline("r0", "r0", created=t)
    assert a.due(tl, t + 0.06, t + 0.05, 0, speaking_since=t) == pytest.approx(t + 0.05)
    assert a.delay_s == pytest.approx(0.05)
    for k in range(1, 9):  # later responses all sound 0.15 s after their start
        t = 10.0 * k
        tl = Timeline(f"r{k}", f"r{k}", created=t)
        a.observe(tl, t + 0.2, None, 0, speaking_since=t)
        a.observe(tl, t + 0.2, t + 0.15, 4, speaking_since=t)
    assert a.delay_s == pytest.approx(0.1)  # never above the configured delay


def test_a_stale_speaking_turn_is_not_a_start() -> None:
    a = Anchoring(25, audio_delay_s=0.1)
    tl = Timeline("r", "r", created=10.0)
    a.observe(tl, 10.0, None, 0, speaking_since=5.0)  # began long before these frames
    assert tl.start is None and tl.anchor is None
    a.observe(tl, 10.2, 10.15, 0, speaking_since=5.0)
    assert tl.anchor == pytest.approx(10.15)  # the onset, as without a start marker


def test_ending_waits_for_the_speaking_turn_to_end() -> None:
    a = Anchoring(25, end_silence_s=0.3)
    tl = Timeline("r", "r", 0.0)
    a.observe(tl, 0.0, 0.0, 0)
    tl.done = True  # response.done comes early over WebRTC: audio still streaming
    assert not a.ended(tl, 1.0, None, speaking=True)
    assert a.ended(tl, 1.0, None, speaking=False)
