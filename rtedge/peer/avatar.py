"""rtAV-style avatar frames: a drawn face whose mouth opens with the loudness of the audio being
sent, encoded as JPEG with PyAV's mjpeg encoder.

A frame depends only on (mouth opening, eyes open), and the opening is quantized to
``MOUTH_LEVELS`` steps, so each distinct frame is encoded once per process and then reused: the
event loop never spends more than one small encode per new level, however many calls run.
"""

from __future__ import annotations

import base64
import fractions
import math
from typing import Final

import av
import numpy as np
import numpy.typing as npt

MOUTH_LEVELS: Final = 16
SILENT_DB: Final = -50.0  # at or below: mouth closed
LOUD_DB: Final = -12.0  # at or above: mouth fully open
_SKIN: Final = (236, 196, 160)
_BACKGROUND: Final = (40, 70, 110)
_DARK: Final = (25, 10, 10)


def mouth_level(rms: float) -> int:
    """Quantized mouth opening 0..MOUTH_LEVELS-1 for an RMS level (0..1 of full scale)."""
    db = 20.0 * math.log10(rms + 1e-9)
    frac = (db - SILENT_DB) / (LOUD_DB - SILENT_DB)
    return int(round(min(1.0, max(0.0, frac)) * (MOUTH_LEVELS - 1)))


_cache: dict[tuple[int, int, bool], str] = {}


def cached_frame(size: int, level: int, eyes_open: bool = True) -> str | None:
    """The base64 JPEG for one frame if it was encoded before (cheap: call it on the loop)."""
    return _cache.get((size, _clamp(level), eyes_open))


def render_frame(size: int, level: int, eyes_open: bool = True) -> str:
    """Draw and encode one frame (10-30 ms the first time: run it in an executor) and cache it."""
    key = (size, _clamp(level), eyes_open)
    found = _cache.get(key)
    if found is None:
        rgb = draw_face(size, key[1] / (MOUTH_LEVELS - 1), eyes_open)
        found = base64.b64encode(encode_jpeg(rgb)).decode("ascii")
        _cache[key] = found  # bounded: sizes x MOUTH_LEVELS x 2 entries
    return found


def _clamp(level: int) -> int:
    return max(0, min(MOUTH_LEVELS - 1, level))


def draw_face(size: int, opening: float, eyes_open: bool) -> npt.NDArray[np.uint8]:
    """RGB image: round face, two eyes, a dark mouth ``opening`` (0..1) of its full height."""
    img = np.empty((size, size, 3), dtype=np.uint8)
    img[:] = _BACKGROUND
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    face = (xx - 0.5) ** 2 + (yy - 0.5) ** 2 <= 0.42**2
    img[face] = _SKIN
    for ex in (0.36, 0.64):
        if eyes_open:
            eye = ((xx - ex) / 0.05) ** 2 + ((yy - 0.4) / 0.06) ** 2 <= 1.0
        else:
            eye = (np.abs(xx - ex) <= 0.05) & (np.abs(yy - 0.4) <= 0.008)
        img[eye] = _DARK
    half_h = 0.01 + 0.11 * opening  # a closed mouth is a thin line
    mouth = ((xx - 0.5) / 0.14) ** 2 + ((yy - 0.68) / half_h) ** 2 <= 1.0
    img[mouth] = _DARK
    return img


def encode_jpeg(rgb: npt.NDArray[np.uint8], quality: int = 5) -> bytes:
    """One JPEG via PyAV's mjpeg encoder (``quality`` is its qscale: 2 best .. 31 worst)."""
    height, width = rgb.shape[:2]
    codec = av.CodecContext.create("mjpeg", "w")
    codec.width = width
    codec.height = height
    codec.pix_fmt = "yuvj420p"
    codec.time_base = fractions.Fraction(1, 25)  # required by the encoder; unused for stills
    codec.options = {"qmin": str(quality), "qmax": str(quality)}
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuvj420p")
    packets = codec.encode(frame) + codec.encode(None)
    return b"".join(bytes(p) for p in packets)
