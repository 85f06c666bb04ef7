"""Service frames through the whole pipeline, in real time: rtAV-style JPEG deltas in, decoded,
scaled and written to a file framebuffer, shown on the audio playback clock. The clock runs on
time.monotonic() like the speaker's (optionally stepping once per 20 ms ALSA period)."""

from __future__ import annotations

import asyncio
import statistics
from pathlib import Path

import pytest

from rtedge.display.pipeline import DisplayPipeline, ShownFrame
from rtedge.state import State, Turn
from tests.display.helpers import AudioClock, at_clock, make_fb, numbered_jpeg
from tests.poll import until

FPS = 25
SKEW_AIM = 0.045  # ITU-R BT.1359: sound ahead of picture detectable beyond 45 ms

JPEGS = [numbered_jpeg(i) for i in range(60)]


def make(tmp_path: Path, ac: AudioClock, shown: list[ShownFrame], **kw: object) -> DisplayPipeline:
    fb = make_fb(tmp_path, 640, 360, 16)
    return DisplayPipeline(
        fb.settings(local_avatar=False),
        State(),
        clock=ac.clock,
        level=ac.level,
        onset=ac.onset,
        on_shown=shown.append,
        retry_initial_s=0.05,
        **kw,  # type: ignore[arg-type]
    )


async def started(p: DisplayPipeline) -> DisplayPipeline:
    await p.start()
    await until(lambda: "display" in p.state.devices and p.state.devices["display"].ok)
    return p


def skews(shown: list[ShownFrame]) -> list[float]:
    return [f.shown - f.due for f in shown if f.due is not None]


@pytest.mark.parametrize("step", [0.0, 0.02], ids=["smooth-clock", "20ms-period-clock"])
async def test_frames_follow_the_audio_clock(tmp_path: Path, step: float) -> None:
    ac = AudioClock(step)
    shown: list[ShownFrame] = []
    p = await started(make(tmp_path, ac, shown))
    send = lambda i: p.on_image_delta(JPEGS[i], "resp_1")  # noqa: E731

    for i in range(10):  # a burst before the audio starts: these wait for it
        send(i)
    await asyncio.sleep(0.3)
    assert not shown
    onset = ac.play()
    for k in range(8):  # bursts of 5, each ~0.2-0.4 s ahead of its audio
        for i in range(10 + 5 * k, 15 + 5 * k):
            send(i)
        await asyncio.sleep(0.2)
    p.on_image_done("resp_1", 52)  # the service made 52; two never arrived
    await at_clock(ac, onset + 2.05)
    ac.silence()
    p.on_response_done("resp_1")
    await until(lambda: p.stats.shown["service"] + sum(p.stats.dropped.values()) >= 52)
    await p.stop()

    assert [f.index for f in shown] == list(range(50))
    assert p.stats.dropped == {"service.lost": 2}
    assert p.state.frames_shown == 50 and p.state.frames_dropped == 2
    assert p.state.queue_drops["display"] == 2
    for f in shown:
        assert f.due == pytest.approx(onset + f.index / FPS)
    sk = skews(shown)
    label = f"{step * 1e3:.0f} ms period clock" if step else "smooth clock"
    print(
        f"\nA/V skew, {label}: max {max(sk) * 1e3:.1f} ms, mean {statistics.mean(sk) * 1e3:.1f} ms,"
        f" min {min(sk) * 1e3:.1f} ms over {len(sk)} frames"
    )
    assert all(-SKEW_AIM <= s <= SKEW_AIM for s in sk)


async def test_late_frames_are_dropped_and_counted(tmp_path: Path) -> None:
    # 10 fps: frame boundaries 100 ms apart leave a wide margin either side of "one period late".
    ac = AudioClock()
    shown: list[ShownFrame] = []
    p = await started(make(tmp_path, ac, shown, service_fps=10))
    for i in range(10):
        p.on_image_delta(JPEGS[i], "r")
    onset = ac.play()
    await at_clock(ac, onset + 1.55)  # the next ten arrive late: due at 1.0 .. 1.9
    for i in range(10, 20):
        p.on_image_delta(JPEGS[i], "r")
    await until(lambda: len(shown) + p.stats.dropped["service.late"] == 20)
    await p.stop()
    # 10-14 are more than a period behind; 15 (50 ms behind) is still shown; 16-19 wait.
    assert [f.index for f in shown] == list(range(10)) + list(range(15, 20))
    assert p.stats.dropped["service.late"] == 5
    assert p.state.frames_dropped == 5
    assert all(-0.1 <= s <= SKEW_AIM for s in skews(shown)[:10] + skews(shown)[11:])


async def test_a_pause_in_the_speech_keeps_frames_on_schedule(tmp_path: Path) -> None:
    # The playback path reports silence by level: a pause between words ends a run. The clock
    # counts the pause, so the frames after it stay where they were.
    ac = AudioClock()
    shown: list[ShownFrame] = []
    p = await started(make(tmp_path, ac, shown))
    for i in range(40):
        p.on_image_delta(JPEGS[i], "r")
    onset = ac.play()
    await at_clock(ac, onset + 0.98)
    ac.silence()
    await asyncio.sleep(0.3)
    ac.play()
    await until(lambda: len(shown) == 40)
    await p.stop()
    assert [f.index for f in shown] == list(range(40))
    for f in shown:
        assert abs(f.shown - (onset + f.index / FPS)) <= SKEW_AIM, f.index


async def test_barge_in_drops_pending_frames_counted(tmp_path: Path) -> None:
    ac = AudioClock()
    shown: list[ShownFrame] = []
    p = await started(make(tmp_path, ac, shown))
    for i in range(50):
        p.on_image_delta(JPEGS[i], "r1")
    onset = ac.play()
    await at_clock(ac, onset + 0.5)
    p.on_response_done("r1", cancelled=True)
    await until(lambda: p.stats.dropped["service.ended"] + len(shown) == 50, within=1.0)
    assert 10 <= len(shown) <= 14
    # Without the flag: once the playback path has been silent (its buffer flushed) for
    # end_silence_s (0.3 s) after response.done.
    for i in range(30):
        p.on_image_delta(JPEGS[i], "r2")
    ac.silence()
    onset2 = ac.play()
    await at_clock(ac, onset2 + 0.3)
    p.on_response_done("r2")
    ac.silence()
    await until(lambda: p.stats.dropped["service.ended"] + len(shown) == 80, within=1.0)
    await p.stop()
    r2 = [f for f in shown if f.response_id == "r2"]
    assert 14 <= len(r2) <= 17  # 0.3 s of audio + 0.3 s of silence at 25 fps
    assert r2[0].due == pytest.approx(onset2)


async def test_next_response_waits_for_its_own_audio(tmp_path: Path) -> None:
    ac = AudioClock()
    shown: list[ShownFrame] = []
    p = await started(make(tmp_path, ac, shown))
    for i in range(5):
        p.on_image_delta(JPEGS[i], "r1")
    ac.play()
    await until(lambda: len(shown) == 5)
    p.on_response_done("r1")
    for i in range(10):  # r2's frames come while r1's audio still plays: not their audio
        p.on_image_delta(JPEGS[i], "r2")
    await asyncio.sleep(0.3)
    assert len(shown) == 5
    ac.silence()
    await asyncio.sleep(0.1)
    onset = ac.play()
    await until(lambda: len(shown) == 15)
    await p.stop()
    assert shown[5].response_id == "r2" and shown[5].due == pytest.approx(onset)


async def test_frames_without_audio_are_shown_after_the_anchor_timeout(tmp_path: Path) -> None:
    ac = AudioClock()
    shown: list[ShownFrame] = []
    p = await started(make(tmp_path, ac, shown, anchor_timeout_s=0.3))
    t0 = ac.clock()
    for i in range(10):
        p.on_image_delta(JPEGS[i], None)  # no response id at all
    await until(lambda: len(shown) == 10)
    await p.stop()
    assert shown[0].shown - t0 == pytest.approx(0.3, abs=0.05)
    assert all(abs(s) <= SKEW_AIM for s in skews(shown))


async def test_queue_is_bounded_and_drops_oldest(tmp_path: Path) -> None:
    ac = AudioClock()
    shown: list[ShownFrame] = []
    p = await started(make(tmp_path, ac, shown, queue_frames=8))
    for i in range(20):  # all before the pacer runs: the oldest 12 make way
        p.on_image_delta(JPEGS[i], "r")
    assert p.stats.dropped["service.queue"] == 12
    ac.play()
    await until(lambda: len(shown) == 8)
    await p.stop()
    assert [f.index for f in shown] == list(range(12, 20))  # each still at its own time
    assert p.state.frames_dropped == 12


async def test_bad_frame_is_counted_not_fatal(tmp_path: Path) -> None:
    ac = AudioClock()
    shown: list[ShownFrame] = []
    p = await started(make(tmp_path, ac, shown))
    p.on_image_delta("not base64 jpeg!!", "r")
    p.on_image_delta("aGVsbG8=", "r")  # valid base64, not a JPEG
    p.on_image_delta(JPEGS[2], "r")
    ac.play()
    await until(lambda: len(shown) == 1)
    await p.stop()
    assert p.stats.dropped["service.bad_frame"] == 2


async def test_a_silent_lead_in_does_not_delay_the_frames(tmp_path: Path) -> None:
    # The response opens with 0.5 s of silence: its frames start with it, so they are anchored
    # where its audio started arriving (the turn turning SPEAKING) plus the audio path's delay.
    ac = AudioClock()
    shown: list[ShownFrame] = []
    p = await started(make(tmp_path, ac, shown, audio_delay_s=0.08))
    p.state.update(turn=Turn.SPEAKING)
    start = ac.clock()
    for i in range(30):
        p.on_image_delta(JPEGS[i], "r")
    await asyncio.sleep(0.58)
    ac.play()  # the first audible sound, 0.5 s into the answer
    await until(lambda: len(shown) == 30)
    await p.stop()
    assert shown[0].due == pytest.approx(start + 0.08, abs=0.01)
    assert all(abs(f.shown - f.due) <= SKEW_AIM for f in shown)


async def test_pressing_to_talk_ends_pending_frames(tmp_path: Path) -> None:
    ac = AudioClock()
    shown: list[ShownFrame] = []
    p = await started(make(tmp_path, ac, shown))
    for i in range(40):
        p.on_image_delta(JPEGS[i], "r")
    onset = ac.play()
    await at_clock(ac, onset + 0.3)
    p.state.update(turn=Turn.LISTENING)  # barge-in: the playback was flushed
    await until(lambda: len(shown) + p.stats.dropped["service.ended"] == 40, within=1.0)
    await p.stop()
    assert 7 <= len(shown) <= 10
