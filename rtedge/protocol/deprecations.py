"""Which configured models the ``openai`` package marks deprecated (data in ``catalog``, so the
daemon can say so without importing ``openai``)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from rtedge.protocol.catalog import (
    DEPRECATED_REALTIME_MODELS,
    DEPRECATED_TRANSCRIPTION_MODELS,
    OPENAI_VERSION,
)


def model_warnings(session: dict[str, Any]) -> list[str]:
    """One line per deprecated model the session asks for, with its announced shutdown date."""
    out: list[str] = []
    model = session.get("model")
    if isinstance(model, str) and model in DEPRECATED_REALTIME_MODELS:
        out.append(_line("realtime.model", model, DEPRECATED_REALTIME_MODELS[model]))
    audio_in = (session.get("audio") or {}).get("input") or {}
    transcription = audio_in.get("transcription") if isinstance(audio_in, dict) else None
    name = transcription.get("model") if isinstance(transcription, dict) else None
    if isinstance(name, str) and name in DEPRECATED_TRANSCRIPTION_MODELS:
        out.append(_line("transcription model", name, DEPRECATED_TRANSCRIPTION_MODELS[name]))
    return out


def _line(what: str, name: str, date: str) -> str:
    return (
        f"{what} {name!r} is deprecated: shutdown announced for {date} "
        f"(openai {OPENAI_VERSION} types); see https://developers.openai.com/api/docs/deprecations"
    )


def shutdown_timestamp(model: str) -> float | None:
    """Unix time (UTC midnight) at which a Realtime ``model`` stops being served, when the
    ``openai`` package announces it (exported as ``rtedge_model_shutdown_timestamp_seconds``)."""
    day = DEPRECATED_REALTIME_MODELS.get(model)
    if day is None:
        return None
    return dt.datetime.combine(dt.date.fromisoformat(day), dt.time(), tzinfo=dt.UTC).timestamp()
