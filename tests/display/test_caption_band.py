"""The caption band on a file framebuffer: drawn in the device's format over pictures, kept over
later pictures, removed without leaving a hole; the renderer's wrapping, line limit and right-to-
left alignment; the colours' WCAG contrast; and the display pipeline drawing the band from State
(on the display thread, only when it changes, again after the display is reopened)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from rtedge.caption_settings import DEJAVU_SANS
from rtedge.display import palette
from rtedge.display.caption_layer import DrawnCaption
from rtedge.display.caption_render import CaptionRenderer
from rtedge.display.captions import CaptionView, Indicator
from rtedge.display.fbdev import FramebufferSink
from rtedge.display.frames import RgbPicture
from rtedge.display.pipeline import DisplayPipeline
from rtedge.state import Connection, State, Turn
from tests.display.helpers import AudioClock, make_fb, write_geometry
from tests.poll import until

VIEW = CaptionView("what time is it", "It is ten past four.", Indicator("speaking"))


def renderer(width: int = 320, lines: int = 2, direction: str = "ltr") -> CaptionRenderer:
    return CaptionRenderer(
        width,
        font_path=DEJAVU_SANS,
        font_size=20,
        lines=lines,
        direction=direction,  # type: ignore[arg-type]
    )


def lit(rgb: np.ndarray) -> np.ndarray:
    """Text pixels: clearly brighter than the band's background."""
    return np.asarray(rgb.max(axis=-1) > 120)


def same(fb_rgb: np.ndarray, band: np.ndarray, bpp: int) -> bool:
    """The framebuffer holds ``band``: exactly at 32 bpp; at 16 bpp within RGB565's steps
    (swscale dithers, so edges of letters differ by a step or two)."""
    diff = np.abs(fb_rgb - band.astype(int))
    return bool(diff.max() == 0) if bpp == 32 else bool(diff.mean() < 3 and diff.max() < 64)


@pytest.mark.parametrize("bpp", [16, 32])
def test_band_drawn_over_pictures_and_removed_cleanly(tmp_path: Path, bpp: int) -> None:
    fb = make_fb(tmp_path, 320, 240, bpp)
    sink = FramebufferSink(fb.device, fb.sysfs)
    sink.open()
    grey = np.full((240, 320, 3), 90, np.uint8)
    sink.show(sink.prepare(RgbPicture(grey)))
    band = renderer().render(VIEW)
    h = band.shape[0]
    sink.set_band(band)
    rgb = fb.rgb()
    tol = 8 if bpp == 16 else 0
    assert same(rgb[240 - h :], band, bpp), "band not as rendered"
    assert (np.abs(rgb[: 240 - h] - 90) <= tol).all(), "picture above the band touched"
    # The next picture does not wipe the band.
    sink.show(sink.prepare(RgbPicture(np.full((240, 320, 3), 200, np.uint8))))
    rgb = fb.rgb()
    assert same(rgb[240 - h :], band, bpp)
    assert (np.abs(rgb[: 240 - h] - 200) <= tol).all()
    # A shorter band, then none: the picture comes back where the band was.
    sink.set_band(band[: h // 2])
    rgb = fb.rgb()
    assert (np.abs(rgb[: 240 - h // 2] - 200) <= tol).all()
    sink.set_band(None)
    assert (np.abs(fb.rgb() - 200) <= tol).all()
    sink.close()


def test_renderer_keeps_the_newest_lines_and_wraps_to_the_width() -> None:
    r = renderer(lines=2)
    long = "one two three four five six seven eight nine ten eleven twelve thirteen"
    rows = r.layout(CaptionView("", long, Indicator("speaking")))
    assert len(rows) == 2
    assert rows[-1][0].endswith("thirteen")
    assert all(r.font.getlength(text) <= r.width - 2 * r.pad for text, _ in rows)
    rows = r.layout(CaptionView("hi", "yo", Indicator("idle")))
    assert rows == [("hi", palette.USER_TEXT), ("yo", palette.ASSISTANT_TEXT)]


def test_right_to_left_text_is_aligned_right() -> None:
    view = CaptionView("", "שלום עולם", Indicator("idle"))
    ltr = lit(renderer(direction="ltr").render(view))
    rtl = lit(renderer(direction="rtl").render(view))
    cols_ltr, cols_rtl = np.nonzero(ltr.any(axis=0))[0], np.nonzero(rtl.any(axis=0))[0]
    assert cols_ltr.min() < 20 and cols_rtl.max() > 300
    assert cols_rtl.min() > cols_ltr.min() + 100


def test_caption_colours_pass_wcag_aa() -> None:
    for name, fg in [
        ("user", palette.USER_TEXT),
        ("assistant", palette.ASSISTANT_TEXT),
        ("muted", palette.MUTED_TEXT),
        *palette.INDICATOR.items(),
    ]:
        assert palette.contrast_ratio(fg, palette.BACKGROUND) >= 4.5, name
    for bg in (palette.BUTTON_BG, palette.BUTTON_ACTIVE_BG):
        assert palette.contrast_ratio(palette.BUTTON_TEXT, bg) >= 4.5
    # the formula itself: black on white is 21:1, a colour on itself 1:1
    assert palette.contrast_ratio("#000000", "#ffffff") == pytest.approx(21)
    assert palette.contrast_ratio("#777777", "#777777") == pytest.approx(1)


async def test_pipeline_draws_captions_from_state_only_when_they_change(tmp_path: Path) -> None:
    fb = make_fb(tmp_path, 320, 240, 32)
    state = State(connection=Connection.CONNECTED)
    audio = AudioClock()
    settings = fb.settings(captions=True, caption_font_size=20, local_avatar=False)
    pipeline = DisplayPipeline(
        settings, state, clock=audio.clock, level=audio.level, onset=audio.onset
    )
    assert pipeline.captions is not None
    drawn: list[DrawnCaption] = []
    pipeline.captions.on_drawn = drawn.append
    await pipeline.start()
    try:
        await until(lambda: drawn and drawn[-1].view.indicator.name == "idle", within=5)
        idle_draws = len(drawn)
        await asyncio.sleep(0.3)  # nothing changes: nothing is drawn again
        assert len(drawn) == idle_draws
        state.update(turn=Turn.THINKING)
        state.update(transcript_assistant="Hello there")
        state.update(turn=Turn.IDLE)
        await until(lambda: drawn[-1].view.assistant == "Hello there", within=5)
        r = renderer()
        alone = r.render(drawn[-1].view)
        rgb = fb.rgb()
        assert np.abs(rgb[240 - alone.shape[0] :] - alone.astype(int)).max() == 0
    finally:
        await pipeline.stop()


async def test_band_comes_back_after_the_display_is_reopened_at_a_new_size(
    tmp_path: Path,
) -> None:
    fb = make_fb(tmp_path, 320, 240, 32)
    state = State(connection=Connection.CONNECTED, transcript_assistant="Still here")
    audio = AudioClock()
    settings = fb.settings(captions=True, caption_font_size=20, local_avatar=False)
    pipeline = DisplayPipeline(
        settings, state, clock=audio.clock, level=audio.level, onset=audio.onset
    )
    assert pipeline.captions is not None
    drawn: list[DrawnCaption] = []
    pipeline.captions.on_drawn = drawn.append
    await pipeline.start()
    try:
        await until(lambda: drawn and drawn[-1].view.assistant == "Still here", within=5)
        n = len(drawn)
        # A hotplugged screen: new mode, the device reopened at 640x480 (a fresh black file).
        big = make_fb(tmp_path / "big", 640, 480, 32)
        fb.device.write_bytes(big.device.read_bytes())
        write_geometry(fb.sysfs, 640, 480, 32, 640 * 4)
        await until(lambda: len(drawn) > n, within=15)
        alone = CaptionRenderer(640, font_path=DEJAVU_SANS, font_size=20, lines=2).render(
            drawn[-1].view
        )
        rgb = make_view(fb.device, 640, 480)
        assert (rgb[480 - alone.shape[0] :] == alone).all()
    finally:
        await pipeline.stop()


def make_view(device: Path, w: int, h: int) -> np.ndarray:
    raw = np.fromfile(device, dtype=np.uint8)[: w * h * 4].reshape(h, w, 4)
    return raw[..., [2, 1, 0]].astype(int)


def test_a_missing_font_costs_legibility_not_the_display(tmp_path: Path) -> None:
    r = CaptionRenderer(320, font_path=tmp_path / "nope.ttf", font_size=20, lines=2)
    assert lit(r.render(VIEW)).any()


def test_an_unbounded_transcript_costs_no_more_than_its_last_lines() -> None:
    r = renderer(lines=2)
    huge = "word " * 200_000  # a megabyte from a writer that does not cap its text
    rows = r.layout(CaptionView("", huge + "last", Indicator("speaking")))
    assert len(rows) == 2 and rows[-1][0].endswith("last")
