"""The ``[wake]`` section: the local wake word and the hands-free turn it starts."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from rtedge.settings_base import _Section

#: Models inside the pymicro-wakeword wheel.
BUNDLED_WAKE_MODELS = ("okay_nabu", "hey_jarvis", "hey_mycroft", "alexa")


class WakeSettings(_Section):
    enabled: bool = False
    """Listen locally for a wake word; until it is heard no microphone audio leaves the
    device (the call stays up and the mic track sends silence, as with the button up)."""
    model: str = "okay_nabu"
    """A bundled model (``okay_nabu``, ``hey_jarvis``, ``hey_mycroft``, ``alexa``) or the path
    of a microWakeWord model's ``.json`` (its ``model`` key names the ``.tflite`` beside it)."""
    threshold: float | None = Field(default=None, gt=0.0, lt=1.0)
    """Probability a detection needs; unset keeps the model's own ``probability_cutoff``.
    Higher: fewer false wakes, more missed ones."""
    sliding_window: int | None = Field(default=None, ge=1, le=50)
    """Probabilities averaged per decision; unset keeps the model's ``sliding_window_size``."""
    refractory_s: float = Field(default=2.0, ge=0.0, le=60.0)
    """After a detection, further detections are ignored this long (one phrase fires the
    model on several consecutive windows)."""
    end_silence_ms: int = Field(default=700, ge=200, le=5000)
    """Silence after speech that ends a hands-free turn (the local voice detector decides);
    with ``realtime.hands_free`` the service's VAD ends it too."""
    no_speech_s: float = Field(default=4.0, ge=0.5, le=30.0)
    """A wake not followed by speech within this is a false wake: the turn ends unsent."""
    max_turn_s: float = Field(default=30.0, ge=1.0, le=300.0)
    """Longest hands-free utterance: the turn ends here however long the talk goes on."""
    follow_up_s: float = Field(default=5.0, ge=0.0, le=60.0)
    """After a reply to a wake turn has played, speech within this starts the next turn
    without the wake word (0: always the wake word)."""
    barge_in_speech: bool = False
    """Plain speech (no wake word) interrupts a reply to a wake turn, as a press would. The
    wake word always interrupts. Needs ``audio.echo_cancel`` on a speaker in the same room."""
    earcon: bool = True
    """Play the press/release earcons when a hands-free turn starts and ends."""
    vad_aggressiveness: int = Field(default=2, ge=0, le=3)
    """WebRTC VAD mode (0-3) of the local voice detector: higher says "speech" less often."""

    @field_validator("model")
    @classmethod
    def _model(cls, v: str) -> str:
        if v in BUNDLED_WAKE_MODELS:
            return v
        path = Path(v)
        if path.suffix != ".json":
            raise ValueError(
                f"not a bundled model ({', '.join(BUNDLED_WAKE_MODELS)}) nor a path to a "
                "microWakeWord .json"
            )
        if not path.is_file():
            raise ValueError(f"{v}: no such file")
        return v


__all__ = ["BUNDLED_WAKE_MODELS", "WakeSettings"]
