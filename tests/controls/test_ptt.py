"""Push-to-talk on gpiozero's real mock pins (edges fire synchronously on the calling thread,
no bounce filtering: our own debounce and minimum press are what is tested)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest
from gpiozero.pins.mock import MockFactory

from rtedge.controls.ptt import PushToTalk
from rtedge.settings import PttSettings

PIN = 17


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    f = MockFactory()
    yield f
    f.reset()


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, float]] = []

    def press(self) -> None:
        self.events.append(("press", time.monotonic()))

    def release(self) -> None:
        self.events.append(("release", time.monotonic()))

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.events]


def make(factory: MockFactory, rec: Recorder, **kw: object) -> PushToTalk:
    settings = PttSettings.model_validate({"gpio_pin": PIN, **kw})
    ptt = PushToTalk(settings, rec.press, rec.release, pin_factory=factory)
    ptt.start()
    return ptt


async def hold(pin: object, seconds: float) -> None:
    pin.drive_low()  # type: ignore[attr-defined]
    await asyncio.sleep(seconds)
    pin.drive_high()  # type: ignore[attr-defined]


async def test_press_counts_after_min_press_and_release_follows(factory: MockFactory) -> None:
    rec = Recorder()
    ptt = make(factory, rec)
    pin = factory.pin(PIN)
    assert ptt.button is not None and ptt.button.pull_up  # active low: internal pull-up
    t0 = time.monotonic()
    pin.drive_low()
    await asyncio.sleep(0.05)
    assert rec.names == [] and not ptt.held  # not yet: under min_press_ms
    await asyncio.sleep(0.1)
    assert rec.names == ["press"] and ptt.held
    assert rec.events[0][1] - t0 == pytest.approx(0.1, abs=0.03)
    pin.drive_high()
    await asyncio.sleep(0.06)  # release counts once the contact stayed open for bounce_ms
    assert rec.names == ["press", "release"] and not ptt.held
    ptt.close()


async def test_short_taps_are_ignored(factory: MockFactory) -> None:
    rec = Recorder()
    ptt = make(factory, rec)
    pin = factory.pin(PIN)
    for _ in range(3):
        await hold(pin, 0.05)
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.2)
    assert rec.names == []
    assert ptt.ignored == 3
    ptt.close()


async def test_chatter_fifty_presses_a_second_is_ignored(factory: MockFactory) -> None:
    rec = Recorder()
    ptt = make(factory, rec)
    pin = factory.pin(PIN)
    for _ in range(50):
        await hold(pin, 0.01)
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.2)
    assert rec.names == []
    assert not ptt.held
    ptt.close()


async def test_contact_bounce_while_held_does_not_end_the_turn(factory: MockFactory) -> None:
    rec = Recorder()
    ptt = make(factory, rec, bounce_ms=30)
    pin = factory.pin(PIN)
    pin.drive_low()
    await asyncio.sleep(0.15)
    for _ in range(5):  # the contact opens for 5 ms now and then
        pin.drive_high()
        await asyncio.sleep(0.005)
        pin.drive_low()
        await asyncio.sleep(0.05)
    assert rec.names == ["press"]
    pin.drive_high()
    await asyncio.sleep(0.08)
    assert rec.names == ["press", "release"]
    ptt.close()


async def test_toggle_mode(factory: MockFactory) -> None:
    rec = Recorder()
    ptt = make(factory, rec, mode="toggle")
    pin = factory.pin(PIN)
    await hold(pin, 0.15)
    await asyncio.sleep(0.1)
    assert rec.names == ["press"] and ptt.held  # still talking after letting go
    await hold(pin, 0.03)  # a tap does not toggle
    await asyncio.sleep(0.1)
    assert rec.names == ["press"]
    await hold(pin, 0.15)
    await asyncio.sleep(0.1)
    assert rec.names == ["press", "release"] and not ptt.held
    ptt.close()


async def test_active_high_wiring_uses_pull_down(factory: MockFactory) -> None:
    rec = Recorder()
    ptt = make(factory, rec, active_low=False)
    pin = factory.pin(PIN)
    assert ptt.button is not None and not ptt.button.pull_up
    pin.drive_high()
    await asyncio.sleep(0.15)
    pin.drive_low()
    await asyncio.sleep(0.06)
    assert rec.names == ["press", "release"]
    ptt.close()


async def test_http_path_takes_the_same_logic(factory: MockFactory) -> None:
    rec = Recorder()
    ptt = make(factory, rec)
    ptt.press()
    ptt.release()  # immediately: a tap
    await asyncio.sleep(0.15)
    assert rec.names == []
    ptt.press()
    await asyncio.sleep(0.15)
    ptt.release()
    await asyncio.sleep(0.06)
    assert rec.names == ["press", "release"]
    ptt.close()


async def test_edges_from_another_thread_cross_into_the_loop(factory: MockFactory) -> None:
    rec = Recorder()
    loop_thread = threading.get_ident()
    seen: list[int] = []
    settings = PttSettings(gpio_pin=PIN)
    ptt = PushToTalk(
        settings,
        lambda: seen.append(threading.get_ident()),
        rec.release,
        pin_factory=factory,
    )
    ptt.start()
    pin = factory.pin(PIN)
    await asyncio.to_thread(pin.drive_low)  # as on a Pi: the edge comes from gpiozero's thread
    await asyncio.sleep(0.15)
    assert seen == [loop_thread]
    await asyncio.to_thread(pin.drive_high)
    await asyncio.sleep(0.06)
    assert rec.names == ["release"]
    ptt.close()


async def test_no_gpio_pin_means_http_only(factory: MockFactory) -> None:
    rec = Recorder()
    ptt = PushToTalk(PttSettings(gpio_pin=None), rec.press, rec.release, pin_factory=factory)
    ptt.start()
    assert ptt.button is None
    ptt.press()
    await asyncio.sleep(0.15)
    assert rec.names == ["press"]
    ptt.close()


async def test_gpio_that_cannot_open_is_logged_not_raised(
    factory: MockFactory, caplog: pytest.LogCaptureFixture
) -> None:
    rec = Recorder()
    factory.pin(PIN)
    from gpiozero import Button

    busy = Button(PIN, pin_factory=factory)  # somebody else holds the pin
    ptt = make(factory, rec)
    assert ptt.button is None
    assert "unavailable" in caplog.text
    ptt.press()
    await asyncio.sleep(0.15)
    assert rec.names == ["press"]
    busy.close()
    ptt.close()


async def wait_names(rec: Recorder, names: list[str]) -> None:
    deadline = time.monotonic() + 5.0
    while rec.names != names:
        assert time.monotonic() < deadline, rec.names
        await asyncio.sleep(0.01)  # noqa: ASYNC110  (a poll with a bound and a message)


async def test_http_press_expires_after_max_hold_unless_renewed(factory: MockFactory) -> None:
    rec = Recorder()
    ptt = make(factory, rec, gpio_pin=None, max_hold_s=0.4, min_press_ms=0)
    ptt.press()  # a press whose release never comes (a page, a dead script)
    await wait_names(rec, ["press"])
    t_press = rec.events[0][1]
    await asyncio.sleep(0.2)
    renewed = time.monotonic()
    ptt.press()  # pressed again while held: the clock restarts
    await wait_names(rec, ["press", "release"])
    assert rec.events[1][1] - renewed >= 0.4 - 0.005
    assert rec.events[1][1] - t_press >= 0.6 - 0.005
    assert ptt.expired == 1 and not ptt.held
    ptt.release()  # the late release is a no-op
    await asyncio.sleep(0.05)
    assert rec.names == ["press", "release"]
    ptt.press()  # and a new press starts afresh
    await wait_names(rec, ["press", "release", "press"])
    ptt.close()


async def test_stuck_button_is_released_after_max_hold(factory: MockFactory) -> None:
    rec = Recorder()
    ptt = make(factory, rec, max_hold_s=0.3)
    pin = factory.pin(PIN)
    pin.drive_low()  # stuck down
    await wait_names(rec, ["press", "release"])
    assert rec.events[1][1] - rec.events[0][1] >= 0.3 - 0.005
    pin.drive_high()
    await asyncio.sleep(0.1)
    assert rec.names == ["press", "release"]  # the eventual release adds nothing
    await hold(pin, 0.15)
    await wait_names(rec, ["press", "release", "press", "release"])
    ptt.close()
