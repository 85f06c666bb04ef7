"""The status LED on gpiozero's mock PWM pin: each state shows its own pattern."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin

from rtedge.controls.leds import PATTERNS, StatusLed, pattern_for
from rtedge.settings import PttSettings
from rtedge.state import Connection, State, Turn

LED_PIN = 18


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    f = MockFactory(pin_class=MockPWMPin)
    yield f
    f.reset()


def observe(pin: MockPWMPin, seconds: float) -> list[float]:
    """Brightness sampled every 10 ms."""
    out = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        out.append(float(pin.state))
        time.sleep(0.01)
    return out


def signature(samples: list[float]) -> tuple[float, float, int, int]:
    """(min, max, distinct levels, times it rose through half brightness) of a trace."""
    rounded = [round(s, 2) for s in samples]
    rises = sum(1 for a, b in zip(rounded, rounded[1:], strict=False) if a < 0.5 <= b)
    return min(rounded), max(rounded), len(set(rounded)), rises


STATES: dict[str, dict[str, object]] = {
    "connecting": {"connection": Connection.CONNECTING},
    "idle": {"connection": Connection.CONNECTED, "turn": Turn.IDLE},
    "listening": {"connection": Connection.CONNECTED, "turn": Turn.LISTENING},
    "thinking": {"connection": Connection.CONNECTED, "turn": Turn.THINKING},
    "speaking": {"connection": Connection.CONNECTED, "turn": Turn.SPEAKING},
    "error": {"connection": Connection.AUTH_FAILED},
}


def test_each_state_has_a_distinct_light(factory: MockFactory) -> None:
    state = State()
    led = StatusLed(PttSettings(led_pin=LED_PIN), state, pin_factory=factory)
    led.start()
    pin = factory.pin(LED_PIN)
    traces: dict[str, tuple[float, float, int, int]] = {}
    try:
        for name, changes in STATES.items():
            state.update(**changes)
            assert led.pattern == name
            traces[name] = signature(observe(pin, 1.0))
    finally:
        led.close()
    # steady ones: one level each, and different levels
    assert traces["idle"][2] == 1 and traces["listening"][2] == 1
    assert traces["idle"][1] < 0.1 and traces["listening"][0] == 1.0
    # blinking ones: only fully on and fully off, at different rates
    for name in ("thinking", "error"):
        lo, hi, levels, _ = traces[name]
        assert (lo, hi, levels) == (0.0, 1.0, 2)
    assert traces["thinking"][3] >= traces["error"][3] + 2
    # breathing ones: many levels in between, at different rates
    for name in ("connecting", "speaking"):
        assert traces[name][2] > 4
    assert traces["speaking"][3] >= traces["connecting"][3] + 2
    assert len(set(traces.values())) == len(traces)


def test_pattern_changes_only_when_the_state_calls_for_it(factory: MockFactory) -> None:
    state = State(connection=Connection.CONNECTED)
    led = StatusLed(PttSettings(led_pin=LED_PIN), state, pin_factory=factory)
    led.start()
    pin = factory.pin(LED_PIN)
    try:
        assert led.pattern == "idle"
        before = len(pin.states)
        for level in (0.1, 0.2, 0.3):
            state.update(mic_level=level, speaker_level=level)  # 10 Hz level updates
        assert len(pin.states) == before
    finally:
        led.close()


def test_missing_audio_device_and_backoff_show_error() -> None:
    state = State(connection=Connection.CONNECTED)
    assert pattern_for(state) == "idle"
    state.set_device("capture", False, "rtmic: No such device")
    assert pattern_for(state) == "error"
    state.set_device("capture", True, "ok")
    assert pattern_for(state) == "idle"
    state.update(connection=Connection.BACKOFF)
    assert pattern_for(state) == "error"
    state.update(connection=Connection.STOPPING)
    assert pattern_for(state) == "off"
    state.update(connection=Connection.CONNECTED, ptt_held=True)
    assert pattern_for(state) == "listening"
    assert set(PATTERNS) == {"off", *STATES}


def test_no_led_pin_is_fine() -> None:
    state = State()
    led = StatusLed(PttSettings(led_pin=None), state)
    led.start()
    state.update(connection=Connection.CONNECTED)
    assert led.pattern == "idle" and led.led is None
    led.close()


def test_state_snapshot_still_works_with_the_led_listening(factory: MockFactory) -> None:
    """Regression: State.snapshot() deep-copies listeners; a bound method of an object holding
    gpiozero's locks made /status answer 500."""
    state = State()
    led = StatusLed(PttSettings(led_pin=LED_PIN), state, pin_factory=factory)
    led.start()
    try:
        assert state.snapshot()["connection"] == "starting"
    finally:
        led.close()
