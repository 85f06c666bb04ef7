"""Waiting in tests: time bounds scaled for slow runs, and the one sync and one async poll.

An end-to-end test waits for a condition (bytes at the speaker, a status field, an event on the
wire), never for a fixed time: a fixed sleep is too short on a busy machine and too long on a
quiet one. The bound is a native-machine figure that ``scaled()`` stretches for slow runs.
"""

from __future__ import annotations

import asyncio
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


def _checker(predicate: Callable[[], Any], within: float, what: str) -> Callable[[], Any]:
    """``predicate``'s value when truthy, else a falsy value until the bound has passed, then an
    AssertionError naming ``what`` and the last value seen."""
    bound = scaled(within)
    deadline = time.monotonic() + bound

    def check() -> Any:
        last = predicate()
        if last or time.monotonic() < deadline:
            return last
        raise AssertionError(f"timed out after {bound:.1f}s waiting for {what} (last: {last!r})")

    return check


def wait_for(
    predicate: Callable[[], Any], timeout: float, what: str = "condition", step: float = 0.05
) -> Any:
    """Poll until ``predicate()`` is truthy and return it; ``timeout`` is the native bound."""
    check = _checker(predicate, timeout, what)
    while not (found := check()):
        time.sleep(step)
    return found


async def until(
    predicate: Callable[[], Any], within: float = 5.0, what: str = "condition", step: float = 0.02
) -> Any:
    """``wait_for`` for a coroutine: poll without blocking the event loop, for a condition that
    no event announces (counters, files, status fields)."""
    check = _checker(predicate, within, what)
    while not (found := check()):  # noqa: ASYNC110  (nothing announces it: it is polled)
        await asyncio.sleep(step)
    return found
