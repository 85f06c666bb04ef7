"""The built-in avatar face, drawn with numpy: the local avatar's and, in its colours, the peer's.

Looks are named by the turn they show (``idle``, ``listening``, ``thinking``, ``speaking``: the
values of ``rtedge.state.Turn``, a ``StrEnum``, which may be passed as they are).
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from rtedge.media.jpeg import Pixels

RGB = tuple[int, int, int]

IDLE, LISTENING, THINKING, SPEAKING = "idle", "listening", "thinking", "speaking"
LOOKS = (IDLE, LISTENING, THINKING, SPEAKING)

BLINK_EVERY_S = 4.0
BLINK_S = 0.15

# Built-in colours (RGB). The mouth colour appears nowhere else, so tests can measure it.
BACKGROUND = (18, 22, 34)
SKIN = (236, 196, 160)
EYE_WHITE = (250, 250, 250)
PUPIL = (35, 35, 45)
MOUTH = (120, 20, 40)
RING: dict[str, RGB] = {
    IDLE: (90, 92, 104),
    LISTENING: (60, 200, 120),
    THINKING: (240, 176, 40),
    SPEAKING: (70, 150, 255),
}
_DOT = (120, 110, 90)


@dataclass(frozen=True, slots=True)
class Palette:
    background: RGB = BACKGROUND
    skin: RGB = SKIN
    eye_white: RGB = EYE_WHITE
    pupil: RGB = PUPIL
    mouth: RGB = MOUTH


def _blinking(t: float) -> bool:
    return (t % BLINK_EVERY_S) < BLINK_S


class BuiltinFace:
    """A round face with a coloured ring per look, eyes that blink, thinking dots, and a mouth
    whose height follows the opening. Static parts are drawn once per look; a frame copies that
    and draws only the mouth (and eyelids, dots), which keeps a frame well under a millisecond."""

    def __init__(self, size: int = 360, palette: Palette = Palette()) -> None:
        self.size = s = size
        self.palette = palette
        yy, xx = np.mgrid[0:s, 0:s].astype(np.float32)
        self._yy, self._xx = yy, xx
        self.mouth_center = (0.5 * s, 0.68 * s)  # (x, y)
        self.mouth_rx = 0.13 * s
        self.mouth_ry_min = 0.012 * s  # closed: a line
        self.mouth_ry_max = 0.11 * s
        self._eyes = [(0.5 * s - 0.14 * s, 0.43 * s), (0.5 * s + 0.14 * s, 0.43 * s)]
        self._bases = {look: self._draw_base(look) for look in LOOKS}

    def _disk(self, cx: float, cy: float, rx: float, ry: float) -> npt.NDArray[np.bool_]:
        inside: npt.NDArray[np.bool_] = ((self._xx - cx) / rx) ** 2 + (
            (self._yy - cy) / ry
        ) ** 2 <= 1.0
        return inside

    def _draw_base(self, look: str) -> Pixels:
        s, c = self.size, self.palette
        img = np.empty((s, s, 3), np.uint8)
        img[:] = c.background
        r = np.hypot(self._xx - s / 2, self._yy - s / 2)
        img[(r >= 0.44 * s) & (r <= 0.48 * s)] = RING[look]
        img[r < 0.40 * s] = c.skin
        eye_ry = {LISTENING: 0.068 * s, IDLE: 0.04 * s}.get(look, 0.052 * s)
        look_dx, look_dy = (0.018 * s, -0.022 * s) if look == THINKING else (0.0, 0.0)
        for ex, ey in self._eyes:
            img[self._disk(ex, ey, 0.065 * s, eye_ry)] = c.eye_white
            pupil = 0.034 * s if look == LISTENING else 0.027 * s
            img[self._disk(ex + look_dx, ey + look_dy, pupil, pupil)] = c.pupil
        if look == THINKING:  # a raised brow
            bx, by = self._eyes[1]
            img[self._disk(bx, by - 0.085 * s, 0.07 * s, 0.012 * s)] = c.pupil
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

    def key(self, look: str, opening: float, t: float) -> Hashable:
        blink = look != SPEAKING and _blinking(t)
        dots = int(t * 3) % 3 if look == THINKING else -1
        return (look, self.mouth_height_px(opening if look == SPEAKING else 0.0), blink, dots)

    def render(self, look: str, opening: float, t: float) -> Pixels:
        """The picture at time ``t`` (s): the mouth moves only while speaking; otherwise the eyes
        blink every ``BLINK_EVERY_S`` and, while thinking, three dots light in turn."""
        return self.draw(
            look,
            opening if look == SPEAKING else 0.0,
            blink=look != SPEAKING and _blinking(t),
            lit_dot=int(t * 3) % 3 if look == THINKING else None,
        )

    def draw(self, look: str, opening: float, *, blink: bool, lit_dot: int | None = None) -> Pixels:
        """One picture: ``look``'s base, a mouth ``opening`` (0..1), eyelids down when ``blink``,
        and thinking dots with ``lit_dot`` (0..2) lit when given."""
        s, c = self.size, self.palette
        img = self._bases[look].copy()
        cx, cy = self.mouth_center
        ry = self.mouth_height_px(opening) / 2
        ys, xs = self._mouth_window()
        win = img[ys, xs]
        wy, wx = self._yy[ys, xs], self._xx[ys, xs]
        win[((wx - cx) / self.mouth_rx) ** 2 + ((wy - cy) / max(ry, 0.5)) ** 2 <= 1.0] = c.mouth
        if blink:
            for ex, ey in self._eyes:  # lids down: skin over the eye, a dark lash line
                ey0, ey1 = int(ey - 0.075 * s), int(ey + 0.075 * s)
                ex0, ex1 = int(ex - 0.075 * s), int(ex + 0.075 * s)
                img[ey0:ey1, ex0:ex1][self._disk(ex, ey, 0.07 * s, 0.072 * s)[ey0:ey1, ex0:ex1]] = (
                    c.skin
                )
                img[int(ey) - 1 : int(ey) + 2, int(ex - 0.06 * s) : int(ex + 0.06 * s)] = c.pupil
        if lit_dot is not None:  # three dots, one lit in turn
            for i in range(3):
                dx, dy = 0.80 * s + i * 0.07 * s, 0.10 * s
                colour = RING[THINKING] if i == lit_dot else _DOT
                y0, y1, x0, x1 = int(dy - 12), int(dy + 12), int(dx - 12), int(dx + 12)
                img[y0:y1, x0:x1][self._disk(dx, dy, 0.022 * s, 0.022 * s)[y0:y1, x0:x1]] = colour
        return img
