"""The ``openai`` package's event models, the reference rtedge's own are checked against (tests
only: the daemon and the peer never import ``openai``).

The SDK's unions carry an SDK-internal discriminator marker that pydantic ignores, so they are
rebuilt here as real discriminated unions on ``type``: one lookup, one clear error.
"""

from __future__ import annotations

import typing
from typing import Annotated, Any, Final, Union

from openai.types.realtime import realtime_client_event, realtime_server_event
from pydantic import BaseModel, Field, TypeAdapter


def members(union: Any) -> tuple[type[BaseModel], ...]:
    inner = typing.get_args(union)[0]  # Annotated[Union[...], PropertyInfo]
    return typing.get_args(inner)


SERVER_MODELS: Final = members(realtime_server_event.RealtimeServerEvent)
CLIENT_MODELS: Final = members(realtime_client_event.RealtimeClientEvent)

_Server = Annotated[Union[SERVER_MODELS], Field(discriminator="type")]  # type: ignore[valid-type]  # noqa: UP007
_Client = Annotated[Union[CLIENT_MODELS], Field(discriminator="type")]  # type: ignore[valid-type]  # noqa: UP007

server_event_adapter: Final[TypeAdapter[Any]] = TypeAdapter(_Server)
client_event_adapter: Final[TypeAdapter[Any]] = TypeAdapter(_Client)


def first_extra(model: BaseModel, path: str = "") -> str | None:
    """Dotted path of the first field no model in the tree declares."""
    if model.model_extra:
        return f"{path}.{next(iter(model.model_extra))}"
    for name in type(model).model_fields:
        found = _walk(getattr(model, name), f"{path}.{name}")
        if found is not None:
            return found
    return None


def _walk(value: Any, path: str) -> str | None:
    if isinstance(value, BaseModel):
        return first_extra(value, path)
    if isinstance(value, list):
        for i, v in enumerate(value):
            found = _walk(v, f"{path}[{i}]")
            if found is not None:
                return found
    return None


def sample(annotation: Any, full: bool) -> Any:
    """A value the annotation accepts: required fields only, or every field (``full``)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return {
            name: sample(field.annotation, full)
            for name, field in annotation.model_fields.items()
            if full or field.is_required()
        }
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        return args[0]
    if origin is typing.Annotated:
        return sample(args[0], full)
    if origin in (typing.Union, __import__("types").UnionType):
        choices = [a for a in args if a is not type(None)]
        return sample(choices[0], full)
    if origin is list:
        return [sample(args[0], full)]
    if origin is dict:
        return {"k": sample(args[1], full)}
    return {str: "x", int: 1, float: 1.5, bool: True}.get(annotation, {})
