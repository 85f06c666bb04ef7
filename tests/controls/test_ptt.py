"""Push-to-talk on gpiozero's real mock pins (edges fire synchronously on the calling thread,
no bounce filtering: our own debounce and minimum press are what is tested), on synthetic time
(rtedge.timers.ManualTimers): every bound below is exact, and nothing sleeps. One test crosses
from a real thread into the loop on the loop's own timers."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory

from rtedge.controls.ptt import PushToTalk
from rtedge.settings import PttSettings
from rtedge.timers import ManualTimers

PIN = 17


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    f = MockFactory()
    yield f
    f.reset()


class Recorder:
    def __init__(self, clock: Any = time.monotonic) -> None:
        self.clock = clock
        self.events: list[tuple[str, float]] = []

    def press(self) -> None:
        self.events.append(("press", self.clock()))

    def release(self) -> None:
        self.events.append(("release", self.clock()))

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.events]


def make(
    factory: MockFactory, rec: Recorder, timers: ManualTimers | None = None, **kw: object
) -> PushToTalk:
    settings = PttSettings.model_validate({"gpio_pin": PIN, **kw})
    ptt = PushToTalk(settings, rec.press, rec.release, pin_factory=factory, timers=timers)
    ptt.start()
    return ptt


def synthetic() -> tuple[ManualTimers, Recorder]:
    timers = ManualTimers()
    return timers, Recorder(timers)


def hold(pin: Any, timers: ManualTimers, seconds: float) -> None:
    pin.drive_low()
    timers.advance(seconds)
    pin.drive_high()


async def test_press_counts_after_min_press_and_release_follows(factory: MockFactory) -> None:
    timers, rec = synthetic()
    ptt = make(factory, rec, timers)
    pin = factory.pin(PIN)
    assert ptt.button is not None and ptt.button.pull_up  # active low: internal pull-up
    t0 = timers.now
    pin.drive_low()
    timers.advance(0.099)
    assert rec.names == [] and not ptt.held  # not yet: under min_press_ms
    timers.advance(0.002)
    assert rec.names == ["press"] and ptt.held
    assert rec.events[0][1] - t0 == pytest.approx(0.1)
    pin.drive_high()
    timers.advance(0.029)
    assert ptt.held  # release counts once the contact stayed open for bounce_ms
    timers.advance(0.002)
    assert rec.names == ["press", "release"] and not ptt.held
    ptt.close()


async def test_short_taps_are_ignored(factory: MockFactory) -> None:
    timers, rec = synthetic()
    ptt = make(factory, rec, timers)
    pin = factory.pin(PIN)
    for _ in range(3):
        hold(pin, timers, 0.099)
        timers.advance(0.05)
    timers.advance(1.0)
    assert rec.names == []
    assert ptt.ignored == 3
    ptt.close()


async def test_chatter_fifty_presses_a_second_is_ignored(factory: MockFactory) -> None:
    timers, rec = synthetic()
    ptt = make(factory, rec, timers)
    pin = factory.pin(PIN)
    for _ in range(50):
        hold(pin, timers, 0.01)
        timers.advance(0.01)
    timers.advance(1.0)
    assert rec.names == []
    assert not ptt.held
    ptt.close()


async def test_contact_bounce_while_held_does_not_end_the_turn(factory: MockFactory) -> None:
    timers, rec = synthetic()
    ptt = make(factory, rec, timers, bounce_ms=30)
    pin = factory.pin(PIN)
    pin.drive_low()
    timers.advance(0.15)
    for _ in range(5):  # the contact opens for just under bounce_ms now and then
        pin.drive_high()
        timers.advance(0.029)
        pin.drive_low()
        timers.advance(0.05)
    assert rec.names == ["press"]
    pin.drive_high()
    timers.advance(0.031)
    assert rec.names == ["press", "release"]
    ptt.close()


async def test_toggle_mode(factory: MockFactory) -> None:
    timers, rec = synthetic()
    ptt = make(factory, rec, timers, mode="toggle")
    pin = factory.pin(PIN)
    hold(pin, timers, 0.15)
    timers.advance(0.1)
    assert rec.names == ["press"] and ptt.held  # still talking after letting go
    hold(pin, timers, 0.03)  # a tap does not toggle
    timers.advance(0.1)
    assert rec.names == ["press"]
    hold(pin, timers, 0.15)
    timers.advance(0.1)
    assert rec.names == ["press", "release"] and not ptt.held
    ptt.close()


async def test_active_high_wiring_uses_pull_down(factory: MockFactory) -> None:
    timers, rec = synthetic()
    ptt = make(factory, rec, timers, active_low=False)
    pin = factory.pin(PIN)
    assert ptt.button is not None and not ptt.button.pull_up
    pin.drive_high()
    timers.advance(0.15)
    pin.drive_low()
    timers.advance(0.06)
    assert rec.names == ["press", "release"]
    ptt.close()


async def test_http_path_takes_the_same_logic(factory: MockFactory) -> None:
    timers, rec = synthetic()
    ptt = make(factory, rec, timers)
    ptt.press()
    ptt.release()  # immediately: a tap
    timers.advance(0.15)
    assert rec.names == []
    ptt.press()
    timers.advance(0.15)
    ptt.release()  # no contact to bounce: at once
    assert rec.names == ["press", "release"]
    ptt.close()


async def wait_names(rec: Recorder, names: list[str]) -> None:
    deadline = time.monotonic() + 5.0
    while rec.names != names:
        assert time.monotonic() < deadline, rec.names
        await asyncio.sleep(0.01)  # noqa: ASYNC110  (a poll with a bound and a message)


async def test_edges_from_another_thread_cross_into_the_loop(factory: MockFactory) -> None:
    """As on a Pi: edges come from gpiozero's thread, the callbacks run on the loop (its own
    timers, real time: waits are for conditions)."""
    rec = Recorder()
    loop_thread = threading.get_ident()
    seen: list[int] = []
    settings = PttSettings(gpio_pin=PIN)
    ptt = PushToTalk(
        settings,
        lambda: (seen.append(threading.get_ident()), rec.press()),
        rec.release,
        pin_factory=factory,
    )
    ptt.start()
    pin = factory.pin(PIN)
    await asyncio.to_thread(pin.drive_low)
    await wait_names(rec, ["press"])
    assert seen == [loop_thread]
    await asyncio.to_thread(pin.drive_high)
    await wait_names(rec, ["press", "release"])
    ptt.close()


async def test_no_gpio_pin_means_http_only(factory: MockFactory) -> None:
    timers, rec = synthetic()
    ptt = make(factory, rec, timers, gpio_pin=None)
    assert ptt.button is None
    ptt.press()
    timers.advance(0.15)
    assert rec.names == ["press"]
    ptt.close()


async def test_gpio_that_cannot_open_is_logged_not_raised(
    factory: MockFactory, caplog: pytest.LogCaptureFixture
) -> None:
    timers, rec = synthetic()
    factory.pin(PIN)
    from gpiozero import Button

    busy = Button(PIN, pin_factory=factory)  # somebody else holds the pin
    ptt = make(factory, rec, timers)
    assert ptt.button is None
    assert "unavailable" in caplog.text
    ptt.press()
    timers.advance(0.15)
    assert rec.names == ["press"]
    busy.close()
    ptt.close()


async def test_http_press_expires_after_max_hold_unless_renewed(factory: MockFactory) -> None:
    timers, rec = synthetic()
    ptt = make(factory, rec, timers, gpio_pin=None, max_hold_s=0.4, min_press_ms=0)
    ptt.press()  # a press whose release never comes (a page, a dead script)
    timers.advance(0)
    assert rec.names == ["press"]
    t_press = rec.events[0][1]
    timers.advance(0.25)
    renewed = timers.now
    ptt.press()  # pressed again while held: the clock restarts
    timers.advance(0.399)
    assert rec.names == ["press"]
    timers.advance(0.002)
    assert rec.names == ["press", "release"]
    assert rec.events[1][1] - renewed == pytest.approx(0.4)
    assert rec.events[1][1] - t_press == pytest.approx(0.65)
    assert ptt.expired == 1 and not ptt.held
    ptt.release()  # the late release is a no-op
    timers.advance(0.05)
    assert rec.names == ["press", "release"]
    ptt.press()  # and a new press starts afresh
    timers.advance(0)
    assert rec.names == ["press", "release", "press"]
    ptt.close()


async def test_stuck_button_is_released_after_max_hold(factory: MockFactory) -> None:
    timers, rec = synthetic()
    ptt = make(factory, rec, timers, max_hold_s=0.3)
    pin = factory.pin(PIN)
    pin.drive_low()  # stuck down
    timers.advance(0.1 + 0.299)
    assert rec.names == ["press"]
    timers.advance(0.002)
    assert rec.names == ["press", "release"]
    assert rec.events[1][1] - rec.events[0][1] == pytest.approx(0.3)
    pin.drive_high()
    timers.advance(0.1)
    assert rec.names == ["press", "release"]  # the eventual release adds nothing
    hold(pin, timers, 0.15)
    timers.advance(0.1)
    assert rec.names == ["press", "release", "press", "release"]
    ptt.close()
