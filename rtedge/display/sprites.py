"""The local avatar's pictures: the built-in face (rtedge.media.face, no files needed), or a sprite
set read from ``[display] avatar_dir``.

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
from av.video.reformatter import VideoReformatter

from rtedge.media.face import BuiltinFace
from rtedge.media.jpeg import Pixels
from rtedge.state import Turn

log = logging.getLogger(__name__)

SPRITE_EXTENSIONS = (".png", ".jpg", ".jpeg")


class AvatarError(Exception):
    """The sprite directory cannot be used."""


class Art(Protocol):
    def key(self, look: Turn, opening: float, t: float) -> Hashable:
        """Equal keys mean identical pictures (so an unchanged picture is not redrawn)."""
        ...

    def render(self, look: Turn, opening: float, t: float) -> Pixels:
        """The picture for a look, a mouth opening 0..1 and a time in seconds (animations)."""
        ...


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
