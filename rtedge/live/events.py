"""Tolerant decoding of GPT-Live events: the type, the id and the fields rtedge acts on.

A field is taken when it is well-formed; anything else about an event is ignored.
"""

from __future__ import annotations

from typing import Any

from rtedge.protocol.codec import EventError, load_object
from rtedge.protocol.server import ServerEvent


class LiveEvent(ServerEvent):
    """Any Live server event; ``data`` is the decoded object, read through the helpers below."""

    data: dict[str, Any] = {}


def decode_live_event(data: str | bytes) -> ServerEvent:
    """Raises EventError (only) for a message that is not a bounded JSON object with a type."""
    raw = load_object(data)
    etype = raw.get("type")
    if not isinstance(etype, str) or not etype:
        raise EventError("missing_type", "event has no 'type'")
    event_id = raw.get("event_id")
    return LiveEvent.model_construct(
        type=etype, event_id=event_id if isinstance(event_id, str) else None, data=raw
    )


def text(event: ServerEvent, *path: str) -> str | None:
    value = _get(event, path)
    return value if isinstance(value, str) else None


def number(event: ServerEvent, *path: str) -> float | None:
    value = _get(event, path)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def obj(event: ServerEvent, *path: str) -> dict[str, Any] | None:
    value = _get(event, path)
    return value if isinstance(value, dict) else None


def _get(event: ServerEvent, path: tuple[str, ...]) -> Any:
    cur: Any = event.data if isinstance(event, LiveEvent) else {}
    for key in path:
        if not isinstance(cur, dict):
            return None
        cur = cur.get(key)
    return cur


def client_event_id(event: ServerEvent) -> str | None:
    """Acks carry it at the top; errors inside ``error`` (accept both)."""
    return text(event, "client_event_id") or text(event, "error", "client_event_id")
