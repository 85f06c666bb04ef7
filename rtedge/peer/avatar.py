"""rtAV-style avatar frames: the built-in face (rtedge.media.face, in the peer's own colours) whose
mouth opens with the loudness of the audio being sent, encoded as JPEG (rtedge.media.jpeg).

A frame depends only on (mouth opening, eyes open), and the opening is quantized to
``MOUTH_LEVELS`` steps, so each distinct frame is encoded once per process and then reused: the
event loop never spends more than one small encode per new level, however many calls run.
"""

from __future__ import annotations

import base64
from typing import Final

from rtedge.media.dsp import level_dbfs
from rtedge.media.face import SPEAKING, BuiltinFace, Palette
from rtedge.media.jpeg import JpegEncoder, rgb_frame

MOUTH_LEVELS: Final = 16
SILENT_DB: Final = -50.0  # at or below: mouth closed
LOUD_DB: Final = -12.0  # at or above: mouth fully open
#: A service's face, told apart from the device's own avatar at a glance: a blue background, and
#: a dark mouth (what tests count as "mouth" pixels in the peer's frames).
PALETTE: Final = Palette(background=(40, 70, 110), pupil=(25, 10, 10), mouth=(25, 10, 10))


def mouth_level(rms: float) -> int:
    """Quantized mouth opening 0..MOUTH_LEVELS-1 for an RMS level (0..1 of full scale)."""
    frac = (level_dbfs(rms) - SILENT_DB) / (LOUD_DB - SILENT_DB)
    return int(round(min(1.0, max(0.0, frac)) * (MOUTH_LEVELS - 1)))


_cache: dict[tuple[int, int, bool], str] = {}
_faces: dict[int, BuiltinFace] = {}


def cached_frame(size: int, level: int, eyes_open: bool = True) -> str | None:
    """The base64 JPEG for one frame if it was encoded before (cheap: call it on the loop)."""
    return _cache.get((size, _clamp(level), eyes_open))


def render_frame(size: int, level: int, eyes_open: bool = True) -> str:
    """Draw and encode one frame (10-30 ms the first time: run it in an executor) and cache it."""
    key = (size, _clamp(level), eyes_open)
    found = _cache.get(key)
    if found is None:
        face = _faces.get(size)
        if face is None:  # two executor threads may both build one: the same, and harmless
            face = _faces.setdefault(size, BuiltinFace(size, PALETTE))
        rgb = face.draw(SPEAKING, key[1] / (MOUTH_LEVELS - 1), blink=not eyes_open)
        # An encoder per frame: executor threads may encode at once, and a codec context is not
        # thread-safe; frames are encoded once per process anyway.
        jpeg = JpegEncoder(quality=5).encode(rgb_frame(rgb))
        found = base64.b64encode(jpeg).decode("ascii")
        _cache[key] = found  # bounded: sizes x MOUTH_LEVELS x 2 entries
    return found


def _clamp(level: int) -> int:
    return max(0, min(MOUTH_LEVELS - 1, level))
