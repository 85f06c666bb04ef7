"""Timers on an injectable clock: the event loop's in the daemon, a hand-advanced one in tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Protocol


class Timer(Protocol):
    def cancel(self) -> None: ...


class Timers(Protocol):
    """What timing logic needs from a clock: the time now, and a callback after a delay."""

    def time(self) -> float: ...

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer: ...


class LoopTimers:
    """The running event loop's timers on ``time.monotonic()`` (what liveness compares with)."""

    def time(self) -> float:
        return time.monotonic()

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        return asyncio.get_running_loop().call_later(delay, callback)


class ManualTimers:
    """Synthetic time for unit tests: nothing happens until ``advance()`` moves the clock, and
    then every callback that fell due runs, in due order, each at its own due time."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now
        self._seq = 0
        self._due: dict[int, tuple[float, Callable[[], None]]] = {}

    def time(self) -> float:
        return self.now

    def __call__(self) -> float:  # usable as a plain ``Callable[[], float]`` clock too
        return self.now

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        self._seq += 1
        key = self._seq
        self._due[key] = (self.now + max(0.0, delay), callback)
        return _ManualTimer(self._due, key)

    @property
    def pending(self) -> int:
        return len(self._due)

    def advance(self, seconds: float) -> None:
        end = self.now + seconds
        while True:
            due = [(at, key) for key, (at, _) in self._due.items() if at <= end]
            if not due:
                break
            at, key = min(due)
            _, callback = self._due.pop(key)
            self.now = max(self.now, at)
            callback()
        self.now = end


class _ManualTimer:
    def __init__(self, due: dict[int, tuple[float, Callable[[], None]]], key: int) -> None:
        self._due = due
        self._key = key

    def cancel(self) -> None:
        self._due.pop(self._key, None)
