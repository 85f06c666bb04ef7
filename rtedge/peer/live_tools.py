"""Delegation on the peer's GPT-Live session. Responses delegation: a function call wrapped in
``response.event``, answered by the client with ``response.item.create`` + ``response.create``.
Client delegation (``--live-delegate client``): ``session.delegation.created`` target client,
then the reply waits for the client's commentary or thinking with that id (or a timeout).

The peer has no speech recogniser, so which tool a turn calls is the backend's ``tool_choice``
(``required`` or a named function; ``auto`` counts as ``required`` with ``--live-delegate tool``);
``auto`` with no words to match calls none. Each delegation and what the client answered is
recorded (``GET /_rtedge/calls``, ``live.delegations``).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Final

from rtedge.peer import brain, wire
from rtedge.peer.sessionconf import SessionError

if TYPE_CHECKING:
    from rtedge.peer.live_session import LiveSession

JsonDict = dict[str, Any]
CLIENT_WAIT_S: Final = 15.0  # a client that never answers: the peer replies by itself after this
MAX_RECORDED: Final = 20


class Delegations:
    def __init__(self, session: LiveSession) -> None:
        self.s = session
        self.client_ids: set[str] = set()
        # call_id -> (delegation id, response id, tool name); outputs received for them
        self.pending: dict[str, tuple[str, str, str]] = {}
        self.outputs: dict[str, str] = {}
        # client delegation id -> (its record, the reply's length in s, the timeout)
        self.waiting: dict[str, tuple[JsonDict, float, asyncio.TimerHandle]] = {}

    def _config(self) -> JsonDict | None:
        delegation = self.s.resource.get("delegation") or {}
        if delegation.get("type") != "responses":
            return None
        responses = delegation.get("responses")
        return responses if isinstance(responses, dict) else None

    def is_client(self, delegation_id: str) -> bool:
        return delegation_id in self.client_ids

    @property
    def recorded(self) -> list[JsonDict]:
        recorded: list[JsonDict] = self.s.record.live.setdefault("delegations", [])
        return recorded

    def _record(self, entry: JsonDict) -> JsonDict:
        self.recorded.append(entry)
        del self.recorded[:-MAX_RECORDED]
        return entry

    def maybe_delegate(self, seconds: float) -> bool:
        """After a user turn: delegate a function call if the backend's tools call for one, or
        the whole turn to the client when asked to."""
        config = self._config()
        if config is None:
            return self._delegate_to_client(seconds)
        tools = [t for t in config.get("tools") or [] if t.get("type") == "function"]
        choice = config.get("tool_choice", "auto")
        if choice == "auto" and self.s.config.live_delegate == "tool":
            choice = "required"
        tool = brain.pick_tool("", tools, choice)
        if tool is None:
            return False
        delegation_id = wire.new_id("item")
        response_id = wire.new_id("resp")
        call_id = wire.new_id("call", 8)
        name = str(tool["name"])
        self.pending[call_id] = (delegation_id, response_id, name)
        self._record({"id": delegation_id, "target": "responses", "tool": name, "call_id": call_id})
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
            for entry in self.recorded:
                if entry.get("call_id") == call_id:
                    entry["output"] = self.outputs[call_id][:500]

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

    def _delegate_to_client(self, seconds: float) -> bool:
        delegation = self.s.resource.get("delegation") or {}
        if self.s.config.live_delegate != "client" or delegation.get("type", "client") != "client":
            return False
        delegation_id = wire.new_id("item")
        self.client_ids.add(delegation_id)
        entry = self._record({"id": delegation_id, "target": "client", "answer": None})
        self.s.send(
            {
                "type": "session.delegation.created",
                "offset_ms": self.s.now_ms(),
                "delegation": {"id": delegation_id, "type": "delegation", "target": "client"},
            }
        )
        timer = asyncio.get_running_loop().call_later(
            CLIENT_WAIT_S, self._client_timed_out, delegation_id
        )
        self.waiting[delegation_id] = (entry, seconds, timer)
        return True

    def client_appended(self, kind: str, delegation_id: Any, content: str) -> None:
        """A commentary or thinking append (already checked): the first one with a waiting
        delegation's id answers it. Commentary is spoken by the session; after thinking (silent
        context) the peer finishes its reply by itself."""
        waiting = self.waiting.pop(str(delegation_id), None) if delegation_id else None
        if waiting is None:
            return
        entry, seconds, timer = waiting
        timer.cancel()
        entry.update(answer=kind, content=content[:500], answered_ms=self.s.now_ms())
        if kind == "thinking":
            self.s.speak(brain.reply_to_audio(seconds))

    def _client_timed_out(self, delegation_id: str) -> None:
        waiting = self.waiting.pop(delegation_id, None)
        if waiting is not None:
            entry, seconds, _ = waiting
            entry["answer"] = "timeout"
            self.s.speak(brain.reply_to_audio(seconds))

    def close(self) -> None:
        for _, _, timer in self.waiting.values():
            timer.cancel()
        self.waiting.clear()


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
