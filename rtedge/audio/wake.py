"""The local wake word: a microWakeWord model (pymicro-wakeword) run on 16 kHz audio, with a
refractory time so one spoken phrase is one detection."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from rtedge.audio.dsp import Int16Array
from rtedge.settings_handsfree import BUNDLED_WAKE_MODELS, WakeSettings

WAKE_RATE = 16000
BLOCK = 160  # 10 ms: the feature front end's step


class WakeError(Exception):
    """The wake-word library or model cannot be loaded here."""


def _model_config(model: str) -> Path:
    if model in BUNDLED_WAKE_MODELS:
        import pymicro_wakeword

        return Path(pymicro_wakeword.__file__).parent / "models" / f"{model}.json"
    return Path(model)


class WakeWord:
    """Feed 16 kHz mono s16 in any block size; ``process`` returns True on a detection.

    Time is counted in samples fed, so the refractory time is audio time (testable without
    a clock, and right however late the capture thread runs)."""

    def __init__(self, settings: WakeSettings) -> None:
        try:
            from pymicro_wakeword import MicroWakeWord, MicroWakeWordFeatures

            config = _model_config(settings.model)
            self._ww: Any = MicroWakeWord.from_config(config)
            self._features: Any = MicroWakeWordFeatures()
            self.phrase = str(json.loads(config.read_text())["wake_word"])
        except Exception as exc:  # ImportError, OSError (glibc, tflite), bad json
            raise WakeError(f"wake model {settings.model}: {exc}") from exc
        if settings.threshold is not None:
            self._ww.probability_cutoff = settings.threshold
        if settings.sliding_window is not None:
            from collections import deque

            self._ww.sliding_window_size = settings.sliding_window
            self._ww._probabilities = deque(maxlen=settings.sliding_window)
        self.threshold = float(self._ww.probability_cutoff)
        self._refractory = int(settings.refractory_s * WAKE_RATE)
        self._fed = 0
        self._last_hit: int | None = None
        self.detections = 0
        self.peak = 0.0  # highest probability since the last read of it (for status/debug)

    def process(self, samples: Int16Array) -> bool:
        self._fed += samples.size
        hit = False
        for features in self._features.process_streaming(samples.tobytes()):
            prob = self._ww.process_streaming_prob(features)
            if prob is None:
                continue
            self.peak = max(self.peak, prob)
            if prob > self.threshold:
                hit = True
        if not hit:
            return False
        if self._last_hit is not None and self._fed - self._last_hit < self._refractory:
            return False
        self._last_hit = self._fed
        self.detections += 1
        return True

    def mute_for(self, seconds: float) -> None:
        """Ignore detections for ``seconds`` of audio from now (a turn just opened)."""
        self._last_hit = self._fed - self._refractory + int(seconds * WAKE_RATE)


def library_status() -> dict[str, str]:
    """For ``rtedge check``: whether the hands-free libraries load on this machine."""
    out: dict[str, str] = {}
    try:
        from pymicro_wakeword import MicroWakeWord, Model

        ww = MicroWakeWord.from_builtin(Model.OKAY_NABU)
        ww.process_streaming_prob(np.zeros((1, 40), dtype=np.float32))
        out["wake"] = "ok (pymicro-wakeword, bundled: " + ", ".join(BUNDLED_WAKE_MODELS) + ")"
    except Exception as exc:
        out["wake"] = f"unavailable: {str(exc).splitlines()[0][:160] if str(exc) else exc!r}"
    try:
        from pywebrtc_audio import AudioProcessor

        ap = AudioProcessor(48000, 1, echo_cancellation=True, noise_suppression=True)
        block = np.zeros(480, dtype=np.int16)
        ap.process(block, block)
        out["aec"] = "ok (pywebrtc-audio AEC3, NS, AGC2)"
    except Exception as exc:
        out["aec"] = f"unavailable: {str(exc).splitlines()[0][:160] if str(exc) else exc!r}"
    try:
        import webrtcvad

        webrtcvad.Vad(2).is_speech(bytes(320), 16000)
        out["vad"] = "ok (webrtcvad)"
    except Exception as exc:
        out["vad"] = f"unavailable: {str(exc).splitlines()[0][:160] if str(exc) else exc!r}"
    return out


__all__ = ["WAKE_RATE", "WakeError", "WakeWord", "library_status"]
