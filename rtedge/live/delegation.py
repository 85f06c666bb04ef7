"""Delegation on GPT-Live: the device's built-in tools and its answers in both delegation modes.

The voice model has no tools; it hands work to a backend. With Responses delegation (the device
declared tools) the function calls arrive nested in ``response.event`` and are answered with
``response.item.create`` + ``response.create``. With client delegation (the default when no
tools are declared) ``session.delegation.created`` names the device as the backend: the device
has none, so it says so at once with ``session.commentary.append`` carrying the delegation id,
and the model never waits on it.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, Final

from rtedge.live import events as lev
from rtedge.logs import event as log_event
from rtedge.protocol.server import ServerEvent
from rtedge.ratelimit import TokenBucket
from rtedge.state import State

log = logging.getLogger(__name__)

Command = Callable[[dict[str, Any]], str | None]  # sends one client event, returns its id
ToolRunner = Callable[[str, str], str]  # (name, arguments JSON) -> output JSON

#: What the device says when the model delegates work to it (client delegation).
CLIENT_COMMENTARY: Final = (
    "This device has no backend for that request: it cannot look things up or take actions. "
    "Tell the user so briefly."
)
_NO_ARGS: Final = {"type": "object", "properties": {}, "additionalProperties": False}
#: Function tools the device itself can answer (``[realtime.live] tools`` names them).
BUILTIN_TOOLS: Final[dict[str, dict[str, Any]]] = {
    "device_status": {
        "type": "function",
        "name": "device_status",
        "description": "This device's connection, turn state, uptime of the voice session, "
        "reconnect count and any hardware problems (microphone, speaker, display).",
        "parameters": _NO_ARGS,
        "strict": True,
    },
    "device_time": {
        "type": "function",
        "name": "device_time",
        "description": "The device's local date, time and time zone.",
        "parameters": _NO_ARGS,
        "strict": True,
    },
}


def tool_schemas(names: tuple[str, ...] | list[str]) -> list[dict[str, Any]]:
    """The ``delegation.responses.tools`` entries for the named built-ins."""
    return [dict(BUILTIN_TOOLS[n]) for n in names]


class DeviceTools:
    """Runs the built-in tools. Only what is safe to share leaves the device: no URL, key,
    call id, transcript or address."""

    def __init__(self, state: State, clock: Callable[[], float] = time.time) -> None:
        self._state = state
        self._clock = clock

    def __call__(self, name: str, arguments: str) -> str:
        if name == "device_status":
            snap = self._state.snapshot()
            return json.dumps(
                {
                    "connection": snap["connection"],
                    "turn": snap["turn"],
                    "healthy": snap["healthy"],
                    "problems": snap["problems"],
                    "session_age_s": snap["session_age_s"],
                    "reconnects": snap["reconnects"],
                    "provider": snap["provider"],
                },
                default=str,
            )
        if name == "device_time":
            now = time.localtime(self._clock())
            return json.dumps(
                {"local_time": time.strftime("%Y-%m-%dT%H:%M:%S%z", now), "zone": now.tm_zone}
            )
        return json.dumps({"error": f"tool {name!r} is not available on this device"})


class LiveDelegation:
    """Answers delegations; counts them in ``State.delegations`` (``/status``, ``/metrics``)."""

    def __init__(
        self,
        state: State,
        command: Command,
        run_tool: ToolRunner | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._state = state
        self._command = command
        self._run_tool = run_tool
        self._log_bucket = TokenBucket(rate=0.2, burst=5, clock=clock)
        self.commentary: dict[str, str] = {}  # commentary event id -> delegation id, until acked

    @property
    def counts(self) -> Counter[str]:
        return self._state.delegations

    def reset(self) -> None:
        self.commentary.clear()

    def on_created(self, event: ServerEvent) -> None:
        delegation = lev.obj(event, "delegation") or {}
        did, target = delegation.get("id"), delegation.get("target")
        if not isinstance(target, str) or target not in ("client", "responses", "decisions"):
            self.counts["odd"] += 1
            self._log("odd delegation (target %r): ignored", str(target)[:40])
            return
        self.counts[target] += 1
        if target != "client":
            return  # a backend at the service does the work; its events follow
        if not isinstance(did, str) or not did:
            self.counts["odd"] += 1
            self._log("client delegation without an id: cannot answer")
            return
        eid = self._command(
            {
                "type": "session.commentary.append",
                "delegation_id": did,
                "content": CLIENT_COMMENTARY,
            }
        )
        if eid is not None:
            self.commentary[eid] = did
            while len(self.commentary) > 16:  # a service that never acks must not grow this
                self.commentary.pop(next(iter(self.commentary)))
        self._log("client delegation %s: the device has no backend, said so", did[:64])

    def on_ack(self, client_event_id: str | None) -> None:
        if client_event_id is not None and client_event_id in self.commentary:
            del self.commentary[client_event_id]
            self.counts["client_answered"] += 1

    def on_error(self, client_event_id: str | None) -> None:
        did = self.commentary.pop(client_event_id, None) if client_event_id else None
        if did is not None:
            self.counts["client_refused"] += 1

    def on_response_event(self, event: ServerEvent) -> None:
        inner = lev.obj(event, "event") or {}
        item = inner.get("item")
        if inner.get("type") != "response.output_item.done" or not isinstance(item, dict):
            return
        if item.get("type") != "function_call":
            return
        call_id, name = item.get("call_id"), item.get("name")
        if not isinstance(call_id, str) or not isinstance(name, str):
            self.counts["odd"] += 1
            return
        args = item.get("arguments") if isinstance(item.get("arguments"), str) else "{}"
        output = self._tool_output(name, str(args))
        # One output per call, then one response.create: a turn never hangs on a tool.
        self._command(
            {
                "type": "response.item.create",
                "item": {"type": "function_call_output", "call_id": call_id, "output": output},
            }
        )
        self._command({"type": "response.create"})
        self.counts["tool_calls"] += 1
        log_event(log, logging.INFO, "tool_call", "tool %s answered", name, tool=name)

    def _tool_output(self, name: str, arguments: str) -> str:
        if self._run_tool is None:  # as the Realtime path answers (protocol.client)
            return json.dumps({"error": f"tool {name!r} is not available on this device"})
        try:
            return self._run_tool(name, arguments)
        except Exception as exc:  # a tool that fails still answers, so the turn goes on
            log.warning("tool %s failed: %s", name, exc)
            return '{"error": "tool failed"}'

    def _log(self, fmt: str, *args: Any) -> None:
        if self._log_bucket.allow():
            more = self._log_bucket.take_refused()
            suffix = f" (and {more} more)" if more else ""
            log_event(log, logging.INFO, "delegation", fmt + suffix, *args)
