"""The microphone's front end on the capture thread: echo cancellation against what the
speaker played, the wake word and a voice detector on the cleaned signal, and the hands-free
gate that decides whether the microphone may leave the device."""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from rtedge.audio.echo import TARGET_DELAY_MS, Aligner, EchoCanceller, ReferenceTap
from rtedge.audio.handsfree_gate import GateConfig, GateEvent, WakeGate
from rtedge.audio.linear_aec import LinearEchoCanceller
from rtedge.audio.wake import BLOCK as WAKE_BLOCK
from rtedge.audio.wake import WAKE_RATE, WakeWord
from rtedge.media.dsp import WEBRTC_RATE, Converter, Int16Array, Rechunker, rms
from rtedge.settings import AudioSettings
from rtedge.settings_handsfree import WakeSettings

log = logging.getLogger(__name__)

#: A voiced 20 ms frame must also be this loud (RMS, 0..1; -54 dBFS): WebRTC's VAD judges the
#: spectrum, not the level, and calls faint residual echo or hum speech now and then.
VOICE_FLOOR_RMS = 0.002
VAD_FRAME = WAKE_RATE // 50  # 20 ms at 16 kHz
#: Capture periods sent ahead of a turn that speech (not the wake word) opened, so its first
#: syllable is not lost to the onset detection. The mic track queues 5 packets at most.
PREROLL_PERIODS = 4
#: Periods per window in which a reference read past what was written moves it back.
BEYOND_WINDOW = 25
#: The echo reference is read this far behind the playback thread's earliest writes: a
#: playback thread this late has still written what the capture period needs.
REFERENCE_MARGIN_S = 0.02


@dataclass
class FrontendStats:
    """Read by the event loop (plain numbers: a torn read is off by one period at worst)."""

    periods: int = 0
    cpu_s: float = 0.0
    wakes: int = 0
    speech_turns: int = 0
    false_wakes: int = 0
    turns_ended: int = 0
    voiced_periods: int = 0


def needs_frontend(audio: AudioSettings, wake: WakeSettings | None) -> bool:
    return bool(
        audio.echo_cancel
        or audio.noise_suppression
        or audio.auto_gain
        or (wake is not None and wake.enabled)
    )


class Frontend:
    """``process(period)`` once per 20 ms capture period (48 kHz mono), on the capture thread;
    returns the periods to send (cleaned; more than one when a turn opens with its pre-roll)
    and whether the hands-free gate is open. ``on_event`` is called on the capture thread."""

    def __init__(
        self,
        audio: AudioSettings,
        wake: WakeSettings | None,
        *,
        tap: ReferenceTap | None,
        period_frames: int,
        on_event: Callable[[GateEvent], None],
        rate: int = WEBRTC_RATE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self._period_s = period_frames / rate
        self._on_event = on_event
        self.stats = FrontendStats()
        self.canceller: EchoCanceller | None = None
        if audio.echo_cancel or audio.noise_suppression or audio.auto_gain:
            self.canceller = EchoCanceller(
                rate,
                echo_cancel=audio.echo_cancel,
                noise_suppression=audio.noise_suppression,
                auto_gain=audio.auto_gain,
            )
        self.tap = tap if audio.echo_cancel else None
        self._aligner = Aligner(tap.rate if tap is not None else rate)
        self._realigned = 0  # frames the echo's own measured delay moved the reference by
        self.read_behind = 0
        self.reference_short = 0  # periods whose reference was not all written yet (silence)
        self._beyond, self._beyond_n = 1 << 62, 0  # least read past written, in a window
        #: Frames the reference was moved back for writes behind the clock that the aligner
        #: has not seen yet: when it does (the lead it measures drops by as much), the same
        #: lateness must not move the reference twice.
        self._behind_moved = 0
        self.realigns = 0
        self._clock = clock
        self._captured = 0  # capture frames, counted at the playback rate
        self._ref_converter: Converter | None = None
        if self.tap is not None and self.tap.rate != rate:
            self._ref_converter = Converter(self.tap.rate, 1, rate, 1)
        self.wake: WakeWord | None = None
        self.gate: WakeGate | None = None
        self._vad: Any = None
        if wake is not None and wake.enabled:
            import webrtcvad

            self.wake = WakeWord(wake)
            self._vad = webrtcvad.Vad(wake.vad_aggressiveness)
            self.gate = WakeGate(GateConfig.from_settings(wake, period_frames / rate))
        self._to16 = Converter(rate, 1, WAKE_RATE, 1)
        self.linear: LinearEchoCanceller | None = None
        if self.tap is not None and self.gate is not None:
            self.linear = LinearEchoCanceller(block=WAKE_BLOCK)
        self._far16 = Converter(rate, 1, WAKE_RATE, 1)
        self._mic16 = Converter(rate, 1, WAKE_RATE, 1)
        self._mic_blocks = Rechunker(WAKE_BLOCK, 1)
        self._far_blocks = Rechunker(WAKE_BLOCK, 1)
        self._vad_chunks = Rechunker(VAD_FRAME, 1)
        self._preroll: collections.deque[Int16Array] = collections.deque(maxlen=PREROLL_PERIODS)
        self.voice = False  # the last period was voiced (cleaned signal)

    @property
    def gate_open(self) -> bool:
        return self.gate is not None and self.gate.open

    def process(self, samples: Int16Array) -> tuple[list[Int16Array], bool]:
        t0 = time.thread_time()
        clean = samples
        far = self._reference(samples.size) if self.tap is not None else None
        if self.canceller is not None:
            # ERLE is measured while no turn is open: a talking user is not residual echo
            clean = self.canceller.process(
                samples, samples if far is None else far, measure=not self.gate_open
            )
            self._realign(self.canceller)
        out = [clean]
        if self.gate is not None and self.wake is not None:
            heard = self._to16.convert(clean)
            hit = self.wake.process(self._wake_input(samples, heard, far))
            # the voice detector hears what the service hears: AEC3's residual suppression
            # leaves no echo that would keep a turn open while the assistant talks
            self.voice = self._voiced(heard)
            event = self.gate.step(hit, self.voice)
            if event is not None:
                self._count(event)
                if event is GateEvent.SPEECH:
                    out = [*self._preroll, clean]
                    self._preroll.clear()
                if event in (GateEvent.WAKE, GateEvent.SPEECH):
                    # one phrase, one detection: no re-trigger inside the turn it opened
                    self.wake.mute_for(1.0)
                self._on_event(event)
            self._preroll.append(clean)
        self.stats.periods += 1
        self.stats.cpu_s += time.thread_time() - t0
        return out, self.gate_open

    def _wake_input(
        self, samples: Int16Array, heard: Int16Array, far: Int16Array | None
    ) -> Int16Array:
        """16 kHz audio for the wake word: with echo cancellation, the mic minus the linear
        echo estimate (see ``rtedge.audio.linear_aec``), which keeps a voice in double talk."""
        if far is None or self.linear is None:
            return heard
        mic_blocks = self._mic_blocks.push(self._mic16.convert(samples))
        far_blocks = self._far_blocks.push(self._far16.convert(far))
        parts = [self.linear.process(m, f) for m, f in zip(mic_blocks, far_blocks, strict=False)]
        if not parts:
            return np.zeros(0, dtype=np.int16)
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def _realign(self, canceller: EchoCanceller) -> None:
        """The echo measured where AEC3 cannot use it well (see ``GOOD_DELAY_MS``): whatever
        the clocks said, the reference moves so that the echo lags it by the target. Reading
        newer positions puts the reference further ahead of its echo."""
        lag = canceller.realign_ms
        if lag is None or self.tap is None:
            return
        self._realigned += round((TARGET_DELAY_MS - lag) * self.tap.rate / 1000)
        self.realigns += 1
        canceller.forget_delay()
        log.info("echo reference moved: the echo lagged it by %.0f ms", lag)

    def _past_written(self, beyond: int, margin: int) -> None:
        """A reference read past what the playback thread has written is silence: AEC3 then
        cancels nothing. Late writes do that for a while; writes that fell behind the clock
        for good (the pacer of a sink that never blocks re-anchoring, a stalled thread) do it
        for every period, and then the reference moves back, at once after a window."""
        self._beyond = min(self._beyond, beyond)
        self._beyond_n += 1
        if self._beyond_n < BEYOND_WINDOW:
            return
        if self._beyond > 0:
            self._realigned -= self._beyond + margin
            self._behind_moved += self._beyond + margin
            self.realigns += 1
            if self.canceller is not None:
                self.canceller.forget_delay()
        self._beyond, self._beyond_n = 1 << 62, 0

    def _reference(self, n: int) -> Int16Array:
        """What the speaker was handed for the period just captured: aligned on the capture
        timeline (see ``Aligner``), so the echo in the mic always comes after it, and
        ``REFERENCE_MARGIN_S`` behind the playback thread's earliest writes, so that one
        running late has still written it (AEC3 finds the constant delay this adds)."""
        tap = self.tap
        assert tap is not None
        want = n * tap.rate // self.rate
        self._captured += want
        written, written_at = tap.position()
        before = self._aligner.offset
        offset = self._aligner.update(written, written_at, self._captured, self._clock())
        if before is not None and offset < before and self._behind_moved:
            undo = min(self._behind_moved, before - offset)
            self._realigned += undo
            self._behind_moved -= undo
        margin = int(REFERENCE_MARGIN_S * tap.rate)
        end = self._captured + offset + self._realigned - margin
        self.read_behind = written - end  # frames: the reference's distance to the newest
        if end > written:
            self.reference_short += 1
        self._past_written(end - written, margin)
        far = tap.read(end, want)
        if self.canceller is not None:
            self.canceller.set_output_delay(tap.queued * 1000 // tap.rate)
        if self._ref_converter is not None:
            far = self._ref_converter.convert(far)
            if far.size != n:
                far = np.resize(far, n) if far.size else np.zeros(n, dtype=np.int16)
        return far

    def _voiced(self, s16: Int16Array) -> bool:
        voiced = False
        for frame in self._vad_chunks.push(s16):
            if rms(frame) >= VOICE_FLOOR_RMS and self._vad.is_speech(frame.tobytes(), WAKE_RATE):
                voiced = True
        if voiced:
            self.stats.voiced_periods += 1
        return voiced

    def _count(self, event: GateEvent) -> None:
        s = self.stats
        if event is GateEvent.WAKE:
            s.wakes += 1
        elif event is GateEvent.SPEECH:
            s.speech_turns += 1
        elif event is GateEvent.FALSE_WAKE:
            s.false_wakes += 1
        else:
            s.turns_ended += 1

    def snapshot(self) -> dict[str, Any]:
        """For ``/status``: what the front end heard and how well it cancels the echo."""
        s = self.stats
        data: dict[str, Any] = {
            "wake_detections": s.wakes,
            "false_wakes": s.false_wakes,
            "speech_turns": s.speech_turns,
            "turns_ended": s.turns_ended,
            "gate_open": self.gate_open,
            "cpu_seconds": round(s.cpu_s, 3),
            "cpu_percent": round(100 * s.cpu_s / max(1e-9, s.periods * self._period_s), 2),
        }
        if self.wake is not None:
            data["wake_phrase"] = self.wake.phrase
        if self.canceller is not None and self.canceller.echo_cancel:
            data["erle_db"] = self.canceller.erle_db
            data["echo_delay_ms"] = self.canceller.delay_ms
        return data


__all__ = ["Frontend", "FrontendStats", "needs_frontend"]
