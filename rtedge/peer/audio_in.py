"""The input audio buffer of one session: PCM from the client's track, an energy VAD for
``server_vad`` / ``semantic_vad``, and commit/clear for push-to-talk.

Audio is kept as 48 kHz mono s16, the rate it arrives at over WebRTC, so that echo mode can play
back exactly what was committed. Times are milliseconds on the session's input timeline (all audio
received since the call began), the reference OpenAI uses for ``audio_start_ms``/``audio_end_ms``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Final, Literal

import av
import numpy as np
import numpy.typing as npt

from rtedge.media.dsp import WEBRTC_RATE, dbfs

RATE: Final = WEBRTC_RATE  # kept at the rate it arrives in
SAMPLES_PER_MS: Final = RATE // 1000
MIN_COMMIT_MS: Final = 100
#: A received frame louder than this (-60 dBFS RMS) carries sound; Opus's digital silence is
#: exactly zero, comfort noise well below.
VOICED_DBFS: Final = -60.0
#: Silence that ends a turn under semantic_vad, by eagerness (a stand-in for the semantic model).
SEMANTIC_SILENCE_MS: Final = {"low": 1500, "medium": 800, "high": 400, "auto": 800}

Pcm = npt.NDArray[np.int16]


def downmix(frame: av.AudioFrame) -> Pcm:
    """A received frame (aiortc gives s16 stereo interleaved, 48 kHz) as mono s16."""
    arr = frame.to_ndarray()
    channels = len(frame.layout.channels)
    if frame.format.is_planar:
        samples = arr.astype(np.int32)
        mono = samples.mean(axis=0) if channels > 1 else samples[0]
    else:
        samples = arr.reshape(-1, channels).astype(np.int32)
        mono = samples.mean(axis=1)
    return np.asarray(mono, dtype=np.int16)


@dataclass(frozen=True, slots=True)
class VadEvent:
    kind: Literal["speech_started", "speech_stopped"]
    ms: int


class EnergyVad:
    """Speech = frames louder than a threshold. ``threshold`` 0..1 maps linearly onto -70..-20 dBFS
    (0.5 -> -45 dBFS: room noise stays below, a voice at normal level is well above)."""

    START_MS: Final = 40  # loud audio needed before speech starts (rejects clicks)

    def __init__(self, config: dict[str, Any]) -> None:
        threshold = float(config.get("threshold") or 0.5)
        self.threshold_db = -70.0 + 50.0 * threshold
        self.prefix_ms = int(config.get("prefix_padding_ms") or 300)
        if config.get("type") == "semantic_vad":
            self.silence_ms = SEMANTIC_SILENCE_MS.get(str(config.get("eagerness")), 800)
        else:
            silence = config.get("silence_duration_ms")
            self.silence_ms = int(500 if silence is None else silence)
        self.speaking = False
        self._loud_ms = 0
        self._quiet_ms = 0

    def feed(self, pcm: Pcm, end_ms: int) -> VadEvent | None:
        """Feed one chunk ending at ``end_ms``; returns a transition if one happened."""
        dur = pcm.size // SAMPLES_PER_MS
        loud = dbfs(pcm) > self.threshold_db
        if not self.speaking:
            self._loud_ms = self._loud_ms + dur if loud else 0
            if self._loud_ms >= self.START_MS:
                self.speaking = True
                self._quiet_ms = 0
                start = end_ms - self._loud_ms
                return VadEvent("speech_started", max(0, start - self.prefix_ms))
            return None
        self._quiet_ms = 0 if loud else self._quiet_ms + dur
        if self._quiet_ms >= self.silence_ms:
            self.speaking = False
            self._loud_ms = 0
            return VadEvent("speech_stopped", end_ms)
        return None


class InputAudio:
    """The uncommitted input buffer plus the session's input timeline."""

    def __init__(self, max_s: float) -> None:
        self._chunks: deque[Pcm] = deque()
        self._samples = 0
        self._max_samples = int(max_s * RATE)
        self.total_samples = 0
        #: Live audio received with sound in it (``input_voiced_s``): a client that sends
        #: only silence between its turns keeps this at the length of its turns.
        self.voiced_samples = 0
        self.vad: EnergyVad | None = None
        # Least (arrival - timeline) seen, in seconds: the timeline on the local clock for the
        # frame that arrived with the least delay. Held-up frames (a busy sender or receiver,
        # network jitter) only arrive later, so they never lower it.
        self._offset_s: float | None = None

    @property
    def now_ms(self) -> int:
        return self.total_samples // SAMPLES_PER_MS

    def position_at(self, t: float) -> int | None:
        """Where the input timeline stood (ms) at local time ``t`` (``time.monotonic()``),
        judged by the audio that arrived with the least delay (``push(..., at=)``); None until
        some has. Past what had arrived by then when the incoming audio was held up."""
        if self._offset_s is None:
            return None
        return int((t - self._offset_s) * 1000)

    def idle_start(self, ended_at: float, received_ms: int) -> int:
        """Where an idle timer that started at local time ``ended_at`` (when ``received_ms`` of
        input had arrived) starts on the input timeline. That can be past the audio received by
        then (held up by a busy client, or by this process: it arrives in a burst later);
        counting from what had arrived would fire early."""
        at = self.position_at(ended_at)
        return received_ms if at is None else max(received_ms, at)

    @property
    def buffered_ms(self) -> float:
        return self._samples / SAMPLES_PER_MS

    def configure(self, turn_detection: dict[str, Any] | None) -> None:
        """Apply the session's turn detection (a new VAD starts idle)."""
        self.vad = EnergyVad(turn_detection) if turn_detection else None

    def push(self, pcm: Pcm, at: float | None = None) -> VadEvent | None:
        """One chunk of live audio, which arrived at local time ``at`` when given."""
        if dbfs(pcm) > VOICED_DBFS:
            self.voiced_samples += pcm.size
        self._chunks.append(pcm)
        self._samples += pcm.size
        self.total_samples += pcm.size
        if at is not None:
            offset = at - self.total_samples / RATE
            if self._offset_s is None or offset < self._offset_s:
                self._offset_s = offset
        event = self.vad.feed(pcm, self.now_ms) if self.vad is not None else None
        if self.vad is not None and not self.vad.speaking and event is None:
            # Between turns VAD keeps only the prefix padding that a new turn starts with.
            self._trim(self.vad.prefix_ms * SAMPLES_PER_MS + pcm.size)
        else:
            self._trim(self._max_samples)
        return event

    def append(self, pcm: Pcm) -> None:
        """Audio from ``input_audio_buffer.append`` (no VAD: it is not live audio)."""
        self._chunks.append(pcm)
        self._samples += pcm.size
        self.total_samples += pcm.size
        self._trim(self._max_samples)

    def take(self) -> Pcm:
        """Everything buffered (a commit); the buffer is left empty."""
        if not self._chunks:
            return np.zeros(0, dtype=np.int16)
        pcm = np.concatenate(list(self._chunks))
        self.clear()
        return pcm

    def clear(self) -> None:
        self._chunks.clear()
        self._samples = 0

    def _trim(self, keep: int) -> None:
        while self._chunks and self._samples - self._chunks[0].size >= keep:
            self._samples -= self._chunks.popleft().size
