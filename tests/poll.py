"""Waiting in tests: time bounds scaled for slow runs, and the one sync and one async poll.

An end-to-end test waits for a condition (bytes at the speaker, a status field, an event on the
wire), never for a fixed time: a fixed sleep is too short on a busy machine and too long on a
quiet one. The bound is a native-machine figure that ``scaled()`` stretches for slow runs.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import time
from collections.abc import Callable
from typing import Any

# How much slower than native this run is (scripts/test-arm64 sets it for the emulated arm64
# root): every time bound a test waits for or asserts goes through scaled(), never a skip.
TIME_SCALE = float(os.environ.get("RTEDGE_TEST_TIME_SCALE") or 1)


def scaled(seconds: float) -> float:
    """A time bound for this run: ``seconds`` on a native machine, longer under emulation."""
    return seconds * TIME_SCALE


class _Bound:
    """A native time bound, scaled, that fails naming what was awaited and the last value."""

    def __init__(self, within: float, what: str) -> None:
        self.seconds = scaled(within)
        self.deadline = time.monotonic() + self.seconds
        self.what = what

    def check(self, last: Any) -> None:
        if time.monotonic() >= self.deadline:
            raise AssertionError(
                f"timed out after {self.seconds:.1f}s waiting for {self.what} (last: {last!r})"
            )


def wait_for(
    predicate: Callable[[], Any], timeout: float, what: str = "condition", step: float = 0.05
) -> Any:
    """Poll until ``predicate()`` is truthy and return it; ``timeout`` is the native bound."""
    bound = _Bound(timeout, what)
    while not (last := predicate()):
        bound.check(last)
        time.sleep(step)
    return last


async def until(
    predicate: Callable[[], Any], within: float = 5.0, what: str = "condition", step: float = 0.02
) -> Any:
    """``wait_for`` for a coroutine: poll without blocking the event loop, for a condition that
    no event announces (counters, files, status fields, a page's state). ``predicate`` may
    return an awaitable (an async query): its result is what counts."""
    bound = _Bound(within, what)
    while True:
        last = predicate()
        if inspect.isawaitable(last):
            last = await last
        if last:
            return last
        bound.check(last)
        await asyncio.sleep(step)
