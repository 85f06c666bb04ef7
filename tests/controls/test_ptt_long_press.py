"""A long press of the button forgets the conversation instead of being a turn; normal presses,
HTTP presses and ``max_hold_s`` are unchanged (gpiozero's real mock pins)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from gpiozero.pins.mock import MockFactory

from rtedge.controls.ptt import PushToTalk
from rtedge.settings import PttSettings, Settings
from tests.controls.test_ptt import PIN, Recorder, hold, wait_names


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    f = MockFactory()
    yield f
    f.reset()


def make(factory: MockFactory, rec: Recorder, **kw: object) -> PushToTalk:
    settings = PttSettings.model_validate({"gpio_pin": PIN, "forget_press_s": 0.4, **kw})
    ptt = PushToTalk(
        settings,
        rec.press,
        rec.release,
        pin_factory=factory,
        on_long_press=lambda: rec.events.append(("long", time.monotonic())),
    )
    ptt.start()
    return ptt


async def test_long_press_forgets_instead_of_a_turn(factory: MockFactory) -> None:
    rec = Recorder()
    ptt = make(factory, rec)
    pin = factory.pin(PIN)
    t0 = time.monotonic()
    pin.drive_low()
    await wait_names(rec, ["press", "long"])
    assert rec.events[1][1] - t0 >= 0.4 - 0.005
    assert not ptt.held and ptt.long_presses == 1
    pin.drive_high()
    await asyncio.sleep(0.1)
    assert rec.names == ["press", "long"]  # its release is no turn
    await hold(pin, 0.2)  # the next normal press is a turn again
    await wait_names(rec, ["press", "long", "press", "release"])
    ptt.close()


async def test_presses_shorter_than_the_threshold_are_turns(factory: MockFactory) -> None:
    rec = Recorder()
    ptt = make(factory, rec)
    pin = factory.pin(PIN)
    for _ in range(3):
        await hold(pin, 0.25)
        await asyncio.sleep(0.1)
    await wait_names(rec, ["press", "release"] * 3)
    await asyncio.sleep(0.4)
    assert "long" not in rec.names and ptt.long_presses == 0
    ptt.close()


async def test_http_press_has_no_long_press_and_still_expires(factory: MockFactory) -> None:
    rec = Recorder()
    ptt = make(factory, rec, gpio_pin=None, min_press_ms=0, forget_press_s=0.2, max_hold_s=0.5)
    ptt.press()
    await wait_names(rec, ["press", "release"])  # max_hold_s, not a long press
    assert rec.events[1][1] - rec.events[0][1] >= 0.5 - 0.005
    assert ptt.long_presses == 0 and ptt.expired == 1
    ptt.close()


def test_threshold_must_sit_between_min_press_and_max_hold() -> None:
    for bad in ({"forget_press_s": 0.05}, {"forget_press_s": 60, "max_hold_s": 30}):
        with pytest.raises(ValueError, match="forget_press_s"):
            PttSettings.model_validate(bad)
    assert PttSettings.model_validate({"forget_press_s": 5}).forget_press_s == 5
    assert Settings().ptt.forget_press_s is None  # off unless configured
