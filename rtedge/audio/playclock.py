"""The playback clock: which frame the speaker is playing now, and the level of what it plays."""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from dataclasses import dataclass

from rtedge.media.dsp import SILENCE_RMS


@dataclass
class Span:
    """Frames ``start``..``end`` of the clock as written, with their speech level."""

    start: int
    end: int
    level: float
    run_start: int | None  # where the current non-silent run began, None when silent


class PlaybackClock:
    """Counts frames written to the device and, from what the device still held at the last
    write and the time since, the frame it plays now (``played_frames``: never goes back).

    The playback thread writes (``account``, ``drop_queued``); anyone reads. ``now`` is the
    clock it runs on (``time.monotonic`` unless a test injects one)."""

    def __init__(
        self, rate: int, period_frames: int, *, now: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.period_frames = period_frames
        self._now = now
        self.written = 0
        # (written, queued in the device, when): one tuple, swapped whole, read from any thread
        self._at: tuple[int, int, float] = (0, 0, now())
        self._last_played = 0
        self._spans: collections.deque[Span] = collections.deque(maxlen=256)
        self._run_start: int | None = None

    def played_frames(self) -> int:
        written, queued, when = self._at
        elapsed = max(0.0, self._now() - when)
        played = min(written, written - queued + int(elapsed * self.rate))
        played = max(played, self._last_played)
        self._last_played = played
        return played

    def span_at(self, position: int) -> Span | None:
        for span in reversed(self._spans):
            if span.start <= position < span.end:
                return span
            if span.end <= position:
                return span if position - span.end < self.period_frames else None
        return None

    def account(self, frames: int, level: float, queued: int) -> None:
        """``frames`` of speech level ``level`` went to the device, which now holds ``queued``."""
        start = self.written
        self.written += frames
        if level >= SILENCE_RMS:
            if self._run_start is None:
                self._run_start = start
        else:
            self._run_start = None
        self._spans.append(Span(start, self.written, level, self._run_start))
        self._at = (self.written, queued, self._now())

    def drop_queued(self, queued: int) -> None:
        """The device's ``queued`` frames were discarded: rewind the clock to what played."""
        played = max(self.written - queued, self._last_played)
        self.written = played
        while self._spans and self._spans[-1].start >= played:
            self._spans.pop()
        if self._spans and self._spans[-1].end > played:
            self._spans[-1].end = played
        self._run_start = None
        self._at = (played, 0, self._now())

    def end_run(self) -> None:
        """What follows starts a new speech run (a flush while no device plays)."""
        self._run_start = None


__all__ = ["PlaybackClock", "Span"]
