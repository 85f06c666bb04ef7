"""The wait-prepare-show step on a synthetic audio clock (no display thread, no sleeps): when a
frame is prepared and shown against its due time, and when it is dropped instead."""

from __future__ import annotations

from typing import Any

import pytest

from rtedge.display.pacing import ENDED, Due, Outcome, present_paced

PERIOD = 0.04  # 25 fps


class Clock:
    """The audio clock and the loop's sleep, on synthetic time."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        # No real sleep takes no time: without this floor a wait rounded to 1e-17 s would leave
        # a float clock where it is, for ever.
        self.now += max(seconds, 1e-6)


class Display:
    """Stands in for the display thread: notes when each step ran; preparing takes ``cost``."""

    def __init__(self, clock: Clock, cost: float = 0.0, ok: bool = True) -> None:
        self.clock, self.cost, self.ok = clock, cost, ok
        self.prepared_at: float | None = None
        self.shown_at: float | None = None

    async def prepare(self, pic: Any) -> tuple[bool, Any]:
        self.prepared_at = self.clock.now
        self.clock.now += self.cost
        return (True, pic) if self.ok else (False, Outcome.BAD.value)

    async def show(self, prepared: Any) -> bool:
        self.shown_at = self.clock.now
        return prepared != "down"


async def paced(clock: Clock, display: Display, due: Any, pic: Any = "frame") -> Any:
    due_fn = due if callable(due) else (lambda: due)
    return await present_paced(display, pic, due_fn, clock, period=PERIOD, sleep=clock.sleep)


async def test_an_early_frame_is_prepared_just_ahead_and_shown_when_due() -> None:
    clock = Clock(0.5)
    display = Display(clock, cost=0.02)
    outcome, due, shown = await paced(clock, display, 1.0)
    assert outcome is Outcome.SHOWN and due == 1.0
    assert display.prepared_at is not None and 1.0 - 0.06 <= display.prepared_at < 1.0
    assert shown == pytest.approx(1.0, abs=0.0006) and display.shown_at == shown
    assert max(clock.sleeps) <= 0.01  # sliced: the anchor may move while it waits


async def test_it_waits_for_the_anchor_then_follows_it() -> None:
    clock = Clock(0.0)

    def due() -> Due:
        return None if clock.now < 0.3 else 0.5

    outcome, _, shown = await paced(clock, Display(clock), due)
    assert outcome is Outcome.SHOWN and shown == pytest.approx(0.5, abs=0.0006)


async def test_a_due_time_that_moves_while_waiting_is_followed() -> None:
    clock = Clock(0.0)

    def due() -> Due:  # an underrun: the audio, and so the frame, comes later
        return 1.0 if clock.now < 0.7 else 1.2

    outcome, due_at, shown = await paced(clock, Display(clock), due)
    assert outcome is Outcome.SHOWN and due_at == 1.2 and shown == pytest.approx(1.2, abs=0.0006)


async def test_a_frame_more_than_a_period_behind_is_dropped_unprepared() -> None:
    clock = Clock(1.0 + PERIOD + 0.001)
    display = Display(clock)
    outcome, due, shown = await paced(clock, display, 1.0)
    assert (outcome, due, shown) == (Outcome.LATE, 1.0, None) and display.prepared_at is None
    clock.now = 1.0 + PERIOD - 0.001  # within one period: still shown, at once
    outcome, _, shown = await paced(clock, display, 1.0)
    assert outcome is Outcome.SHOWN and shown == clock.now and clock.sleeps == []


async def test_a_frame_made_late_by_its_own_preparing_is_dropped() -> None:
    clock = Clock(0.0)
    display = Display(clock, cost=0.1)  # a slow decode
    outcome, _, shown = await paced(clock, display, 0.05)
    assert outcome is Outcome.LATE and shown is None and display.shown_at is None


async def test_ended_bad_and_down_are_reported() -> None:
    clock = Clock(0.0)

    def ends() -> Due:
        return 1.0 if clock.now < 0.5 else ENDED

    assert await paced(clock, Display(clock), ends) == (Outcome.ENDED, None, None)
    clock = Clock(0.0)
    outcome, _, _ = await paced(clock, Display(clock, ok=False), 0.02)
    assert outcome is Outcome.BAD
    clock = Clock(0.0)
    outcome, due, shown = await paced(clock, Display(clock), 0.02, pic="down")
    assert (outcome, due, shown) == (Outcome.DOWN, 0.02, None)
