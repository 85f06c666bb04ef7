"""The local avatar: the mouth opening, measured from the framebuffer's pixels, rises and falls
with the level of the audio being played; idle / listening / thinking look different; sprites
from a directory; it yields to the service's frames."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from rtedge.display.avatar import MouthFollower, look_for
from rtedge.display.pipeline import DisplayPipeline, ShownFrame
from rtedge.display.sprites import SpriteSet, load_art
from rtedge.media.face import MOUTH, RING, BuiltinFace
from rtedge.state import State, Turn
from tests.display.helpers import AudioClock, FakeFb, encode_png, make_fb, numbered_jpeg
from tests.poll import until

RATE = 48000


def speech_like(seconds: float, syllable_hz: float = 1.25) -> np.ndarray:
    """A tone whose loudness swells and fades like syllables: -37 dBFS to -9 dBFS RMS."""
    t = np.arange(int(seconds * RATE)) / RATE
    envelope = 0.02 + 0.5 * (0.5 - 0.5 * np.cos(2 * np.pi * syllable_hz * t))
    return (envelope * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


def level_of(samples: np.ndarray, onset: float):  # type: ignore[no-untyped-def]
    """RMS of the 20 ms the speaker is playing at clock t (what the audio path reports)."""

    def level(t: float) -> float:
        i = int((t - onset) * RATE)
        window = samples[max(0, i - 960) : max(0, i)]
        return float(np.sqrt(np.mean(window**2))) if window.size else 0.0

    return level


def mouth_height(rgb: np.ndarray, x: int) -> int:
    """Rows of mouth colour in column x (the avatar is centred, so x is the mouth's middle)."""
    column = rgb[:, x]
    return int((np.abs(column - np.array(MOUTH)).max(axis=1) <= 40).sum())


def pipeline(fb: FakeFb, ac: AudioClock, shown: list[ShownFrame], **kw: object) -> DisplayPipeline:
    return DisplayPipeline(
        fb.settings(**kw),
        State(),
        clock=ac.clock,
        level=ac.level,
        onset=ac.onset,
        on_shown=shown.append,
        retry_initial_s=0.05,
    )


async def test_mouth_follows_the_played_level(tmp_path: Path) -> None:
    fb = make_fb(tmp_path, 640, 480, 32)  # the 360 px avatar is scaled up to 480 px
    ac = AudioClock()
    samples: list[tuple[float, int, float]] = []  # (clock, mouth px, level)
    fbmap = np.memmap(fb.device, dtype=np.uint8, mode="r")

    def on_shown(f: ShownFrame) -> None:
        if f.source == "avatar" and ac.onset() is not None:
            # Only the mouth's column, on the pipeline's loop: converting the whole frame here
            # took ~5 ms a frame from the very loop whose frame rate is measured below.
            column = fbmap.reshape(480, 640, 4)[:, 320:321, [2, 1, 0]].astype(np.int32)
            samples.append((f.shown, mouth_height(column, 0), ac.level()))

    shown: list[ShownFrame] = []
    p = pipeline(fb, ac, shown)
    p.on_shown = on_shown
    await p.start()
    await asyncio.sleep(0.2)
    sound = speech_like(2.6)
    onset = ac.play()
    ac.level_fn = level_of(sound, onset)
    p.state.update(turn=Turn.SPEAKING)
    await asyncio.sleep(2.4)
    ac.silence()
    p.state.update(turn=Turn.IDLE)
    await asyncio.sleep(0.4)
    await p.stop()

    # 25 frames a second while speaking, whenever the pipeline gets to run: the typical gap
    # between frames is the period. How many frames the 2 s hold also depends on the machine:
    # with two busy loops beside the suite this process stalled for up to 0.36 s, and the
    # pipeline then restarts its schedule rather than burst (seen: 40 and 42 of 50). So a
    # count floor at half the rate, and the rate judged from the gaps.
    window = [s for s in samples if onset + 0.2 <= s[0] < onset + 2.2]
    gaps = np.diff([s[0] for s in window])
    assert len(window) >= 25, len(window)
    assert float(np.median(gaps)) == pytest.approx(1 / 25, rel=0.1), np.round(gaps, 3)
    heights = np.array([s[1] for s in samples], float)
    levels_db = np.array([20 * np.log10(max(s[2], 1e-6)) for s in samples])
    corr = float(np.corrcoef(heights, levels_db)[0, 1])
    print(
        f"\nmouth height vs played level (dB): r = {corr:.3f}; height {heights.min():.0f}"
        f"..{heights.max():.0f} px over {len(samples)} frames"
    )
    assert corr > 0.9

    # Rises and falls with each swell: loud at 0.4, 1.2, 2.0 s; quiet at 0.8, 1.6 s.
    def h_at(t: float) -> float:
        return float(np.mean([s[1] for s in samples if abs(s[0] - onset - t) <= 0.03]))

    peaks, troughs = [h_at(t) for t in (0.4, 1.2, 2.0)], [h_at(t) for t in (0.8, 1.6)]
    print(f"mouth px at swells {peaks}, at lulls {troughs}")
    assert min(peaks) > 1.6 * max(troughs)
    # Silent and idle again: mouth back to a line, idle ring colour.
    rgb = fbmap.reshape(480, 640, 4)[..., [2, 1, 0]].astype(np.int32)
    assert mouth_height(rgb, 320) <= 14  # the closed line is ~11 px at this scale
    ring_px = rgb[240, 320 + int(0.46 * 480)]  # avatar centred at x=320, scaled to 480 px
    assert np.abs(ring_px - np.array(RING[Turn.IDLE])).max() <= 12


async def test_looks_are_distinct_on_the_display(tmp_path: Path) -> None:
    fb = make_fb(tmp_path, 360, 360, 32)  # same size as the avatar: exact colours
    ac = AudioClock()
    shown: list[ShownFrame] = []
    p = pipeline(fb, ac, shown)
    await p.start()
    pictures = {}
    for turn in (Turn.IDLE, Turn.LISTENING, Turn.THINKING):
        p.state.update(turn=turn)
        await asyncio.sleep(0.25)
        rgb = fb.rgb()
        ring = rgb[180, 180 + int(0.46 * 360)]
        assert tuple(ring) == RING[turn], turn
        pictures[turn] = rgb
    await p.stop()
    looks = list(pictures.values())
    for i in range(3):
        for j in range(i + 1, 3):
            assert (np.abs(looks[i] - looks[j]).max(axis=2) > 30).mean() > 0.05


async def test_only_changes_are_drawn_outside_speech(tmp_path: Path) -> None:
    fb = make_fb(tmp_path, 360, 360, 16)
    ac = AudioClock()
    shown: list[ShownFrame] = []
    p = pipeline(fb, ac, shown)
    await p.start()
    p.state.update(turn=Turn.LISTENING)
    await asyncio.sleep(0.3)
    n = len(shown)
    await asyncio.sleep(1.0)
    assert len(shown) - n <= 1  # static look: at most a blink
    p.state.update(turn=Turn.THINKING)
    n = len(shown)
    await asyncio.sleep(1.0)
    assert 2 <= len(shown) - n <= 5  # the thinking dots step about 3x a second
    await p.stop()


async def test_avatar_yields_to_service_frames(tmp_path: Path) -> None:
    fb = make_fb(tmp_path, 160, 120, 16)
    ac = AudioClock()
    shown: list[ShownFrame] = []
    p = pipeline(fb, ac, shown)
    await p.start()
    p.state.update(turn=Turn.SPEAKING)
    ac.play()
    ac.level_fn = lambda t: 0.2
    await until(lambda: len(shown) >= 5)
    ac.silence()
    p.state.update(turn=Turn.IDLE)
    p.state.update(turn=Turn.SPEAKING)  # the next answer, with frames
    for i in range(10):
        p.on_image_delta(numbered_jpeg(i), "r")
    cut = len(shown)
    ac.play()

    def dropped() -> dict[str, int]:
        return {k: n for k, n in p.stats.dropped.items() if k.startswith("service.")}

    # Every frame shown, or dropped for being more than a period behind the audio: a frame the
    # pipeline gets to late is dropped to keep lip sync (by design; with two busy loops beside
    # the suite the test process stalls for a few periods now and then, and 10 of 10 shown
    # were not reached within 5 s).
    await until(lambda: p.stats.shown["service"] + sum(dropped().values()) == 10)
    await asyncio.sleep(0.3)
    await p.stop()
    assert p.stats.shown["service"] >= 1
    assert set(dropped()) <= {"service.late"}, dropped()
    assert all(f.source == "service" for f in shown[cut + 1 :])


def test_mouth_follower() -> None:
    m = MouthFollower()
    assert m.target(0.0) == 0.0
    assert m.target(10 ** (-45 / 20)) == pytest.approx(0.0, abs=1e-9)
    assert m.target(10 ** (-12 / 20)) == pytest.approx(1.0)
    assert m.target(1.0) == 1.0
    up = [m.update(0.25) for _ in range(4)]
    assert up[0] > 0.6 and up == sorted(up)  # fast attack
    down = [m.update(0.0) for _ in range(4)]
    assert down == sorted(down, reverse=True) and down[0] > 0.4  # slower release: half per tick


def test_look_for() -> None:
    assert look_for(Turn.SPEAKING, False) is Turn.SPEAKING
    assert look_for(Turn.IDLE, True) is Turn.SPEAKING  # the tail of an answer still plays
    assert look_for(Turn.THINKING, True) is Turn.THINKING  # an earcon is not speech
    assert look_for(Turn.LISTENING, False) is Turn.LISTENING


def test_sprite_set_from_directory(tmp_path: Path) -> None:
    def solid(colour: tuple[int, int, int], size: int = 48) -> np.ndarray:
        return np.full((size, size, 3), colour, np.uint8)

    encode_png(solid((100, 100, 100)), tmp_path / "idle.png")
    encode_png(solid((0, 200, 0), 96), tmp_path / "listening.png")  # another size: scaled
    for i in range(4):
        encode_png(solid((60 * i + 20, 0, 0)), tmp_path / f"speaking_{i}.png")
    art = load_art(tmp_path)
    assert isinstance(art, SpriteSet)
    assert art.render(Turn.LISTENING, 0, 0).shape == (48, 48, 3)
    assert tuple(art.render(Turn.LISTENING, 0, 0)[10, 10]) == (0, 200, 0)
    assert tuple(art.render(Turn.THINKING, 0, 0)[0, 0]) == (100, 100, 100)  # falls back to idle
    assert art.render(Turn.SPEAKING, 0.0, 0)[0, 0, 0] == 20
    assert art.render(Turn.SPEAKING, 0.5, 0)[0, 0, 0] == 140  # index round(1.5) = 2
    assert art.render(Turn.SPEAKING, 1.0, 0)[0, 0, 0] == 200
    assert art.key(Turn.IDLE, 0.3, 0) == art.key(Turn.IDLE, 0.9, 5)


def test_unusable_sprite_dir_falls_back_to_builtin(tmp_path: Path) -> None:
    assert isinstance(load_art(tmp_path), BuiltinFace)  # no idle image
    (tmp_path / "idle.png").write_bytes(b"not an image")
    assert isinstance(load_art(tmp_path), BuiltinFace)
    assert isinstance(load_art(None), BuiltinFace)
