"""The framebuffer sink against a file standing in for /dev/fb0 with a sysfs-like geometry
directory: known JPEGs land letterboxed, in the right colours, at 16, 24 and 32 bpp."""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import pytest

from rtedge.display.fbdev import FramebufferSink
from rtedge.display.frames import JpegPicture, RgbPicture
from rtedge.display.geometry import DisplayError, letterbox, read_geometry
from tests.display.helpers import QUADRANTS, encode_jpeg, make_fb, quadrant_image, write_geometry

# JPEG (4:2:0, q3) plus RGB565's 5/6-bit channels: a flat colour lands within this per channel.
TOLERANCE = 24


def show_jpeg(sink: FramebufferSink, jpeg: bytes) -> None:
    sink.show(sink.prepare(JpegPicture(base64.b64encode(jpeg).decode())))


def assert_colour(px: np.ndarray, expected: tuple[int, int, int], where: str) -> None:
    diff = np.abs(px.astype(int) - np.array(expected)).max()
    assert diff <= TOLERANCE, f"{where}: {px.tolist()} vs {expected}"


@pytest.mark.parametrize(("bpp", "pad"), [(16, 0), (16, 64), (24, 0), (32, 0), (32, 128)])
def test_wide_jpeg_letterboxed_top_and_bottom(tmp_path: Path, bpp: int, pad: int) -> None:
    fb = make_fb(tmp_path, 320, 240, bpp, pad=pad)
    sink = FramebufferSink(fb.device, fb.sysfs)
    assert "320x240" in sink.open()
    show_jpeg(sink, encode_jpeg(quadrant_image(512, 256)))  # 2:1 into 4:3 -> 320x160 at y=40
    rgb = fb.rgb()
    assert (rgb[:40] == 0).all(), "top bar not black"
    assert (rgb[200:] == 0).all(), "bottom bar not black"
    for name, (y, x) in {
        "tl": (80, 80),
        "tr": (80, 240),
        "bl": (160, 80),
        "br": (160, 240),
    }.items():
        assert_colour(rgb[y, x], QUADRANTS[name], name)
    if pad:  # stride padding beyond the visible row is never written
        assert (fb.raw()[:, 320 * bpp // 8 :] == 0x55).all()
    sink.close()


@pytest.mark.parametrize("bpp", [16, 32])
def test_tall_jpeg_letterboxed_left_and_right(tmp_path: Path, bpp: int) -> None:
    fb = make_fb(tmp_path, 320, 240, bpp)
    sink = FramebufferSink(fb.device, fb.sysfs)
    sink.open()
    show_jpeg(sink, encode_jpeg(quadrant_image(256, 512)))  # 1:2 -> 120x240 at x=100
    rgb = fb.rgb()
    assert (rgb[:, :100] == 0).all() and (rgb[:, 220:] == 0).all()
    assert_colour(rgb[60, 130], QUADRANTS["tl"], "tl")
    assert_colour(rgb[60, 190], QUADRANTS["tr"], "tr")
    assert_colour(rgb[180, 130], QUADRANTS["bl"], "bl")
    assert_colour(rgb[180, 190], QUADRANTS["br"], "br")
    if bpp == 32:  # the X/alpha byte is opaque everywhere, bars included
        assert (fb.raw()[:, 3::4] == 255).all()
    sink.close()


def test_bars_follow_a_change_of_aspect(tmp_path: Path) -> None:
    fb = make_fb(tmp_path, 320, 240, 32)
    sink = FramebufferSink(fb.device, fb.sysfs)
    sink.open()
    show_jpeg(sink, encode_jpeg(quadrant_image(320, 240)))  # full screen
    assert fb.rgb()[10, 10].sum() > 200
    show_jpeg(sink, encode_jpeg(quadrant_image(256, 512)))  # now pillarboxed: old pixels cleared
    assert (fb.rgb()[:, :100] == 0).all()
    sink.close()


def test_local_rgb_picture_exact_at_32bpp(tmp_path: Path) -> None:
    fb = make_fb(tmp_path, 64, 64, 32)
    sink = FramebufferSink(fb.device, fb.sysfs)
    sink.open()
    img = np.zeros((64, 64, 3), np.uint8)
    img[:, :, 0] = np.arange(64)[None, :] * 4
    img[:, :, 1] = 7
    img[:, :, 2] = 200
    sink.show(sink.prepare(RgbPicture(img)))
    assert np.array_equal(fb.rgb(), img.astype(int))
    sink.close()


def test_missing_device_and_bad_geometry_are_display_errors(tmp_path: Path) -> None:
    fb = make_fb(tmp_path, 32, 32, 16)
    with pytest.raises(DisplayError, match="No such file"):
        FramebufferSink(tmp_path / "nofb", fb.sysfs).open()
    with pytest.raises(DisplayError, match="virtual_size"):
        FramebufferSink(fb.device, tmp_path / "nosys").open()
    write_geometry(fb.sysfs, 64, 64, 16, 128)  # the file is now too small for the geometry
    with pytest.raises(DisplayError, match="geometry needs"):
        FramebufferSink(fb.device, fb.sysfs).open()
    write_geometry(fb.sysfs, 32, 32, 8, 32)
    with pytest.raises(DisplayError, match="not supported"):
        read_geometry(fb.sysfs)


def test_check_notices_geometry_change(tmp_path: Path) -> None:
    fb = make_fb(tmp_path, 32, 32, 16)
    sink = FramebufferSink(fb.device, fb.sysfs)
    sink.open()
    sink.check()
    write_geometry(fb.sysfs, 16, 32, 16, 32)
    with pytest.raises(DisplayError, match="geometry changed"):
        sink.check()
    sink.close()


def test_letterbox() -> None:
    assert letterbox(512, 512, 1280, 720) == letterbox(1, 1, 1280, 720)
    r = letterbox(512, 512, 1280, 720)
    assert (r.x, r.y, r.w, r.h) == (280, 0, 720, 720)
    r = letterbox(1920, 1080, 1280, 720)
    assert (r.x, r.y, r.w, r.h) == (0, 0, 1280, 720)
    r = letterbox(1000, 100, 320, 240)
    assert (r.w, r.h, r.y) == (320, 32, 104)
