"""Strict validation of what the peer sends: each event against the ``openai`` package's GA server
event models (a discriminated union on ``type``), plus a check that no model in the tree received
a field it does not declare (the models allow extras, which would hide a misspelt field).
rtAV's image events are checked against their own schema below."""

from __future__ import annotations

import base64
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from rtedge.protocol.codec import encode
from rtedge.protocol.server import UnknownEvent, decode_server_event
from tests.protocol.reference import server_event_adapter

#: Fields the peer adds on purpose beyond the openai models: the session's server-side fields
#: (``object``, ``id``, ``expires_at`` are in the GA response schema, not in the request model the
#: event uses) and rtAV's session extension.
ALLOWED_EXTRAS = {
    "session": {"object", "id", "expires_at", "face", "driving", "modalities"},
}
#: Event types the peer sends only when a test injects the fault that makes it do so.
FAULT_TYPES = {"rtedge.test.unknown_event"}


class ImageDelta(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["response.output_image.delta"]
    event_id: str
    response_id: str
    item_id: str
    delta: str = Field(min_length=100)


class ImageDone(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["response.output_image.done"]
    event_id: str
    response_id: str
    item_id: str | None
    total_frames: int = Field(ge=0)


def validate_server_event(event: dict[str, Any]) -> None:
    """Valid for OpenAI's models, and taken by the daemon's decoder as the same known type: the
    peer's events and the daemon's reading of them cannot drift apart."""
    decoded = decode_server_event(encode(event))
    assert decoded.type == event["type"], (decoded.type, event["type"])
    etype = event.get("type")
    if etype not in FAULT_TYPES:
        assert not isinstance(decoded, UnknownEvent), etype
    if etype == "response.output_image.delta":
        ImageDelta.model_validate(event)
        jpeg = base64.b64decode(event["delta"], validate=True)
        assert jpeg[:2] == b"\xff\xd8" and jpeg[-2:] == b"\xff\xd9", "delta is not a JPEG"
        return
    if etype == "response.output_image.done":
        ImageDone.model_validate(event)
        return
    if etype in FAULT_TYPES:
        return
    model = server_event_adapter.validate_python(event)
    extra = _first_extra(model, "")
    assert extra is None, f"{etype}: undeclared field {extra}"


def _first_extra(model: BaseModel, path: str) -> str | None:
    name = path.rsplit(".", 1)[-1]
    allowed = ALLOWED_EXTRAS.get(name, set())
    for key in model.model_extra or {}:
        if key not in allowed:
            return f"{path}.{key}"
    for field_name in type(model).model_fields:
        found = _walk(getattr(model, field_name), f"{path}.{field_name}")
        if found:
            return found
    return None


def _walk(value: Any, path: str) -> str | None:
    if isinstance(value, BaseModel):
        return _first_extra(value, path)
    if isinstance(value, list):
        for i, v in enumerate(value):
            found = _walk(v, f"{path}[{i}]")
            if found:
                return found
    return None
