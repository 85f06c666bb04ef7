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

from rtedge.audio.echo import Aligner, EchoCanceller, ReferenceTap
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
        self._aligner = Aligner()
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

    def _reference(self, n: int) -> Int16Array:
        """What the speaker was handed for the period just captured: aligned on the capture
        timeline (see ``Aligner``), so the echo in the mic always comes after it."""
        tap = self.tap
        assert tap is not None
        want = n * tap.rate // self.rate
        self._captured += want
        offset = self._aligner.update(tap.written_to - self._captured)
        far = tap.read(self._captured + offset, want)
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
