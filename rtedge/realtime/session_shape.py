"""The session object each provider expects (PROTOCOL.md §4 and §9).

OpenAI (and the local peer) take the GA shape; rtAV still documents a flat, beta-like session with
its own ``face``/``driving``/``modalities``. ``[realtime] session`` is merged over either, so an
operator can pass provider fields through without a code change.
"""

from __future__ import annotations

import copy
from typing import Any

from rtedge.settings import RealtimeSettings

TRANSCRIBE_MODEL = "gpt-4o-mini-transcribe"


def _turn_detection(settings: RealtimeSettings) -> dict[str, Any] | None:
    if not settings.hands_free:
        return None  # push-to-talk: the button decides when a turn ends
    return {
        "type": "server_vad",
        "threshold": 0.5,
        "prefix_padding_ms": 300,
        "silence_duration_ms": 500,
        "create_response": True,
        "interrupt_response": True,
    }


def build_session(settings: RealtimeSettings, *, want_images: bool = False) -> dict[str, Any]:
    if settings.provider == "rtav":
        session: dict[str, Any] = {
            "type": "realtime",
            "model": settings.model,
            "instructions": settings.instructions,
            "voice": settings.voice,
            "modalities": ["audio", "text", "image"] if want_images else ["audio", "text"],
            "turn_detection": _turn_detection(settings),
        }
    else:
        audio_input: dict[str, Any] = {"turn_detection": _turn_detection(settings)}
        if settings.log_transcripts:
            audio_input["transcription"] = {"model": TRANSCRIBE_MODEL}
        session = {
            "type": "realtime",
            "model": settings.model,
            "instructions": settings.instructions,
            "output_modalities": ["audio"],
            "audio": {"input": audio_input, "output": {"voice": settings.voice}},
        }
    return deep_merge(session, settings.session)


def session_update(session: dict[str, Any]) -> dict[str, Any]:
    """A ``session.update`` restating the session: the model cannot change after start."""
    body = {k: v for k, v in session.items() if k != "model"}
    return {"type": "session.update", "session": body}


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out
