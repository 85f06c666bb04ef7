"""What the display reports about its frames: each frame shown, and counts by source."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class ShownFrame:
    """One frame put on the display: ``due`` and ``shown`` are audio-clock seconds (``due`` is
    None for local avatar frames, which are drawn from the level playing at that moment)."""

    source: str  # "service" (JPEG events), "video" (RTP track) or "avatar"
    response_id: str | None
    index: int
    due: float | None
    shown: float


@dataclass
class DisplayStats:
    received: Counter[str] = field(default_factory=Counter)  # by source
    shown: Counter[str] = field(default_factory=Counter)  # by source
    dropped: Counter[str] = field(default_factory=Counter)  # "source.reason"


__all__ = ["DisplayStats", "ShownFrame"]
