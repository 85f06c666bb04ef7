"""The client events rtedge sends, each with its own ``event_id``.

Strict in what we send: every builder here produces an event the ``openai`` client event models
accept with no field they do not declare (tests/protocol/test_client_events.py), and the id lets
an ``error`` be matched to the event it refuses (``error.event_id``).
"""

from __future__ import annotations

import itertools
import json
import os
from typing import Any

ClientEvent = dict[str, Any]

# Unique across calls and restarts without a syscall per event: a random prefix per process and a
# counter (ids only have to be unique within a session).
_PREFIX = os.urandom(4).hex()
_counter = itertools.count(1)


def new_event_id() -> str:
    return f"evt_{_PREFIX}{next(_counter):06d}"


def event(etype: str, **fields: Any) -> ClientEvent:
    return {"type": etype, "event_id": new_event_id(), **fields}


def session_update(session: dict[str, Any]) -> ClientEvent:
    """A ``session.update`` restating the session: the model cannot change after start."""
    return event("session.update", session={k: v for k, v in session.items() if k != "model"})


def clear_input() -> ClientEvent:
    return event("input_audio_buffer.clear")


def commit_input() -> ClientEvent:
    return event("input_audio_buffer.commit")


def create_response() -> ClientEvent:
    return event("response.create")


def cancel_response() -> ClientEvent:
    return event("response.cancel")


def clear_output() -> ClientEvent:
    return event("output_audio_buffer.clear")


def refuse_tool_call(call_id: str, name: str | None) -> ClientEvent:
    """The answer to a tool call on a device that runs no tools (the model must not wait)."""
    output = json.dumps({"error": f"tool {name!r} is not available on this device"})
    item = {"type": "function_call_output", "call_id": call_id, "output": output}
    return create_item(item)


def create_item(item: dict[str, Any]) -> ClientEvent:
    """A ``conversation.item.create`` appending ``item`` (a seeded message, a tool output)."""
    return event("conversation.item.create", item=item)
