"""Responses delegation on the peer's GPT-Live session: a function call wrapped in
``response.event``, answered by the client with ``response.item.create`` + ``response.create``.

The peer has no speech recogniser, so which tool a turn calls is the backend's ``tool_choice``
(``required`` or a named function); ``auto`` with no words to match calls none.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rtedge.peer import brain, wire
from rtedge.peer.sessionconf import SessionError

if TYPE_CHECKING:
    from rtedge.peer.live_session import LiveSession

JsonDict = dict[str, Any]


class Delegations:
    def __init__(self, session: LiveSession) -> None:
        self.s = session
        self.client_ids: set[str] = set()
        # call_id -> (delegation id, response id, tool name); outputs received for them
        self.pending: dict[str, tuple[str, str, str]] = {}
        self.outputs: dict[str, str] = {}

    def _config(self) -> JsonDict | None:
        delegation = self.s.resource.get("delegation") or {}
        if delegation.get("type") != "responses":
            return None
        responses = delegation.get("responses")
        return responses if isinstance(responses, dict) else None

    def is_client(self, delegation_id: str) -> bool:
        return delegation_id in self.client_ids

    def maybe_delegate(self, seconds: float) -> bool:
        """After a user turn: delegate a function call if the backend's tools call for one."""
        config = self._config()
        if config is None:
            return False
        tools = [t for t in config.get("tools") or [] if t.get("type") == "function"]
        tool = brain.pick_tool("", tools, config.get("tool_choice", "auto"))
        if tool is None:
            return False
        delegation_id = wire.new_id("item")
        response_id = wire.new_id("resp")
        call_id = wire.new_id("call", 8)
        name = str(tool["name"])
        self.pending[call_id] = (delegation_id, response_id, name)
        self.s.send(
            {
                "type": "session.delegation.created",
                "offset_ms": self.s.now_ms(),
                "delegation": {
                    "id": delegation_id,
                    "type": "delegation",
                    "target": "responses",
                    "response_id": response_id,
                },
            }
        )
        self._event(delegation_id, {"type": "response.created", "response": _resp(response_id)})
        item = {
            "type": "function_call",
            "id": wire.new_id("fc"),
            "call_id": call_id,
            "name": name,
            "arguments": brain.tool_arguments("", tool),
            "status": "completed",
        }
        self._event(
            delegation_id,
            {"type": "response.output_item.done", "output_index": 0, "item": item},
        )
        return True

    def _event(self, delegation_id: str, event: JsonDict) -> None:
        event.setdefault("sequence_number", 0)
        self.s.send({"type": "response.event", "delegation_id": delegation_id, "event": event})

    def item_create(self, item: JsonDict) -> None:
        if self._config() is None:
            raise SessionError(
                "response.item.create needs Responses delegation.", "invalid_event", "type"
            )
        if item.get("type") == "function_call_output":
            call_id = str(item.get("call_id"))
            if call_id not in self.pending:
                raise SessionError(
                    f"No function call with call_id '{call_id}'.", "invalid_value", "item.call_id"
                )
            self.outputs[call_id] = str(item.get("output", ""))

    def response_create(self) -> None:
        if self._config() is None:
            raise SessionError(
                "response.create needs Responses delegation.", "invalid_event", "type"
            )
        answered = [c for c in self.pending if c in self.outputs]
        for call_id in answered:
            delegation_id, response_id, name = self.pending.pop(call_id)
            output = self.outputs.pop(call_id)
            done = _resp(response_id, "completed")
            self._event(delegation_id, {"type": "response.completed", "response": done})
            self.s.speak(brain.reply_to_tool_output(name, output))


def _resp(response_id: str, status: str = "in_progress") -> JsonDict:
    # A forwarded lifecycle snapshot: empty output and tools, no instructions (as documented).
    return {
        "id": response_id,
        "object": "response",
        "created_at": wire.now_s(),
        "status": status,
        "model": "rtedge-peer-backend",
        "output": [],
        "tools": [],
        "instructions": None,
        "parallel_tool_calls": False,
        "tool_choice": "auto",
        "metadata": {},
        "error": None,
        "incomplete_details": None,
        "temperature": None,
        "top_p": None,
    }
