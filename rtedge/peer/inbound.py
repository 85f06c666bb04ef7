"""Decoding one client event from the data channel, with the error OpenAI sends for each way it
can be wrong: invalid JSON, not an object, no ``type``, an unknown ``type``, fields that do not
validate against the client event models (``rtedge.protocol.strict_client``, generated from the
``openai`` package's), or fields those models lack.

``session.update`` is only checked for its envelope here; its session object is validated by
``rtedge.peer.sessionconf`` (which knows rtAV's extension).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter, ValidationError

from rtedge.peer import sessionconf
from rtedge.peer.sessionconf import SessionError
from rtedge.protocol.catalog import CLIENT_EVENT_TYPES as CLIENT_TYPE_NAMES
from rtedge.protocol.strict_client import client_event_adapter


@dataclass(frozen=True, slots=True)
class ClientEvent:
    type: str
    raw: dict[str, Any]
    event_id: str | None


class BadEvent(SessionError):
    """A client event rejected before any handler ran. ``label`` is what the call record lists
    for it (its type, or ``<invalid_json>`` / ``<invalid_event>`` / ``<missing_type>``)."""

    def __init__(
        self, label: str, event_id: str | None, message: str, code: str, param: str | None
    ) -> None:
        super().__init__(message, code, param)
        self.label = label
        self.event_id = event_id


def decode(
    data: str | bytes,
    names: frozenset[str] = CLIENT_TYPE_NAMES,
    adapter: TypeAdapter[Any] = client_event_adapter,
) -> ClientEvent:
    """Parse and validate one data-channel message; raises BadEvent. ``names`` and ``adapter``
    are the protocol's (the Realtime API's by default; GPT-Live passes its own)."""
    try:
        raw = json.loads(data)
    except (ValueError, RecursionError) as exc:  # RecursionError: absurdly deep nesting
        raise BadEvent(
            "<invalid_json>", None, f"Invalid JSON in client event: {exc}", "invalid_json", None
        ) from None
    if not isinstance(raw, dict):
        raise BadEvent(
            "<invalid_event>", None, "A client event must be a JSON object.", "invalid_event", None
        )
    event_id = raw.get("event_id") if isinstance(raw.get("event_id"), str) else None
    etype = raw.get("type")
    if not isinstance(etype, str) or not etype:
        raise BadEvent(
            "<missing_type>", event_id, "The 'type' field is missing.", "invalid_event", "type"
        )
    if etype not in names:
        supported = ", ".join(f"'{t}'" for t in sorted(names))
        raise BadEvent(
            etype,
            event_id,
            f"Invalid value: '{etype}'. Supported values are: {supported}.",
            "invalid_value",
            "type",
        )
    if etype == "session.update" and adapter is client_event_adapter:
        _check_session_update(raw, event_id)
        return ClientEvent(etype, raw, event_id)
    try:
        model = adapter.validate_python(raw)
    except ValidationError as exc:
        err = sessionconf.from_validation(exc, raw, "")
        raise BadEvent(etype, event_id, err.message, err.code, err.param) from None
    unknown = sessionconf.first_extra(model, "")
    if unknown is not None:
        raise BadEvent(
            etype, event_id, f"Unknown parameter: '{unknown}'.", "unknown_parameter", unknown
        )
    return ClientEvent(etype, raw, event_id)


def _check_session_update(raw: dict[str, Any], event_id: str | None) -> None:
    extra = [k for k in raw if k not in ("type", "event_id", "session")]
    if extra:
        raise BadEvent(
            "session.update",
            event_id,
            f"Unknown parameter: '{extra[0]}'.",
            "unknown_parameter",
            extra[0],
        )
    if "session" not in raw:
        raise BadEvent(
            "session.update",
            event_id,
            "Missing required parameter: 'session'.",
            "missing_required_parameter",
            "session",
        )
