"""The one shared picture of the daemon's health, read by /healthz, /status, sd_notify and the LED.

Parts write their own fields on the event loop thread; readers take ``snapshot()``. Listeners are
told after every ``update()`` (LED patterns, the display's turn, captions, STATUS= lines). Threads
must not write here: they cross into the loop with ``call_soon_threadsafe`` first.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from typing import Any


class Connection(StrEnum):
    STARTING = "starting"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    BACKOFF = "backoff"
    AUTH_FAILED = "auth_failed"
    STOPPING = "stopping"


class Turn(StrEnum):
    IDLE = "idle"
    LISTENING = "listening"
    THINKING = "thinking"
    SPEAKING = "speaking"


@dataclass
class DeviceStatus:
    """One hardware part (capture, playback, display, button): ok, or why not."""

    ok: bool = True
    detail: str = ""
    since: float = field(default_factory=time.time)


@dataclass
class State:
    connection: Connection = Connection.STARTING
    call_id: str | None = None
    provider: str = ""
    session_started: float | None = None  # monotonic
    backoff_until: float | None = None  # wall clock, for humans
    reconnects: int = 0
    calls_started: int = 0
    last_error: str | None = None
    turn: Turn = Turn.IDLE
    ptt_held: bool = False
    mic_level: float = 0.0
    speaker_level: float = 0.0
    frames_shown: int = 0
    frames_by_source: Counter[str] = field(default_factory=Counter)  # service / video / avatar
    frames_dropped: int = 0
    transcript_user: str = ""
    transcript_assistant: str = ""
    devices: dict[str, DeviceStatus] = field(default_factory=dict)
    events_in: Counter[str] = field(default_factory=Counter)
    events_bad: Counter[str] = field(default_factory=Counter)
    queue_drops: Counter[str] = field(default_factory=Counter)
    tokens: Counter[str] = field(default_factory=Counter)  # "input_audio", "output_text", ...
    call_seconds_done: float = 0.0  # connected time of the calls that have ended
    #: Session fields the service did not take as asked (``session.updated`` or an ``error``).
    session_refused: list[str] = field(default_factory=list)
    #: The service's last ``rate_limits.updated``: name -> limit, remaining, reset_seconds.
    rate_limits: dict[str, dict[str, float | None]] = field(default_factory=dict)
    #: The microphone front end (rtedge.controls.handsfree): wakes, false wakes, ERLE, CPU.
    hands_free: dict[str, Any] = field(default_factory=dict)
    #: GPT-Live delegations seen by target, and how the device answered them (rtedge.live).
    delegations: Counter[str] = field(default_factory=Counter)
    _listeners: list[Callable[[State], None]] = field(default_factory=list, repr=False)

    def subscribe(self, listener: Callable[[State], None]) -> None:
        self._listeners.append(listener)

    def update(self, **changes: Any) -> None:
        """Set fields and tell listeners when anything changed."""
        changed = False
        for key, value in changes.items():
            if getattr(self, key) != value:
                setattr(self, key, value)
                changed = True
        if changed:
            self.notify()

    def notify(self) -> None:
        for listener in list(self._listeners):
            listener(self)

    def set_device(self, name: str, ok: bool, detail: str = "") -> None:
        current = self.devices.get(name)
        if current is not None and current.ok == ok and current.detail == detail:
            return
        self.devices[name] = DeviceStatus(ok=ok, detail=detail)
        self.notify()

    def count_drop(self, queue: str, n: int = 1) -> None:
        self.queue_drops[queue] += n

    def call_seconds(self) -> float:
        """Seconds connected so far over all calls, the current one included."""
        current = time.monotonic() - self.session_started if self.session_started else 0.0
        return self.call_seconds_done + current

    def problems(self) -> list[str]:
        """Reasons the device is not healthy right now; empty when it is."""
        out: list[str] = []
        if self.connection is not Connection.CONNECTED:
            reason = self.connection.value
            if self.connection is Connection.BACKOFF and self.backoff_until:
                wait = max(0.0, self.backoff_until - time.time())
                reason = f"backoff: retry in {wait:.1f}s"
            if self.last_error and self.connection is not Connection.STARTING:
                reason += f" ({self.last_error})"
            out.append(reason)
        out += [f"session field refused: {field}" for field in self.session_refused]
        for name, dev in sorted(self.devices.items()):
            if not dev.ok:
                out.append(
                    f"{name} unavailable: {dev.detail}" if dev.detail else f"{name} unavailable"
                )
        return out

    def snapshot(self) -> dict[str, Any]:
        # Not dataclasses.asdict: it would deep-copy the listeners and rebuild each Counter from
        # (key, value) pairs, counting the pairs themselves.
        data: dict[str, Any] = {
            f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")
        }
        for key in ("frames_by_source", "events_in", "events_bad", "queue_drops", "tokens"):
            data[key] = dict(data[key])
        data["delegations"] = dict(self.delegations)
        data["devices"] = {name: asdict(dev) for name, dev in self.devices.items()}
        started = data.pop("session_started")
        data["session_age_s"] = round(time.monotonic() - started, 1) if started else None
        data["healthy"] = not self.problems()
        data["problems"] = self.problems()
        for key in ("mic_level", "speaker_level"):
            data[key] = round(data[key], 4)
        return data
