"""Session configuration: the effective GA session, strict validation of updates, partial merge.

The strict session models (``rtedge.protocol.strict_session``, generated from the ``openai``
package) validate values and types but let unknown fields through (``extra="allow"``), so unknown
fields are found by walking ``model_extra`` of every validated sub-model: the same
model tree OpenAI's schema describes, and the error codes OpenAI sends (``unknown_parameter``,
``missing_required_parameter``, ``invalid_value``, ``invalid_type``) with a dotted ``param``.

rtAV's extension fields ``face``, ``driving`` and ``modalities`` are accepted as such. rtAV's flat
``voice`` and ``turn_detection`` are accepted only in an rtAV-shaped session (one that carries an
extension field), where they mean ``audio.output.voice`` and ``audio.input.turn_detection``; in a
plain GA session they stay the beta fields OpenAI rejects.
"""

from __future__ import annotations

import copy
from typing import Any, Final

from pydantic import BaseModel, ValidationError

from rtedge.protocol.strict_session import RealtimeSessionCreateRequest

JsonDict = dict[str, Any]

RTAV_FIELDS: Final = frozenset({"face", "driving", "modalities"})
RTAV_MODALITIES: Final = frozenset({"audio", "text", "image"})

SERVER_VAD_DEFAULTS: Final[JsonDict] = {
    "type": "server_vad",
    "threshold": 0.5,
    "prefix_padding_ms": 300,
    "silence_duration_ms": 500,
    "idle_timeout_ms": None,
    "create_response": True,
    "interrupt_response": True,
}
SEMANTIC_VAD_DEFAULTS: Final[JsonDict] = {
    "type": "semantic_vad",
    "eagerness": "auto",
    "create_response": True,
    "interrupt_response": True,
}
# Objects merged key by key by session.update; every other field is replaced as a whole
# (OpenAI replaces turn_detection, tools, format... wholesale).
_MERGED_PATHS: Final = frozenset({(), ("audio",), ("audio", "input"), ("audio", "output")})


class SessionError(Exception):
    """A rejected session; carries OpenAI's error ``code`` and ``param``."""

    def __init__(self, message: str, code: str, param: str | None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.param = param


def default_session(
    session_id: str, model: str, instructions: str, expires_at: int | None
) -> JsonDict:
    """The full session OpenAI reports in ``session.created`` when the client configured nothing:
    audio out, server VAD on, voice ``marin``."""
    return {
        "type": "realtime",
        "object": "realtime.session",
        "id": session_id,
        "model": model,
        "output_modalities": ["audio"],
        "instructions": instructions,
        "tools": [],
        "tool_choice": "auto",
        "max_output_tokens": "inf",
        "tracing": None,
        "truncation": "auto",
        "prompt": None,
        "include": None,
        "expires_at": expires_at,
        "audio": {
            "input": {
                "format": {"type": "audio/pcm", "rate": 24000},
                "transcription": None,
                "noise_reduction": None,
                "turn_detection": dict(SERVER_VAD_DEFAULTS),
            },
            "output": {
                "format": {"type": "audio/pcm", "rate": 24000},
                "voice": "marin",
                "speed": 1.0,
            },
        },
    }


def validate_update(raw: Any, prefix: str = "session", rtav_active: bool = False) -> JsonDict:
    """Check one client-supplied session object; return it normalized (rtAV flat ``voice`` moved
    under ``audio.output``). Raises SessionError with OpenAI's code and param."""
    if not isinstance(raw, dict):
        raise SessionError(
            f"Invalid type for '{prefix}': expected an object, but got {_json_type(raw)} instead.",
            "invalid_type",
            prefix,
        )
    if "type" not in raw:
        raise SessionError(
            f"Missing required parameter: '{prefix}.type'.",
            "missing_required_parameter",
            f"{prefix}.type",
        )
    if raw["type"] != "realtime":
        raise SessionError(
            f"Invalid value: {raw['type']!r}. This service supports sessions of type 'realtime'.",
            "invalid_value",
            f"{prefix}.type",
        )
    ext = {k: raw[k] for k in RTAV_FIELDS if k in raw}
    body = {k: v for k, v in raw.items() if k not in RTAV_FIELDS}
    if rtav_active or ext:
        body = _move_flat_fields(body)
    _check_extension(ext, prefix)
    try:
        model = RealtimeSessionCreateRequest.model_validate(body)
    except ValidationError as exc:
        raise from_validation(exc, body, prefix) from None
    unknown = first_extra(model, prefix)
    if unknown is not None:
        raise SessionError(f"Unknown parameter: '{unknown}'.", "unknown_parameter", unknown)
    _check_ranges(body, prefix)
    return {**body, **ext}


def merge(effective: JsonDict, update: JsonDict) -> JsonDict:
    """``session.update`` semantics: a partial merge of ``update`` into ``effective`` (a new dict).
    Nested ``audio`` objects merge key by key; any other field is replaced; VAD defaults filled."""
    merged = _merge(effective, update, ())
    audio_in = merged.get("audio", {}).get("input", {})
    td = audio_in.get("turn_detection")
    if isinstance(td, dict):
        base = SERVER_VAD_DEFAULTS if td.get("type") == "server_vad" else SEMANTIC_VAD_DEFAULTS
        audio_in["turn_detection"] = {**base, **td}
    return merged


def check_voice_change(effective: JsonDict, update: JsonDict, audio_produced: bool) -> None:
    """OpenAI refuses a new voice once the conversation holds assistant audio."""
    new_voice = ((update.get("audio") or {}).get("output") or {}).get("voice")
    old_voice = (effective["audio"].get("output") or {}).get("voice")
    if new_voice is not None and audio_produced and new_voice != old_voice:
        raise SessionError(
            "Cannot update a conversation's voice if assistant audio is present.",
            "cannot_update_voice",
            "session.audio.output.voice",
        )


def check_append_format(effective: JsonDict) -> None:
    """``input_audio_buffer.append`` carries base64 ``audio/pcm``: the only input format here."""
    fmt = ((effective["audio"].get("input") or {}).get("format") or {}).get("type")
    if fmt not in (None, "audio/pcm"):
        raise SessionError(
            f"input_audio_buffer.append takes audio/pcm only here (session has {fmt}).",
            "invalid_value",
            "audio",
        )


def _merge(old: JsonDict, new: JsonDict, path: tuple[str, ...]) -> JsonDict:
    out = copy.deepcopy(old)
    for key, value in new.items():
        sub = (*path, key)
        if sub in _MERGED_PATHS and isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value, sub)
        else:
            out[key] = copy.deepcopy(value)
    return out


#: rtAV's flat (beta-like) fields and where the GA session keeps them.
_FLAT_FIELDS: Final = {"voice": ("output", "voice"), "turn_detection": ("input", "turn_detection")}


def _move_flat_fields(body: JsonDict) -> JsonDict:
    body = dict(body)
    for flat, (direction, key) in _FLAT_FIELDS.items():
        if flat not in body:
            continue
        value = body.pop(flat)
        audio = dict(body.get("audio") or {})
        part = dict(audio.get(direction) or {})
        part.setdefault(key, value)
        audio[direction] = part
        body["audio"] = audio
    return body


def _check_extension(ext: JsonDict, prefix: str) -> None:
    for key in ("face", "driving"):
        if key in ext and not isinstance(ext[key], str | None):
            raise SessionError(
                f"Invalid type for '{prefix}.{key}': expected a string.",
                "invalid_type",
                f"{prefix}.{key}",
            )
    if "modalities" in ext:
        mods = ext["modalities"]
        if not isinstance(mods, list) or not all(isinstance(m, str) for m in mods):
            raise SessionError(
                f"Invalid type for '{prefix}.modalities': expected an array of strings.",
                "invalid_type",
                f"{prefix}.modalities",
            )
        for i, m in enumerate(mods):
            if m not in RTAV_MODALITIES:
                raise SessionError(
                    f"Invalid value: {m!r}. Supported values are: 'audio', 'text' and 'image'.",
                    "invalid_value",
                    f"{prefix}.modalities[{i}]",
                )


def _check_ranges(body: JsonDict, prefix: str) -> None:
    """Constraints the schema states in prose (the generated models do not enforce them)."""
    mods = body.get("output_modalities")
    if isinstance(mods, list) and len(set(mods)) > 1:
        raise SessionError(
            "Invalid value: output_modalities may be ['audio'] or ['text'], not both.",
            "invalid_value",
            f"{prefix}.output_modalities",
        )
    mot = body.get("max_output_tokens")
    if isinstance(mot, int) and not 1 <= mot <= 4096:
        raise SessionError(
            f"Invalid 'max_output_tokens': integer above maximum or below minimum ({mot}).",
            "invalid_value",
            f"{prefix}.max_output_tokens",
        )
    audio = body.get("audio") or {}
    speed = (audio.get("output") or {}).get("speed")
    if isinstance(speed, int | float) and not 0.25 <= speed <= 1.5:
        raise SessionError(
            f"Invalid 'audio.output.speed': {speed} is outside 0.25-1.5.",
            "invalid_value",
            f"{prefix}.audio.output.speed",
        )
    td = (audio.get("input") or {}).get("turn_detection")
    if isinstance(td, dict):
        thr = td.get("threshold")
        if isinstance(thr, int | float) and not 0.0 <= thr <= 1.0:
            raise SessionError(
                f"Invalid 'threshold': {thr} is outside 0.0-1.0.",
                "invalid_value",
                f"{prefix}.audio.input.turn_detection.threshold",
            )
        idle = td.get("idle_timeout_ms")
        if isinstance(idle, int) and not 5000 <= idle <= 30000:
            raise SessionError(
                f"Invalid 'idle_timeout_ms': {idle} is outside 5000-30000.",
                "invalid_value",
                f"{prefix}.audio.input.turn_detection.idle_timeout_ms",
            )


def first_extra(model: BaseModel, path: str) -> str | None:
    """Dotted path of the first field no model in the tree declares (depth-first, in order)."""
    if model.model_extra:
        return _join(path, next(iter(model.model_extra)))
    for name in type(model).model_fields:
        found = _extra_in(getattr(model, name), _join(path, name))
        if found is not None:
            return found
    return None


def _extra_in(value: Any, path: str) -> str | None:
    if isinstance(value, BaseModel):
        return first_extra(value, path)
    if isinstance(value, list):
        for i, v in enumerate(value):
            found = _extra_in(v, f"{path}[{i}]")
            if found is not None:
                return found
    return None


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def from_validation(exc: ValidationError, data: Any, prefix: str) -> SessionError:
    err = exc.errors(include_url=False)[0]
    missing = err["type"] == "missing"
    param = error_param(prefix, err["loc"], data, missing)
    if missing:
        return SessionError(
            f"Missing required parameter: '{param}'.", "missing_required_parameter", param
        )
    kind = err["type"]
    code = "invalid_value" if kind.startswith(("literal", "enum", "union_tag")) else "invalid_type"
    if code == "invalid_value":
        return SessionError(
            f"Invalid value: {err.get('input')!r} for '{param}'. {err['msg']}.", code, param
        )
    return SessionError(f"Invalid type for '{param}': {err['msg']}.", code, param)


def error_param(prefix: str, loc: tuple[int | str, ...], data: Any, missing: bool) -> str:
    """Turn a pydantic error location into OpenAI's dotted ``param`` by following it through the
    submitted data; location parts that are union member tags (not keys of the data) are skipped."""
    parts = [prefix] if prefix else []
    cur = data
    for i, part in enumerate(loc):
        if isinstance(part, int) and isinstance(cur, list) and 0 <= part < len(cur):
            if parts:
                parts[-1] += f"[{part}]"
            else:
                parts.append(f"[{part}]")
            cur = cur[part]
        elif isinstance(part, str) and isinstance(cur, dict) and part in cur:
            parts.append(part)
            cur = cur[part]
        elif missing and i == len(loc) - 1 and isinstance(part, str):
            parts.append(part)
    return ".".join(parts)


def _json_type(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return "null" if value is None else "a value"


def output_voice(session: JsonDict) -> str:
    voice = ((session.get("audio") or {}).get("output") or {}).get("voice") or "marin"
    if isinstance(voice, dict):
        return str(voice.get("id", "custom"))
    return str(voice)


def turn_detection(session: JsonDict) -> JsonDict | None:
    td = ((session.get("audio") or {}).get("input") or {}).get("turn_detection")
    return td if isinstance(td, dict) else None


def wants_images(session: JsonDict) -> bool:
    mods = session.get("modalities")
    return isinstance(mods, list) and "image" in mods


def function_tools(session: JsonDict) -> list[JsonDict]:
    tools = session.get("tools") or []
    return [t for t in tools if isinstance(t, dict) and t.get("type", "function") == "function"]
