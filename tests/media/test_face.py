"""The built-in face, measured from its pixels: the mouth follows the opening, keys change only
when the picture does, the eyes blink, and a palette recolours it (the peer's face)."""

from __future__ import annotations

import numpy as np

from rtedge.media.face import MOUTH, RING, BuiltinFace, Palette
from rtedge.state import Turn


def mouth_height(rgb: np.ndarray, x: int, colour: tuple[int, int, int] = MOUTH) -> int:
    """Rows of mouth colour in column x (the face is centred, so x is the mouth's middle)."""
    column = rgb[:, x].astype(np.int32)
    return int((np.abs(column - np.array(colour)).max(axis=1) <= 40).sum())


def test_builtin_face_mouth_and_keys() -> None:
    face = BuiltinFace(360)
    closed = face.render(Turn.SPEAKING, 0.0, 1.0)
    wide = face.render(Turn.SPEAKING, 1.0, 1.0)
    assert mouth_height(closed, 180) < 12
    assert mouth_height(wide, 180) > 70
    assert face.key(Turn.SPEAKING, 0.5, 1.0) != face.key(Turn.SPEAKING, 0.6, 1.0)
    assert face.key(Turn.IDLE, 0.9, 1.0) == face.key(Turn.IDLE, 0.0, 1.0)  # idle ignores level
    assert face.key(Turn.IDLE, 0.0, 1.0) != face.key(Turn.IDLE, 0.0, 4.05)  # blink


def test_looks_differ_by_ring_and_the_turn_enum_names_them() -> None:
    face = BuiltinFace(200)
    for turn in Turn:
        ring = face.render(turn, 0.0, 1.0)[100, int(200 * 0.96)]  # on the ring, right of centre
        assert tuple(ring) == RING[turn] == RING[turn.value]


def test_a_blink_covers_the_eyes_and_a_palette_recolours() -> None:
    dark = (25, 10, 10)
    face = BuiltinFace(200, Palette(background=(40, 70, 110), pupil=dark, mouth=dark))
    open_eyes = face.draw("speaking", 0.5, blink=False)
    shut = face.draw("speaking", 0.5, blink=True)
    eye = (int(200 * 0.43), int(200 * 0.36))  # (row, column) of the left eye's centre
    assert tuple(open_eyes[eye]) == dark  # the pupil
    assert tuple(shut[eye[0] - 8, eye[1]]) == face.palette.skin  # the lid, above the lash line
    assert tuple(open_eyes[2, 2]) == (40, 70, 110)
    assert mouth_height(open_eyes, 100, dark) > mouth_height(
        face.draw("speaking", 0.0, blink=False), 100, dark
    )
    assert mouth_height(open_eyes, 100) == 0  # the default mouth colour is nowhere
