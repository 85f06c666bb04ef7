"""A long press of the button forgets the conversation instead of being a turn; normal presses,
HTTP presses and ``max_hold_s`` are unchanged (gpiozero's real mock pins, synthetic time)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from gpiozero.pins.mock import MockFactory

from rtedge.controls.ptt import PushToTalk
from rtedge.settings import PttSettings, Settings
from rtedge.timers import ManualTimers
from tests.controls.test_ptt import PIN, Recorder, hold, synthetic


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    f = MockFactory()
    yield f
    f.reset()


def make(factory: MockFactory, rec: Recorder, timers: ManualTimers, **kw: object) -> PushToTalk:
    settings = PttSettings.model_validate({"gpio_pin": PIN, "forget_press_s": 0.4, **kw})
    ptt = PushToTalk(
        settings,
        rec.press,
        rec.release,
        pin_factory=factory,
        on_long_press=lambda: rec.events.append(("long", timers.now)),
        timers=timers,
    )
    ptt.start()
    return ptt


async def test_long_press_forgets_instead_of_a_turn(factory: MockFactory) -> None:
    timers, rec = synthetic()
    ptt = make(factory, rec, timers)
    pin = factory.pin(PIN)
    t0 = timers.now
    pin.drive_low()
    timers.advance(0.399)
    assert rec.names == ["press"]
    timers.advance(0.002)
    assert rec.names == ["press", "long"]
    assert rec.events[1][1] - t0 == pytest.approx(0.4)
    assert not ptt.held and ptt.long_presses == 1
    pin.drive_high()
    timers.advance(0.1)
    assert rec.names == ["press", "long"]  # its release is no turn
    hold(pin, timers, 0.2)  # the next normal press is a turn again
    timers.advance(0.1)
    assert rec.names == ["press", "long", "press", "release"]
    ptt.close()


async def test_presses_shorter_than_the_threshold_are_turns(factory: MockFactory) -> None:
    timers, rec = synthetic()
    ptt = make(factory, rec, timers)
    pin = factory.pin(PIN)
    for _ in range(3):
        hold(pin, timers, 0.399)
        timers.advance(0.1)
    assert rec.names == ["press", "release"] * 3
    timers.advance(1.0)
    assert "long" not in rec.names and ptt.long_presses == 0
    ptt.close()


async def test_http_press_has_no_long_press_and_still_expires(factory: MockFactory) -> None:
    timers, rec = synthetic()
    ptt = make(
        factory, rec, timers, gpio_pin=None, min_press_ms=0, forget_press_s=0.2, max_hold_s=0.5
    )
    ptt.press()
    timers.advance(1.0)
    assert rec.names == ["press", "release"]  # max_hold_s, not a long press
    assert rec.events[1][1] - rec.events[0][1] == pytest.approx(0.5)
    assert ptt.long_presses == 0 and ptt.expired == 1
    ptt.close()


def test_threshold_must_sit_between_min_press_and_max_hold() -> None:
    for bad in ({"forget_press_s": 0.05}, {"forget_press_s": 60, "max_hold_s": 30}):
        with pytest.raises(ValueError, match="forget_press_s"):
            PttSettings.model_validate(bad)
    assert PttSettings.model_validate({"forget_press_s": 5}).forget_press_s == 5
    assert Settings().ptt.forget_press_s is None  # off unless configured
