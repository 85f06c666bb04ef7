"""What ``GET /_rtedge/calls`` reports about a call: kept while it runs and for a while after."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Final

MAX_EVENTS_KEPT: Final = 10_000


@dataclass(slots=True)
class CallRecord:
    call_id: str
    session_id: str
    started_at: float = field(default_factory=time.time)
    label: str | None = None
    active: bool = True
    connection_state: str = "new"
    ended_at: float | None = None
    end_reason: str | None = None
    client_events: list[str] = field(default_factory=list)
    server_events: list[str] = field(default_factory=list)
    events_dropped: int = 0
    rtp_frames_in: int = 0
    rtp_frames_out: int = 0
    voiced_frames_out: int = 0
    input_voiced_s: float = 0.0
    late_frames_out: int = 0
    max_late_ms: float = 0.0
    image_frames: int = 0
    receive_buffer: dict[str, Any] = field(default_factory=dict)
    responses: list[dict[str, Any]] = field(default_factory=list)
    faults: list[str] = field(default_factory=list)
    #: Roles of the message items the client created before the call's first turn (a history
    #: it was seeded with), in order.
    seeded_items: list[str] = field(default_factory=list)
    live: dict[str, Any] = field(default_factory=dict)  # GPT-Live calls: mute, yields, close

    def client_event(self, etype: str) -> None:
        if len(self.client_events) < MAX_EVENTS_KEPT:
            self.client_events.append(etype)
        else:
            self.events_dropped += 1

    def server_event(self, etype: str) -> None:
        if len(self.server_events) < MAX_EVENTS_KEPT:
            self.server_events.append(etype)
        else:
            self.events_dropped += 1

    def to_json(self) -> dict[str, Any]:
        return {
            "call_id": self.call_id,
            "session_id": self.session_id,
            "label": self.label,
            "active": self.active,
            "connection_state": self.connection_state,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "end_reason": self.end_reason,
            "client_events": list(self.client_events),
            "server_events": list(self.server_events),
            "events_dropped": self.events_dropped,
            "rtp_frames_in": self.rtp_frames_in,
            "rtp_frames_out": self.rtp_frames_out,
            "voiced_frames_out": self.voiced_frames_out,
            "input_voiced_s": round(self.input_voiced_s, 3),
            "late_frames_out": self.late_frames_out,
            "max_late_ms": round(self.max_late_ms, 1),
            "image_frames": self.image_frames,
            "receive_buffer": dict(self.receive_buffer),
            "responses": [dict(r) for r in self.responses],
            "faults": list(self.faults),
            "seeded_items": list(self.seeded_items),
            "live": dict(self.live),
        }
