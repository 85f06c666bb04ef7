"""Status LED: the daemon's state as a light pattern on a PWM-capable GPIO (optional).

=============  =====================================  ==========================================
pattern        when                                   light
=============  =====================================  ==========================================
connecting     starting, connecting                   slow breathing (0.6 s in, 0.6 s out)
idle           connected, nobody talking              steady dim glow (5 %)
listening      push-to-talk held / user speaking      steady full
thinking       waiting for the reply                  fast blink (0.12 s on / 0.12 s off)
speaking       the reply plays                        fast breathing (0.15 s in, 0.15 s out)
error          auth refused, backing off after a      hard slow blink (0.5 s on / 0.5 s off)
               failure, microphone or speaker gone
off            stopping
=============  =====================================  ==========================================
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

from rtedge.controls.gpio import gpio_class
from rtedge.settings import PttSettings
from rtedge.state import Connection, State, Turn

log = logging.getLogger(__name__)

PatternName = Literal["off", "connecting", "idle", "listening", "thinking", "speaking", "error"]


@dataclass(frozen=True)
class Pattern:
    kind: Literal["steady", "blink", "pulse"]
    value: float = 0.0  # steady brightness
    on_s: float = 0.0  # blink on / pulse fade-in
    off_s: float = 0.0  # blink off / pulse fade-out


PATTERNS: dict[PatternName, Pattern] = {
    "off": Pattern("steady", 0.0),
    "connecting": Pattern("pulse", on_s=0.6, off_s=0.6),
    "idle": Pattern("steady", 0.05),
    "listening": Pattern("steady", 1.0),
    "thinking": Pattern("blink", on_s=0.12, off_s=0.12),
    "speaking": Pattern("pulse", on_s=0.15, off_s=0.15),
    "error": Pattern("blink", on_s=0.5, off_s=0.5),
}

_TURN_PATTERN: dict[Turn, PatternName] = {
    Turn.IDLE: "idle",
    Turn.LISTENING: "listening",
    Turn.THINKING: "thinking",
    Turn.SPEAKING: "speaking",
}


def pattern_for(state: State) -> PatternName:
    """Which pattern the state calls for."""
    conn = state.connection
    if conn is Connection.STOPPING:
        return "off"
    if conn in (Connection.AUTH_FAILED, Connection.BACKOFF):
        return "error"
    for name in ("capture", "playback"):
        dev = state.devices.get(name)
        if dev is not None and not dev.ok:
            return "error"
    if conn is Connection.CONNECTED:
        if state.ptt_held:
            return "listening"
        return _TURN_PATTERN.get(state.turn, "idle")
    return "connecting"


class StatusLed:
    """Drives a gpiozero ``PWMLED`` on ``settings.led_pin`` from ``state`` (no pin: does
    nothing). Patterns change only when the state calls for a different one."""

    def __init__(self, settings: PttSettings, state: State, *, pin_factory: Any = None) -> None:
        self.settings = settings
        self.state = state
        self._pin_factory = pin_factory
        self.led: Any = None
        self.pattern: PatternName | None = None
        self._subscribed = False
        self._closed = False

    def start(self) -> None:
        pin = self.settings.led_pin
        if pin is not None and self.led is None:
            try:
                led_class = gpio_class("output_devices", "PWMLED")

                self.led = led_class(pin, pin_factory=self._pin_factory)
            except Exception as exc:
                log.warning("status LED on GPIO%s unavailable: %s", pin, exc)
                self.led = None
        if not self._subscribed:
            self.state.subscribe(self._on_state)
            self._subscribed = True
        self._closed = False
        self._on_state(self.state)

    def _on_state(self, state: State) -> None:
        if self._closed:
            return
        wanted = pattern_for(state)
        if wanted != self.pattern:
            self.pattern = wanted
            self._show(PATTERNS[wanted])

    def _show(self, p: Pattern) -> None:
        led = self.led
        if led is None:
            return
        try:
            if p.kind == "steady":
                led.value = p.value
            elif p.kind == "blink":
                led.blink(on_time=p.on_s, off_time=p.off_s, background=True)
            else:
                led.pulse(fade_in_time=p.on_s, fade_out_time=p.off_s, background=True)
        except Exception as exc:  # a failing LED must not disturb the state listeners
            log.warning("status LED: %s", exc)

    def close(self) -> None:
        self._closed = True
        if self.led is not None:
            try:
                self.led.close()
            except Exception as exc:
                log.debug("closing the LED: %s", exc)
            self.led = None


__all__ = ["PATTERNS", "Pattern", "PatternName", "StatusLed", "pattern_for"]
