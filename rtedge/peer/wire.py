"""Builders for what the peer puts on the wire: ids, server events, error envelopes.

Every server event leaves through ``stamp`` so each one carries a fresh ``event_id`` (the openai
models require it). Shapes follow the GA event models in the ``openai`` package.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

JsonDict = dict[str, Any]


def new_id(prefix: str, nbytes: int = 12) -> str:
    """OpenAI-style id: ``<prefix>_<hex>`` (``resp_``, ``item_``, ``call_``, ``sess_``...)."""
    return f"{prefix}_{secrets.token_hex(nbytes)}"


def now_s() -> int:
    return int(time.time())


def stamp(event: JsonDict) -> JsonDict:
    """Give a server event its ``event_id`` (kept if the builder already set one)."""
    if "event_id" not in event:
        event = {"event_id": new_id("event", 10), **event}
    return event


def error_body(
    message: str, code: str | None, param: str | None = None, etype: str = "invalid_request_error"
) -> JsonDict:
    """OpenAI's error object, used by both the HTTP envelope and the ``error`` event."""
    return {"message": message, "type": etype, "code": code, "param": param}


def error_event(
    message: str,
    code: str | None,
    param: str | None = None,
    client_event_id: str | None = None,
    etype: str = "invalid_request_error",
) -> JsonDict:
    """The ``error`` server event; ``error.event_id`` names the offending client event."""
    body = error_body(message, code, param, etype)
    body["event_id"] = client_event_id
    return {"type": "error", "error": body}


def response_object(
    response_id: str,
    *,
    status: str,
    conversation_id: str | None,
    output_modalities: list[str],
    voice: str,
    output: list[JsonDict] | None = None,
    status_details: JsonDict | None = None,
    usage: JsonDict | None = None,
    metadata: dict[str, str] | None = None,
    max_output_tokens: int | str = "inf",
) -> JsonDict:
    """A ``realtime.response`` as carried by ``response.created`` / ``response.done``."""
    return {
        "object": "realtime.response",
        "id": response_id,
        "status": status,
        "status_details": status_details,
        "output": output or [],
        "conversation_id": conversation_id,
        "output_modalities": output_modalities,
        "max_output_tokens": max_output_tokens,
        "audio": {"output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": voice}},
        "usage": usage,
        "metadata": metadata,
    }


def usage(
    input_text_tokens: int, input_audio_tokens: int, out_text: int, out_audio: int
) -> JsonDict:
    """Token usage in the GA shape. The counts are estimates (no model runs here): a token per
    word of text and ten per second of audio, which is the order of OpenAI's audio tokens."""
    inp = input_text_tokens + input_audio_tokens
    out = out_text + out_audio
    return {
        "total_tokens": inp + out,
        "input_tokens": inp,
        "output_tokens": out,
        "input_token_details": {
            "text_tokens": input_text_tokens,
            "audio_tokens": input_audio_tokens,
            "image_tokens": 0,
            "cached_tokens": 0,
            "cached_tokens_details": {"text_tokens": 0, "audio_tokens": 0, "image_tokens": 0},
        },
        "output_token_details": {"text_tokens": out_text, "audio_tokens": out_audio},
    }


def rate_limits() -> JsonDict:
    """``rate_limits.updated`` as OpenAI sends it after a response; the local peer has no limits,
    so the numbers are fixed and generous."""
    return {
        "type": "rate_limits.updated",
        "rate_limits": [
            {"name": "requests", "limit": 10000, "remaining": 9999, "reset_seconds": 0.006},
            {"name": "tokens", "limit": 2000000, "remaining": 1999000, "reset_seconds": 0.03},
        ],
    }
