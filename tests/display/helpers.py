"""Real substitutes for the display's surroundings: a file framebuffer with a sysfs-like geometry
directory, JPEGs made with PyAV, and an audio playback clock driven by time.monotonic()."""

from __future__ import annotations

import asyncio
import base64
import math
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from rtedge.settings import DisplaySettings


@dataclass
class FakeFb:
    device: Path
    sysfs: Path
    width: int
    height: int
    bpp: int
    stride: int

    def raw(self) -> np.ndarray:
        data = np.fromfile(self.device, dtype=np.uint8)[: self.stride * self.height]
        return data.reshape(self.height, self.stride)

    def rgb(self) -> np.ndarray:
        """The framebuffer's pixels as H x W x 3 RGB (int)."""
        rows = self.raw()[:, : self.width * self.bpp // 8]
        if self.bpp == 16:
            v = rows.view("<u2").astype(np.int32)
            r = ((v >> 11) & 31) * 255 // 31
            g = ((v >> 5) & 63) * 255 // 63
            b = (v & 31) * 255 // 31
            return np.stack([r, g, b], axis=-1)
        px = rows.reshape(self.height, self.width, self.bpp // 8).astype(np.int32)
        return px[..., [2, 1, 0]]  # bgr24 / bgra in memory

    def settings(self, **kw: object) -> DisplaySettings:
        return DisplaySettings(backend="fbdev", fbdev=self.device, sysfs=self.sysfs, **kw)


def make_fb(tmp: Path, width: int, height: int, bpp: int, pad: int = 0, fill: int = 0x55) -> FakeFb:
    """A regular file standing in for /dev/fb0, pre-filled with a non-black byte so that the test
    sees which pixels the sink wrote."""
    stride = width * bpp // 8 + pad
    sysfs = tmp / "sys" / "fb0"
    sysfs.mkdir(parents=True, exist_ok=True)
    write_geometry(sysfs, width, height, bpp, stride)
    device = tmp / "fb0"
    device.write_bytes(bytes([fill]) * (stride * height))
    return FakeFb(device, sysfs, width, height, bpp, stride)


def write_geometry(sysfs: Path, width: int, height: int, bpp: int, stride: int) -> None:
    (sysfs / "virtual_size").write_text(f"{width},{height}\n")
    (sysfs / "bits_per_pixel").write_text(f"{bpp}\n")
    (sysfs / "stride").write_text(f"{stride}\n")


def encode_jpeg(rgb: np.ndarray, quality: int = 3) -> bytes:
    h, w = rgb.shape[:2]
    ctx = av.CodecContext.create("mjpeg", "w")
    ctx.width, ctx.height = w, h
    ctx.pix_fmt = "yuvj420p"
    ctx.time_base = Fraction(1, 25)
    ctx.qmin = ctx.qmax = quality
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
    return bytes(ctx.encode(frame.reformat(format="yuvj420p"))[0])


def encode_png(rgb: np.ndarray, path: Path) -> None:
    h, w = rgb.shape[:2]
    ctx = av.CodecContext.create("png", "w")
    ctx.width, ctx.height = w, h
    ctx.pix_fmt = "rgb24"
    ctx.time_base = Fraction(1, 25)
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
    path.write_bytes(bytes(ctx.encode(frame)[0]))


QUADRANTS = {  # top-left, top-right, bottom-left, bottom-right
    "tl": (230, 30, 30),
    "tr": (30, 200, 40),
    "bl": (30, 40, 220),
    "br": (240, 240, 240),
}


def quadrant_image(w: int, h: int) -> np.ndarray:
    img = np.zeros((h, w, 3), np.uint8)
    img[: h // 2, : w // 2] = QUADRANTS["tl"]
    img[: h // 2, w // 2 :] = QUADRANTS["tr"]
    img[h // 2 :, : w // 2] = QUADRANTS["bl"]
    img[h // 2 :, w // 2 :] = QUADRANTS["br"]
    return img


def numbered_jpeg(i: int, size: int = 128) -> str:
    """A small distinct frame as the base64 an rtAV delta event carries."""
    img = np.full((size, size, 3), (i * 37) % 256, np.uint8)
    return base64.b64encode(encode_jpeg(img, quality=8)).decode("ascii")


class AudioClock:
    """Stands in for the audio playback path: a clock that runs with time.monotonic() (it counts
    silence, like the speaker's), the onset of the current playing run, and the played level.
    ``step`` quantises the clock like a player that advances it once per ALSA period."""

    def __init__(self, step: float = 0.0) -> None:
        self.t0 = time.monotonic()
        self.step = step
        self._onset: float | None = None
        self.level_fn = lambda t: 0.0

    def clock(self) -> float:
        t = time.monotonic() - self.t0
        return math.floor(t / self.step) * self.step if self.step else t

    def onset(self) -> float | None:
        return self._onset

    def level(self) -> float:
        return float(self.level_fn(self.clock())) if self._onset is not None else 0.0

    def play(self) -> float:
        self._onset = self.clock()
        return self._onset

    def silence(self) -> None:
        self._onset = None


async def at_clock(ac: AudioClock, t: float) -> None:
    """Wait until the audio clock reads at least t."""
    while ac.clock() < t:  # noqa: ASYNC110  (the clock is polled, as the pipeline does)
        await asyncio.sleep(0.002)
