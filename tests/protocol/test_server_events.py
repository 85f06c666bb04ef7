"""Reading server events: everything OpenAI's models accept is accepted here, loose events from
independent servers and rtAV are still acted on, and bad input is refused by a bounded decoder
with a clear kind, never an exception of another type."""

from __future__ import annotations

import json
from typing import Any

import pytest

from rtedge.protocol.codec import MAX_DEPTH, MAX_EVENT_BYTES, EventError
from rtedge.protocol.server import (
    ALIASES,
    KNOWN_TYPES,
    MODELS,
    ResponseDone,
    UnknownEvent,
    decode_server_event,
)
from tests.protocol.reference import SERVER_MODELS, sample, server_event_adapter


@pytest.mark.parametrize("full", [False, True], ids=["required-fields", "all-fields"])
@pytest.mark.parametrize("model", SERVER_MODELS, ids=lambda m: m.__name__)
def test_every_event_openai_accepts_is_accepted(model: Any, full: bool) -> None:
    event = sample(model, full)
    server_event_adapter.validate_python(event)  # the reference takes it...
    decoded = decode_server_event(json.dumps(event))  # ...and so do we, as the same known type
    assert decoded.type == event["type"]
    assert not isinstance(decoded, UnknownEvent)
    assert decoded.type in KNOWN_TYPES


def test_every_type_rtedge_acts_on_is_a_known_type() -> None:
    assert set(MODELS) <= KNOWN_TYPES
    assert set(ALIASES.values()) <= KNOWN_TYPES


LOOSE: list[tuple[str, dict[str, Any]]] = [
    (
        "done without event_id",
        {"type": "response.done", "response": {"id": "r", "status": "completed"}},
    ),
    (
        "done with an image modality",
        {
            "type": "response.done",
            "event_id": "e",
            "response": {"id": "r", "status": "completed", "output_modalities": ["audio", "image"]},
        },
    ),
    ("done without a response", {"type": "response.done"}),
    (
        "done with malformed details",
        {"type": "response.done", "response": {"id": "r", "status_details": "?"}},
    ),
    ("started without response_id", {"type": "output_audio_buffer.started"}),
    ("error without an error object", {"type": "error"}),
    (
        "extra fields everywhere",
        {"type": "output_audio_buffer.stopped", "x": {"y": [1]}, "response_id": "r"},
    ),
]


@pytest.mark.parametrize(("name", "event"), LOOSE, ids=[n for n, _ in LOOSE])
def test_loose_events_are_acted_on(name: str, event: dict[str, Any]) -> None:
    decoded = decode_server_event(json.dumps(event))
    assert type(decoded) is MODELS[event["type"]]


def test_loose_done_keeps_what_it_has() -> None:
    decoded = decode_server_event(
        json.dumps(
            {
                "type": "response.done",
                "response": {
                    "id": "resp_1",
                    "status": "failed",
                    "status_details": {"type": "failed", "error": {"code": "server_error"}},
                    "output_modalities": ["image"],
                },
            }
        )
    )
    assert isinstance(decoded, ResponseDone) and decoded.response is not None
    assert decoded.response.id == "resp_1" and decoded.response.status == "failed"
    details = decoded.response.status_details
    assert details is not None and details.error is not None
    assert details.error.code == "server_error"


@pytest.mark.parametrize(("beta", "ga"), sorted(ALIASES.items()))
def test_beta_names_map_to_ga_events(beta: str, ga: str) -> None:
    decoded = decode_server_event(json.dumps({"type": beta, "delta": "x", "response_id": "r"}))
    assert decoded.type == ga


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        ("{not json", "invalid_json"),
        ("[1, 2]", "not_an_object"),
        ('{"event_id": "e"}', "missing_type"),
        ('{"type": ""}', "missing_type"),
        ('{"type": "response.output_text.delta"}', "missing_field"),
        ('{"type": "response.output_text.delta", "delta": 5}', "invalid_field"),
        ('{"type": "rate_limits.updated", "rate_limits": "many"}', "invalid_field"),
        ('{"type": "session.updated"}', "missing_field"),
        ('{"type": "x", "a": ' + "[" * MAX_DEPTH + "]" * MAX_DEPTH + "}", "too_deep"),
        ("[" * 600_000 + "]" * 600_000, "too_large"),
        ('{"a":' * 100_000 + "1" + "}" * 100_000, "too_deep"),
        (b'{"type": "\xff"}', "invalid_json"),
        ('{"type": "x", "pad": "' + "a" * MAX_EVENT_BYTES + '"}', "too_large"),
    ],
)
def test_bad_input_is_refused_with_a_kind(message: str | bytes, kind: str) -> None:
    with pytest.raises(EventError) as info:
        decode_server_event(message)
    assert info.value.kind == kind


def test_missing_field_names_type_and_field() -> None:
    with pytest.raises(EventError) as info:
        decode_server_event('{"type": "response.audio_transcript.delta"}')
    assert "response.output_audio_transcript.delta" in info.value.detail
    assert "delta" in info.value.detail.split(":")[1]


def test_just_within_the_limits_is_accepted() -> None:
    deep = '{"type": "x", "a": ' + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1) + "}"
    assert isinstance(decode_server_event(deep), UnknownEvent)
    pad = MAX_EVENT_BYTES - len('{"type":"x","p":""}')
    assert decode_server_event('{"type":"x","p":"' + "a" * pad + '"}').type == "x"
