"""All calls of one peer: active ones by id, recently ended ones for introspection, totals."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from typing import Any

from rtedge.peer.call import Call
from rtedge.peer.record import CallRecord


class Registry:
    def __init__(self, ended_kept: int) -> None:
        self.active: dict[str, Call] = {}
        self.ended: deque[CallRecord] = deque(maxlen=ended_kept)
        self.started = 0
        self.ended_count = 0
        self.http_requests = 0
        self.http_refused = 0
        self.since = time.time()

    def add(self, call: Call) -> None:
        self.active[call.id] = call
        self.started += 1

    def on_end(self, call: Call) -> None:
        if self.active.pop(call.id, None) is not None:
            self.ended_count += 1
            self.ended.append(call.record)

    def pending(self) -> int:
        """Calls answered whose connection is not up (yet)."""
        return sum(1 for c in self.active.values() if c.pc.connectionState != "connected")

    def find(self, call_id: str) -> Call | None:
        return self.active.get(call_id)

    async def close_all(self, reason: str) -> None:
        calls = list(self.active.values())
        await asyncio.gather(*(c.close(reason) for c in calls), return_exceptions=True)

    def calls_json(self) -> list[dict[str, Any]]:
        live = [c.refresh_record().to_json() for c in self.active.values()]
        return [r.to_json() for r in self.ended] + live

    def stats_json(self) -> dict[str, Any]:
        return {
            "calls_started": self.started,
            "calls_ended": self.ended_count,
            "active_calls": len(self.active),
            "http_requests": self.http_requests,
            "http_refused": self.http_refused,
            "asyncio_tasks": len(asyncio.all_tasks()),
            "call_tasks": sum(len(c.tasks) for c in self.active.values()),
            "threads": threading.active_count(),
            "thread_names": sorted(t.name for t in threading.enumerate()),
            "uptime_s": round(time.time() - self.since, 3),
        }
