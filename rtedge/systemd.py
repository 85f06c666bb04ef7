"""Talking to systemd: READY=1, STATUS= on every state change, WATCHDOG=1 while alive, STOPPING=1.

The watchdog ping is a task on the event loop, so a blocked loop stops it by itself; it also skips
a ping when any registered heartbeat (the audio threads) has not moved within the interval, so a
stuck audio thread gets the daemon restarted too.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable

from systemd import daemon

from rtedge.logs import event as log_event
from rtedge.state import State

log = logging.getLogger(__name__)

Heartbeat = Callable[[], float]  # returns time.monotonic() of the last progress


def watchdog_interval() -> float | None:
    """Seconds between pings (half of ``WATCHDOG_USEC``), or None when no watchdog is asked for."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or not usec.isdigit() or int(usec) == 0:
        return None
    if pid and pid.isdigit() and int(pid) != os.getpid():
        return None
    return int(usec) / 1e6 / 2


def status_line(state: State) -> str:
    parts = [state.connection.value]
    if state.call_id:
        parts.append(f"call {state.call_id}")
    parts.append(f"turn {state.turn.value}")
    problems = [p for p in state.problems() if not p.startswith(state.connection.value)]
    if problems:
        parts.append("; ".join(problems))
    if state.reconnects:
        parts.append(f"{state.reconnects} reconnects")
    return ", ".join(parts)


class Notifier:
    def __init__(self, state: State) -> None:
        self._state = state
        self._last_status = ""
        self._heartbeats: dict[str, Heartbeat] = {}
        self.pings = 0
        self.skipped: dict[str, int] = {}

    def add_heartbeat(self, name: str, beat: Heartbeat) -> None:
        self._heartbeats[name] = beat

    def notify(self, message: str) -> None:
        daemon.notify(message)

    def ready(self) -> None:
        self._last_status = status_line(self._state)  # not sent twice by the first _on_state
        self.notify("READY=1\nSTATUS=" + self._last_status)
        self._state.subscribe(self._on_state)

    def stopping(self) -> None:
        self.notify("STOPPING=1\nSTATUS=stopping")

    def _on_state(self, state: State) -> None:
        line = status_line(state)
        if line != self._last_status:
            self._last_status = line
            self.notify("STATUS=" + line)

    def stalled_parts(self, interval: float) -> list[str]:
        now = time.monotonic()
        return [name for name, beat in self._heartbeats.items() if now - beat() > interval * 2]

    async def watchdog(self) -> None:
        interval = watchdog_interval()
        if interval is None:
            return
        log.info("systemd watchdog: pinging every %.1fs while healthy", interval)
        while True:
            await asyncio.sleep(interval)
            stalled = self.stalled_parts(interval)
            if stalled:
                for name in stalled:
                    self.skipped[name] = self.skipped.get(name, 0) + 1
                log_event(
                    log,
                    logging.WARNING,
                    "watchdog_withheld",
                    "watchdog ping withheld: no progress in %s",
                    ", ".join(stalled),
                    parts=",".join(stalled),
                )
                continue
            self.notify("WATCHDOG=1")
            self.pings += 1
