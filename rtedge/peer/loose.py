"""Loose and failing behaviour the peer can be told to show, to prove a client copes: what
independent servers and rtAV really send (events missing optional fields, provider values, beta
names), responses that end early, and refusals of a client's events.

Set per call by the ``loosen``, ``end_next_response`` and ``refuse_next`` call faults
(rtedge.peer.faults); the peer is strict and GA-shaped otherwise.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Final

JsonDict = dict[str, Any]

#: What an error refusing each client event says, unless the fault gives a code.
REFUSAL_CODES: Final = {
    "input_audio_buffer.commit": "input_audio_buffer_commit_empty",
    "response.create": "conversation_already_has_active_response",
    "session.update": "invalid_value",
    "conversation.item.create": "invalid_value",
}
ENDINGS: Final = frozenset({"failed", "incomplete", "cancelled"})


@dataclass(slots=True)
class Loosening:
    """Edits to outgoing events: ``drop`` / ``set`` take ``"<type>:<dotted.path>"`` keys,
    ``rename`` maps a GA type to the name actually sent (a beta alias)."""

    drop: list[str] = field(default_factory=list)
    set: dict[str, Any] = field(default_factory=dict)
    rename: dict[str, str] = field(default_factory=dict)

    def apply(self, event: JsonDict) -> JsonDict:
        etype = str(event.get("type"))
        wanted = [k for k in self.drop if _split(k)[0] == etype]
        changes = {k: v for k, v in self.set.items() if _split(k)[0] == etype}
        if not wanted and not changes and etype not in self.rename:
            return event
        event = copy.deepcopy(event)
        for key in wanted:
            parent, last = _parent(event, _split(key)[1])
            if isinstance(parent, dict):
                parent.pop(last, None)
        for key, value in changes.items():
            parent, last = _parent(event, _split(key)[1], create=True)
            if isinstance(parent, dict):
                parent[last] = copy.deepcopy(value)
        if etype in self.rename:
            event["type"] = self.rename[etype]
        return event


@dataclass(slots=True)
class Misbehaviour:
    """One call's loose behaviour, all off by default."""

    loosening: Loosening = field(default_factory=Loosening)
    end_next: str | None = None  # the next response ends at once with this status
    refuse: dict[str, str] = field(default_factory=dict)  # client event type -> error code

    def take_refusal(self, etype: str) -> str | None:
        return self.refuse.pop(etype, None)

    def take_ending(self) -> str | None:
        status, self.end_next = self.end_next, None
        return status


def ending_details(status: str) -> JsonDict:
    """``status_details`` as OpenAI reports each early ending."""
    if status == "failed":
        return {
            "type": "failed",
            "error": {"type": "server_error", "code": "injected_failure", "message": "fault"},
        }
    if status == "incomplete":
        return {"type": "incomplete", "reason": "max_output_tokens"}
    return {"type": "cancelled", "reason": "turn_detected"}


def check_path(key: Any) -> bool:
    if not isinstance(key, str):
        return False
    etype, path = _split(key)
    return bool(etype) and bool(path) and all(path)


def _split(key: str) -> tuple[str, list[str]]:
    etype, _, path = key.partition(":")
    return etype, path.split(".") if path else []


def _parent(event: JsonDict, path: list[str], create: bool = False) -> tuple[Any, str]:
    node: Any = event
    for part in path[:-1]:
        if not isinstance(node, dict):
            return None, path[-1]
        if create and not isinstance(node.get(part), dict):
            node[part] = {}
        node = node.get(part)
    return node, path[-1]
