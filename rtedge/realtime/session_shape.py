"""The session object each provider expects (PROTOCOL.md §4 and §9).

OpenAI (and the local peer) take the GA shape; rtAV still documents a flat, beta-like session with
its own ``face``/``driving``/``modalities``. ``[realtime] session`` is merged over either, so an
operator can pass provider fields through without a code change.
"""

from __future__ import annotations

import copy
from typing import Any, Final

from rtedge.settings import RealtimeSettings

#: Not on the ``openai`` package's deprecated list (rtedge.protocol.catalog), unlike
#: ``gpt-4o-mini-transcribe`` (shutdown announced for 2027-02-26).
TRANSCRIBE_MODEL = "gpt-transcribe"

#: rtAV's flat fields and where a GA session keeps them (a service may echo either shape).
_FLAT_TO_GA: Final = {
    ("voice",): ("audio", "output", "voice"),
    ("turn_detection",): ("audio", "input", "turn_detection"),
}


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


def refused_fields(asked: dict[str, Any], got: dict[str, Any]) -> list[str]:
    """Fields of the ``session.update`` the service reports back with another value: each as
    ``path (asked ..., got ...)``. A field it does not echo at all is not counted (services echo
    different subsets); a field it does echo must match."""
    out: list[str] = []
    for path, want in _leaves(asked, ()):
        found, have = _lookup(got, path)
        if not found and path in _FLAT_TO_GA:
            found, have = _lookup(got, _FLAT_TO_GA[path])
        if found and have != want:
            out.append(f"{'.'.join(path)} (asked {want!r:.60}, got {have!r:.60})")
    return out


def _leaves(value: dict[str, Any], path: tuple[str, ...]) -> list[tuple[tuple[str, ...], Any]]:
    out: list[tuple[tuple[str, ...], Any]] = []
    for key, sub in value.items():
        if isinstance(sub, dict) and sub:
            out += _leaves(sub, (*path, key))
        else:
            out.append(((*path, key), sub))
    return out


def _lookup(value: Any, path: tuple[str, ...]) -> tuple[bool, Any]:
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return False, None
        value = value[key]
    return True, value


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out
