"""Server events as rtedge reads them: small typed models, liberal in what they accept.

Each model declares only the fields rtedge acts on. Unknown fields are ignored; a field rtedge can
do without is taken when it is well-formed and dropped (``None``) when it is missing or malformed,
so a ``response.done`` without ``event_id`` or with ``"image"`` among its ``output_modalities``
still ends the turn. Only an event that lacks what rtedge needs (a transcript delta without its
``delta``) is refused, as EventError ``missing_field`` / ``invalid_field`` naming type and field.

Beta names still sent by rtAV-style services map to their GA events, and rtAV's image events are
part of the vocabulary; any other type the ``openai`` package does not list decodes as
``UnknownEvent``. Every GA type is accepted: tests/protocol check that each event the ``openai``
models accept is accepted here.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError, WrapValidator
from pydantic_core import PydanticUseDefault

from rtedge.protocol.catalog import SERVER_EVENT_TYPES
from rtedge.protocol.codec import EventError, load_object

T = TypeVar("T")


def _or_none(value: Any, handler: Any) -> Any:
    try:
        return handler(value)
    except ValidationError:
        raise PydanticUseDefault() from None


#: A field rtedge can do without: its value when well-formed, else the default.
Lenient = Annotated[T | None, WrapValidator(_or_none)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class ServerEvent(_Model):
    """Any server event: its (GA) type and, when present, its id."""

    type: str
    event_id: Lenient[str] = None


class UnknownEvent(ServerEvent):
    """A type neither the GA protocol, nor its beta names, nor rtAV knows."""


class ErrorInfo(_Model):
    type: Lenient[str] = None
    code: Lenient[str] = None
    message: Lenient[str] = None
    param: Lenient[str] = None
    #: The client event this error answers, when the service says.
    event_id: Lenient[str] = None


class StatusDetails(_Model):
    type: Lenient[str] = None
    reason: Lenient[str] = None
    error: Lenient[ErrorInfo] = None


class ResponseInfo(_Model):
    id: Lenient[str] = None
    status: Lenient[str] = None
    status_details: Lenient[StatusDetails] = None
    #: Token counts (GA ``response.usage``), read by rtedge.realtime.usage.
    usage: Lenient[dict[str, Any]] = None


_NO_RESPONSE: Final = ResponseInfo()


class ResponseCreated(ServerEvent):
    response: Lenient[ResponseInfo] = _NO_RESPONSE


class ResponseDone(ServerEvent):
    response: Lenient[ResponseInfo] = _NO_RESPONSE


class OutputAudioBuffer(ServerEvent):
    """``output_audio_buffer.started`` / ``.stopped`` / ``.cleared``."""

    response_id: Lenient[str] = None


class TextDelta(ServerEvent):
    """``response.output_audio_transcript.delta`` / ``response.output_text.delta``."""

    delta: str
    response_id: Lenient[str] = None


class TextDone(ServerEvent):
    """``response.output_audio_transcript.done`` / ``response.output_text.done``: the whole
    text, for a service that sent no deltas."""

    transcript: Lenient[str] = None
    text: Lenient[str] = None
    response_id: Lenient[str] = None


class InputTranscript(ServerEvent):
    """``conversation.item.input_audio_transcription.completed``."""

    transcript: str
    item_id: Lenient[str] = None


class FunctionCallDone(ServerEvent):
    """``response.function_call_arguments.done``."""

    call_id: str
    name: Lenient[str] = None


class SessionUpdated(ServerEvent):
    """``session.updated``: the session as the service took it."""

    session: dict[str, Any]


class ErrorEvent(ServerEvent):
    error: Lenient[ErrorInfo] = ErrorInfo()


class RateLimit(_Model):
    name: Lenient[str] = None
    limit: Lenient[float] = None
    remaining: Lenient[float] = None
    reset_seconds: Lenient[float] = None


class RateLimitsUpdated(ServerEvent):
    rate_limits: list[RateLimit]


class ImageDelta(ServerEvent):
    """rtAV ``response.output_image.delta``: one base64 JPEG frame."""

    delta: str
    response_id: Lenient[str] = None


class ImageDone(ServerEvent):
    """rtAV ``response.output_image.done``."""

    response_id: Lenient[str] = None
    total_frames: Lenient[int] = None


IMAGE_DELTA: Final = "response.output_image.delta"
IMAGE_DONE: Final = "response.output_image.done"

#: Beta-era and provider names, and the GA (or rtAV) event each one is.
ALIASES: Final = {
    "response.audio.delta": "response.output_audio.delta",
    "response.audio.done": "response.output_audio.done",
    "response.audio_transcript.delta": "response.output_audio_transcript.delta",
    "response.audio_transcript.done": "response.output_audio_transcript.done",
    "response.text.delta": "response.output_text.delta",
    "response.text.done": "response.output_text.done",
    "response.image.delta": IMAGE_DELTA,
    "response.video.delta": IMAGE_DELTA,
    "response.image.done": IMAGE_DONE,
}

MODELS: Final[dict[str, type[ServerEvent]]] = {
    "response.created": ResponseCreated,
    "response.done": ResponseDone,
    "output_audio_buffer.started": OutputAudioBuffer,
    "output_audio_buffer.stopped": OutputAudioBuffer,
    "output_audio_buffer.cleared": OutputAudioBuffer,
    "response.output_audio_transcript.delta": TextDelta,
    "response.output_text.delta": TextDelta,
    "response.output_audio_transcript.done": TextDone,
    "response.output_text.done": TextDone,
    "conversation.item.input_audio_transcription.completed": InputTranscript,
    "response.function_call_arguments.done": FunctionCallDone,
    "session.updated": SessionUpdated,
    "error": ErrorEvent,
    "rate_limits.updated": RateLimitsUpdated,
    IMAGE_DELTA: ImageDelta,
    IMAGE_DONE: ImageDone,
}

#: Every type rtedge recognises, under its canonical name.
KNOWN_TYPES: Final = SERVER_EVENT_TYPES | {IMAGE_DELTA, IMAGE_DONE}


def decode_server_event(data: str | bytes) -> ServerEvent:
    """One data-channel message as a typed event. Raises EventError (never anything else) for a
    message that is not a bounded JSON object with a ``type``, or that lacks what rtedge needs."""
    raw = load_object(data)
    etype = raw.get("type")
    if not isinstance(etype, str) or not etype:
        raise EventError("missing_type", "event has no 'type'")
    canonical = ALIASES.get(etype, etype)
    if canonical != etype:
        raw["type"] = canonical
    model = MODELS.get(canonical)
    if model is None:
        event_id = raw.get("event_id")
        event_id = event_id if isinstance(event_id, str) else None
        cls = ServerEvent if canonical in KNOWN_TYPES else UnknownEvent
        return cls.model_construct(type=canonical, event_id=event_id)
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors(include_input=False, include_url=False)[0]
        where = ".".join(str(p) for p in err["loc"])
        kind = "missing_field" if err["type"] == "missing" else "invalid_field"
        raise EventError(kind, f"{canonical}: {where}: {err['msg']}") from None
