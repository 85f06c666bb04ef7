"""The local lip-synced avatar, for services that send no frames (OpenAI): the mouth opens with
the loudness of the audio actually being played (``level()`` from the playback path, so it is in
step with the speaker by construction), with distinct idle / listening / thinking looks.

This module decides what to draw each tick; pictures come from sprites.py, and the pipeline
runs the ticks (>= ``fps`` while speaking, on change otherwise).
"""

from __future__ import annotations

import math
from collections.abc import Hashable

from rtedge.display.sprites import Art
from rtedge.media.dsp import level_dbfs
from rtedge.state import Turn


class MouthFollower:
    """RMS level -> mouth opening 0..1: on a dB scale (loudness is heard logarithmically), with a
    fast attack and a slower release so the mouth snaps open on syllables and does not flicker
    shut between them."""

    def __init__(
        self,
        *,
        floor_db: float = -45.0,
        full_db: float = -12.0,
        attack: float = 0.8,
        release: float = 0.5,
    ) -> None:
        self.floor_db = floor_db
        self.full_db = full_db
        self.attack = attack  # fraction of the way to a louder target per tick
        self.release = release  # fraction of the way to a quieter target per tick
        self.opening = 0.0

    def target(self, level: float) -> float:
        if level <= 0.0 or not math.isfinite(level):
            return 0.0
        db = level_dbfs(level)
        return min(max((db - self.floor_db) / (self.full_db - self.floor_db), 0.0), 1.0)

    def update(self, level: float) -> float:
        target = self.target(level)
        rate = self.attack if target > self.opening else self.release
        self.opening += (target - self.opening) * rate
        return self.opening

    def reset(self) -> None:
        self.opening = 0.0


def look_for(turn: Turn, playing: bool) -> Turn:
    """The look to draw. Audio still playing after the turn went idle (the tail of an answer
    outlives response.done) still moves the mouth; while listening or thinking, sounds we play
    (earcons) do not."""
    if turn is Turn.SPEAKING or (turn is Turn.IDLE and playing):
        return Turn.SPEAKING
    return turn


class LocalAvatar:
    def __init__(self, art: Art, follower: MouthFollower | None = None) -> None:
        self.art = art
        self.follower = follower or MouthFollower()
        self._last_key: Hashable = None

    def tick(self, turn: Turn, playing: bool, level: float, t: float) -> tuple[Turn, float, bool]:
        """(look, opening, changed) for this tick; ``changed`` is False when the picture would be
        identical to the last one drawn (no need to redraw outside speech)."""
        look = look_for(turn, playing)
        opening = self.follower.update(level if look is Turn.SPEAKING else 0.0)
        key = self.art.key(look, opening, t)
        changed = key != self._last_key
        self._last_key = key
        return look, opening, changed

    def invalidate(self) -> None:
        """Forget the last picture (something else was drawn over it)."""
        self._last_key = None
