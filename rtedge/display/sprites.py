"""The local avatar's pictures: a built-in face drawn with numpy (no files needed), or a sprite set
read from ``[display] avatar_dir``.

Sprite set (PNG or JPEG, any size; all are scaled to the size of ``idle``; alpha is ignored):

=====================  ==========================================================================
``idle.png``           required; the resting face (also used for any look that has no file)
``listening.png``      while the button is held / the user speaks
``thinking.png``       between the user's turn and the answer
``speaking_0.png`` ..  the face while speaking, mouth closed (``_0``) to wide open (highest
``speaking_N.png``     number); the frame is picked by loudness. Without them, ``idle`` is shown.
=====================  ==========================================================================
"""

from __future__ import annotations

import logging
import re
from collections.abc import Hashable
from pathlib import Path
from typing import Protocol

import av
import numpy as np
import numpy.typing as npt
from av.video.reformatter import VideoReformatter

from rtedge.display.frames import Pixels
from rtedge.state import Turn

log = logging.getLogger(__name__)

SPRITE_EXTENSIONS = (".png", ".jpg", ".jpeg")
BLINK_EVERY_S = 4.0
BLINK_S = 0.15


class AvatarError(Exception):
    """The sprite directory cannot be used."""


class Art(Protocol):
    def key(self, look: Turn, opening: float, t: float) -> Hashable:
        """Equal keys mean identical pictures (so an unchanged picture is not redrawn)."""
        ...

    def render(self, look: Turn, opening: float, t: float) -> Pixels:
        """The picture for a look, a mouth opening 0..1 and a time in seconds (animations)."""
        ...


def _blinking(t: float) -> bool:
    return (t % BLINK_EVERY_S) < BLINK_S


# Built-in colours (RGB). The mouth colour appears nowhere else, so tests can measure it.
BACKGROUND = (18, 22, 34)
SKIN = (236, 196, 160)
EYE_WHITE = (250, 250, 250)
PUPIL = (35, 35, 45)
MOUTH = (120, 20, 40)
RING = {
    Turn.IDLE: (90, 92, 104),
    Turn.LISTENING: (60, 200, 120),
    Turn.THINKING: (240, 176, 40),
    Turn.SPEAKING: (70, 150, 255),
}


class BuiltinFace:
    """A round face with a coloured ring per look, eyes that blink, thinking dots, and a mouth
    whose height follows the opening. Static parts are drawn once per look; a frame copies that
    and draws only the mouth (and eyelids, dots), which keeps a frame well under a millisecond."""

    def __init__(self, size: int = 360) -> None:
        self.size = s = size
        yy, xx = np.mgrid[0:s, 0:s].astype(np.float32)
        self._yy, self._xx = yy, xx
        self.mouth_center = (0.5 * s, 0.68 * s)  # (x, y)
        self.mouth_rx = 0.13 * s
        self.mouth_ry_min = 0.012 * s  # closed: a line
        self.mouth_ry_max = 0.11 * s
        self._eyes = [(0.5 * s - 0.14 * s, 0.43 * s), (0.5 * s + 0.14 * s, 0.43 * s)]
        self._bases = {look: self._draw_base(look) for look in Turn}

    def _disk(self, cx: float, cy: float, rx: float, ry: float) -> npt.NDArray[np.bool_]:
        inside: npt.NDArray[np.bool_] = ((self._xx - cx) / rx) ** 2 + (
            (self._yy - cy) / ry
        ) ** 2 <= 1.0
        return inside

    def _draw_base(self, look: Turn) -> Pixels:
        s = self.size
        img = np.empty((s, s, 3), np.uint8)
        img[:] = BACKGROUND
        r = np.hypot(self._xx - s / 2, self._yy - s / 2)
        img[(r >= 0.44 * s) & (r <= 0.48 * s)] = RING[look]
        img[r < 0.40 * s] = SKIN
        eye_ry = {Turn.LISTENING: 0.068 * s, Turn.IDLE: 0.04 * s}.get(look, 0.052 * s)
        look_dx, look_dy = (0.018 * s, -0.022 * s) if look is Turn.THINKING else (0.0, 0.0)
        for ex, ey in self._eyes:
            img[self._disk(ex, ey, 0.065 * s, eye_ry)] = EYE_WHITE
            pupil = 0.034 * s if look is Turn.LISTENING else 0.027 * s
            img[self._disk(ex + look_dx, ey + look_dy, pupil, pupil)] = PUPIL
        if look is Turn.THINKING:  # a raised brow
            bx, by = self._eyes[1]
            img[self._disk(bx, by - 0.085 * s, 0.07 * s, 0.012 * s)] = PUPIL
        return img

    def _mouth_window(self) -> tuple[slice, slice]:
        cx, cy = self.mouth_center
        ys = slice(int(cy - self.mouth_ry_max) - 1, int(cy + self.mouth_ry_max) + 2)
        xs = slice(int(cx - self.mouth_rx) - 1, int(cx + self.mouth_rx) + 2)
        return ys, xs

    def mouth_height_px(self, opening: float) -> int:
        ry = self.mouth_ry_min + min(max(opening, 0.0), 1.0) * (
            self.mouth_ry_max - self.mouth_ry_min
        )
        return round(2 * ry)

    def key(self, look: Turn, opening: float, t: float) -> Hashable:
        blink = look is not Turn.SPEAKING and _blinking(t)
        dots = int(t * 3) % 3 if look is Turn.THINKING else -1
        return (look, self.mouth_height_px(opening if look is Turn.SPEAKING else 0.0), blink, dots)

    def render(self, look: Turn, opening: float, t: float) -> Pixels:
        s = self.size
        img = self._bases[look].copy()
        cx, cy = self.mouth_center
        ry = self.mouth_height_px(opening if look is Turn.SPEAKING else 0.0) / 2
        ys, xs = self._mouth_window()
        win = img[ys, xs]
        wy, wx = self._yy[ys, xs], self._xx[ys, xs]
        win[((wx - cx) / self.mouth_rx) ** 2 + ((wy - cy) / max(ry, 0.5)) ** 2 <= 1.0] = MOUTH
        if look is not Turn.SPEAKING and _blinking(t):
            for ex, ey in self._eyes:  # lids down: skin over the eye, a dark lash line
                ey0, ey1 = int(ey - 0.075 * s), int(ey + 0.075 * s)
                ex0, ex1 = int(ex - 0.075 * s), int(ex + 0.075 * s)
                img[ey0:ey1, ex0:ex1][self._disk(ex, ey, 0.07 * s, 0.072 * s)[ey0:ey1, ex0:ex1]] = (
                    SKIN
                )
                img[int(ey) - 1 : int(ey) + 2, int(ex - 0.06 * s) : int(ex + 0.06 * s)] = PUPIL
        if look is Turn.THINKING:  # three dots, one lit in turn
            lit = int(t * 3) % 3
            for i in range(3):
                dx, dy = 0.80 * s + i * 0.07 * s, 0.10 * s
                colour = RING[Turn.THINKING] if i == lit else (120, 110, 90)
                y0, y1, x0, x1 = int(dy - 12), int(dy + 12), int(dx - 12), int(dx + 12)
                img[y0:y1, x0:x1][self._disk(dx, dy, 0.022 * s, 0.022 * s)[y0:y1, x0:x1]] = colour
        return img


def _load_image(path: Path) -> Pixels:
    try:
        with av.open(str(path)) as container:
            frame = next(container.decode(video=0))
    except (av.error.FFmpegError, StopIteration, OSError) as exc:
        raise AvatarError(f"{path}: not a readable image ({exc})") from None
    return np.asarray(frame.to_ndarray(format="rgb24"), dtype=np.uint8)


def _resize(img: Pixels, w: int, h: int) -> Pixels:
    if img.shape[1] == w and img.shape[0] == h:
        return img
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
    return np.asarray(VideoReformatter().reformat(frame, w, h, "rgb24").to_ndarray(), np.uint8)


def _find(directory: Path, stem: str) -> Path | None:
    for ext in SPRITE_EXTENSIONS:
        for candidate in (directory / f"{stem}{ext}", directory / f"{stem}{ext.upper()}"):
            if candidate.is_file():
                return candidate
    return None


class SpriteSet:
    """Pictures from a directory (see the module docstring for the file names)."""

    def __init__(self, directory: Path) -> None:
        idle_path = _find(directory, "idle")
        if idle_path is None:
            raise AvatarError(f"{directory}: no idle.png / idle.jpg")
        idle = _load_image(idle_path)
        h, w = idle.shape[:2]
        self.looks: dict[Turn, Pixels] = {Turn.IDLE: idle}
        for look in (Turn.LISTENING, Turn.THINKING):
            path = _find(directory, look.value)
            self.looks[look] = _resize(_load_image(path), w, h) if path else idle
        numbered: dict[int, Path] = {}
        for path in directory.iterdir():
            m = re.fullmatch(r"speaking_(\d+)", path.stem)
            if m and path.suffix.lower() in SPRITE_EXTENSIONS:
                numbered[int(m.group(1))] = path
        self.speaking = [_resize(_load_image(numbered[i]), w, h) for i in sorted(numbered)]
        if not self.speaking:
            log.warning(
                "%s: no speaking_N sprites; the face will not move while speaking", directory
            )
            self.speaking = [idle]

    def _index(self, opening: float) -> int:
        return round(min(max(opening, 0.0), 1.0) * (len(self.speaking) - 1))

    def key(self, look: Turn, opening: float, t: float) -> Hashable:
        return (look, self._index(opening) if look is Turn.SPEAKING else -1)

    def render(self, look: Turn, opening: float, t: float) -> Pixels:
        if look is Turn.SPEAKING:
            return self.speaking[self._index(opening)]
        return self.looks[look]


def load_art(avatar_dir: Path | None, size: int = 360) -> Art:
    """The configured sprite set, or the built-in face when none is set or it is unusable (a bad
    sprite directory must not leave the kiosk blank)."""
    if avatar_dir is not None:
        try:
            return SpriteSet(avatar_dir)
        except (AvatarError, OSError) as exc:
            log.warning("avatar sprites unusable, using the built-in face: %s", exc)
    return BuiltinFace(size)
