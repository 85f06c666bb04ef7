"""Is the speaker playing a voice right now? Judged from the level of the audio actually played.

A service's events (``output_audio_buffer.started``/``stopped``) may be missing, late or shaped
differently (GPT-Live and independent servers send none); what the speaker plays is a fact. The
detector turns the playout's level at the playback position into a "voice on / voice off"
state: a run of sound of at least ``onset_s`` starts it, silence of ``hangover_s`` ends it (the
pauses between words and sentences of one reply are shorter). Time comes from an injected clock,
so the logic is tested without sleeping.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

#: RMS (0..1, after the volume) above which the playout counts as voice: -46 dBFS, well above
#: the comfort noise a service may send between replies (about -60 dBFS and below).
VOICE_RMS = 0.005
ONSET_S = 0.04
HANGOVER_S = 0.8
POLL_S = 0.02
_EPS = 1e-6  # clock readings are floats: 40 ms measured as 39.99999 ms is 40 ms


class SpeakingDetector:
    def __init__(
        self,
        *,
        threshold: float = VOICE_RMS,
        onset_s: float = ONSET_S,
        hangover_s: float = HANGOVER_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.threshold = threshold
        self.onset_s = onset_s
        self.hangover_s = hangover_s
        self._clock = clock
        self.speaking = False
        #: When ``speaking`` last changed (clock time).
        self.since = clock()
        self._sound_from: float | None = None  # start of the current run of sound
        self._last_sound: float | None = None

    def update(self, level: float) -> bool | None:
        """Feed the level now at the speaker; returns the new state when it changed."""
        now = self._clock()
        if level >= self.threshold:
            if self._sound_from is None:
                self._sound_from = now
            self._last_sound = now
            if not self.speaking and now - self._sound_from >= self.onset_s - _EPS:
                return self._set(True, now)
            return None
        self._sound_from = None
        if self.speaking and (
            self._last_sound is None or now - self._last_sound >= self.hangover_s - _EPS
        ):
            return self._set(False, now)
        return None

    def reset(self) -> bool | None:
        """The playout was flushed (barge-in): nothing is audible any more."""
        self._sound_from = self._last_sound = None
        if self.speaking:
            return self._set(False, self._clock())
        return None

    def _set(self, speaking: bool, now: float) -> bool:
        self.speaking = speaking
        self.since = now
        return speaking


async def watch(
    detector: SpeakingDetector,
    level: Callable[[], float],
    on_change: Callable[[bool], None],
    interval_s: float = POLL_S,
) -> None:
    """Poll the playout level every ``interval_s`` and report each change (runs until
    cancelled). A poll is a lookup in the playout's recent spans: cheap enough for 50 Hz."""
    while True:
        await asyncio.sleep(interval_s)
        changed = detector.update(level())
        if changed is not None:
            on_change(changed)


__all__ = ["HANGOVER_S", "VOICE_RMS", "SpeakingDetector", "watch"]
