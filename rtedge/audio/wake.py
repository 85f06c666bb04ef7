"""The local wake word: a microWakeWord model (pymicro-wakeword) run on 16 kHz audio, with a
refractory time so one spoken phrase is one detection."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from rtedge.media.dsp import Int16Array
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


def _load(config: Path, data: dict[str, Any], settings: WakeSettings) -> Any:
    """The model through the library's public loader; overrides go in a copy of its json
    (the model file named by its absolute path), so nothing private is touched."""
    from pymicro_wakeword import MicroWakeWord

    if settings.threshold is None and settings.sliding_window is None:
        return MicroWakeWord.from_config(config)
    micro = dict(data["micro"])
    if settings.threshold is not None:
        micro["probability_cutoff"] = settings.threshold
    if settings.sliding_window is not None:
        micro["sliding_window_size"] = settings.sliding_window
    copy = dict(data, micro=micro, model=str((config.parent / data["model"]).resolve()))
    with tempfile.TemporaryDirectory(prefix="rtedge-wake-") as tmp:
        path = Path(tmp) / config.name
        path.write_text(json.dumps(copy))
        return MicroWakeWord.from_config(path)


class WakeWord:
    """Feed 16 kHz mono s16 in any block size; ``process`` returns True on a detection.

    Time is counted in samples fed, so the refractory time is audio time (testable without
    a clock, and right however late the capture thread runs)."""

    def __init__(self, settings: WakeSettings) -> None:
        try:
            from pymicro_wakeword import MicroWakeWordFeatures

            config = _model_config(settings.model)
            data = json.loads(config.read_text())
            self._ww: Any = _load(config, data, settings)
            self._features: Any = MicroWakeWordFeatures()
            self.phrase = str(data["wake_word"])
        except Exception as exc:  # ImportError, OSError (glibc, tflite), bad json
            raise WakeError(f"wake model {settings.model}: {exc}") from exc
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
