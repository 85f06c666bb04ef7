"""What a GPT-Live session costs, from ``session.usage.updated``.

Cumulative snapshots (the latest wins), exported to /metrics for a fleet owner (collector:
``rtedge.live.usage_metrics``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class LiveUsage:
    session_seconds: float | None = None
    context_ratio: float | None = None
    updates: int = 0

    def update(self, seconds: float | None, ratio: float | None) -> None:
        if seconds is not None and seconds >= 0:
            self.session_seconds = seconds
        if ratio is not None and 0 <= ratio <= 1:
            self.context_ratio = ratio
        self.updates += 1
