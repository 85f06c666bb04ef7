"""Is the speaker playing a voice right now? Judged from the level of the audio actually played.

A service's events (``output_audio_buffer.started``/``stopped``) may be missing, late or shaped
differently (GPT-Live and independent servers send none); what the speaker plays is a fact. The
detector turns the playout's level at the playback position into a "voice on / voice off"
state: a run of sound of at least ``onset_s`` starts it, silence of ``hangover_s`` ends it (the
pauses between words and sentences of one reply are shorter). Time comes from an injected clock,
so the logic is tested without sleeping.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from rtedge.timers import LoopTimers, Timer, Timers

#: RMS (0..1, after the volume) above which the playout counts as voice: -46 dBFS, well above
#: the comfort noise a service may send between replies (about -60 dBFS and below).
VOICE_RMS = 0.005
ONSET_S = 0.04
HANGOVER_S = 0.8
POLL_S = 0.02
#: Polling goes on this long after the last frame (audio still in the device and its path).
LINGER_S = 0.5
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

    @property
    def sounding(self) -> bool:
        """A run of sound is under way that has not (yet) made ``speaking``."""
        return self._sound_from is not None

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


class VoiceWatch:
    """Runs the detector when the speaker's level can change: on each frame handed to the
    playout (the loop is awake for it anyway), and every ``interval_s`` once the frames stop,
    until the speaker has been quiet with nothing left to play for ``linger_s``. A plain 50 Hz
    poll woke the loop 50 times a second also when nothing played (the audio benchmark's main
    thread: about 45 wakeups a second more than before the detector)."""

    def __init__(
        self,
        detector: SpeakingDetector,
        level: Callable[[], float],
        pending: Callable[[], int],
        *,
        timers: Timers | None = None,
        interval_s: float = POLL_S,
        linger_s: float = LINGER_S,
    ) -> None:
        self.detector = detector
        self._level = level
        self._pending = pending  # frames written but not yet played
        self._timers: Timers = timers or LoopTimers()
        self._interval_s = interval_s
        self._linger_s = linger_s
        self._on_change: Callable[[bool], None] | None = None
        self._handle: Timer | None = None
        self._last_frame = float("-inf")

    def start(self, on_change: Callable[[bool], None]) -> None:
        self._on_change = on_change

    def stop(self) -> None:
        self._on_change = None
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def frame(self) -> None:
        """A frame was handed to the playout (on the loop): judge now; the fallback poll
        starts only if no further frame comes within two intervals."""
        if self._on_change is None:
            return
        self._last_frame = self._timers.time()
        self._check()
        if self._handle is not None:
            self._handle.cancel()
        self._handle = self._timers.call_later(2 * self._interval_s, self._poll)

    def _poll(self) -> None:
        self._handle = None
        if self._on_change is None:
            return
        self._check()
        det = self.detector
        if (
            det.speaking
            or det.sounding
            or self._pending() > 0
            or self._timers.time() - self._last_frame < self._linger_s
        ):
            self._handle = self._timers.call_later(self._interval_s, self._poll)

    def _check(self) -> None:
        changed = self.detector.update(self._level())
        if changed is not None and self._on_change is not None:
            # not from inside the playout's push: the listener may flush or hold the output
            on_change = self._on_change
            self._timers.call_later(0, lambda: on_change(changed))


__all__ = ["HANGOVER_S", "VOICE_RMS", "SpeakingDetector", "VoiceWatch"]
