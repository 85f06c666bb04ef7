"""Realtime events on the data channel: decode once, validate against the ``openai`` package's
GA event models, route provider extensions (rtAV's image frames) before validation.

The SDK's unions carry an SDK-internal discriminator marker that pydantic ignores, so validating
against them tries every member (~120 us and a wall of errors per bad event). They are rebuilt
here as real discriminated unions on ``type``: one lookup, one clear error.
"""

from __future__ import annotations

import json
import typing
from dataclasses import dataclass
from typing import Annotated, Any, Final, Union

from openai.types.realtime import realtime_client_event, realtime_server_event
from pydantic import BaseModel, Field, TypeAdapter, ValidationError


def _members(union: Any) -> tuple[type[BaseModel], ...]:
    inner = typing.get_args(union)[0]  # Annotated[Union[...], PropertyInfo]
    return typing.get_args(inner)


SERVER_EVENT_TYPES: Final = _members(realtime_server_event.RealtimeServerEvent)
CLIENT_EVENT_TYPES: Final = _members(realtime_client_event.RealtimeClientEvent)

ServerEvent = Annotated[Union[SERVER_EVENT_TYPES], Field(discriminator="type")]  # type: ignore[valid-type]  # noqa: UP007
ClientEvent = Annotated[Union[CLIENT_EVENT_TYPES], Field(discriminator="type")]  # type: ignore[valid-type]  # noqa: UP007

server_event_adapter: Final[TypeAdapter[Any]] = TypeAdapter(ServerEvent)
client_event_adapter: Final[TypeAdapter[Any]] = TypeAdapter(ClientEvent)

#: rtAV's avatar-frame events (and the aliases its demos accept). Not in the OpenAI union.
IMAGE_DELTA_TYPES: Final = frozenset(
    {"response.output_image.delta", "response.image.delta", "response.video.delta"}
)
IMAGE_DONE_TYPES: Final = frozenset({"response.output_image.done", "response.image.done"})
# Beta-era names some services still send; mapped to their GA name before validation.
LEGACY_ALIASES: Final = {"response.text.delta": "response.output_text.delta"}

SERVER_TYPE_NAMES: Final = frozenset(
    typing.get_args(t.model_fields["type"].annotation)[0] for t in SERVER_EVENT_TYPES
)


class ImageDelta(BaseModel):
    """rtAV ``response.output_image.delta``: one base64 JPEG frame."""

    type: str
    delta: str
    event_id: str | None = None
    response_id: str | None = None
    item_id: str | None = None


class ImageDone(BaseModel):
    """rtAV ``response.output_image.done``."""

    type: str
    total_frames: int | None = None
    event_id: str | None = None
    response_id: str | None = None


class EventError(Exception):
    """An event that could not be decoded; ``kind`` is a short metric label."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Decoded:
    """A decoded server event: ``type`` always, ``model`` when it validated, ``raw`` always."""

    type: str
    raw: dict[str, Any]
    model: BaseModel | None


def decode_server_event(text: str | bytes) -> Decoded:
    """Parse one data-channel message. Raises EventError for malformed JSON, a missing type, or a
    known type whose fields do not validate. An unknown type decodes with ``model=None``."""
    try:
        raw = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise EventError("invalid_json", str(exc)[:200]) from None
    if not isinstance(raw, dict):
        raise EventError("not_an_object", type(raw).__name__)
    etype = raw.get("type")
    if not isinstance(etype, str) or not etype:
        raise EventError("missing_type", "event has no 'type'")
    if etype in IMAGE_DELTA_TYPES:
        return Decoded(etype, raw, _validate(ImageDelta, raw, etype))
    if etype in IMAGE_DONE_TYPES:
        return Decoded(etype, raw, _validate(ImageDone, raw, etype))
    canonical = LEGACY_ALIASES.get(etype, etype)
    if canonical not in SERVER_TYPE_NAMES:
        return Decoded(etype, raw, None)
    if canonical != etype:
        raw = {**raw, "type": canonical}
    try:
        model = server_event_adapter.validate_python(raw)
    except ValidationError as exc:
        raise EventError("invalid_fields", _first_error(exc, canonical)) from None
    return Decoded(canonical, raw, model)


def _validate(model: type[BaseModel], raw: dict[str, Any], etype: str) -> BaseModel:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise EventError("invalid_fields", _first_error(exc, etype)) from None


def _first_error(exc: ValidationError, etype: str) -> str:
    err = exc.errors(include_input=False, include_url=False)[0]
    where = ".".join(str(p) for p in err["loc"])
    return f"{etype}: {where}: {err['msg']}"


def encode(event: dict[str, Any]) -> str:
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False)
