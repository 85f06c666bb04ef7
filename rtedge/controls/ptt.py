"""Push-to-talk: a gpiozero ``Button`` (and the HTTP press/release) -> asyncio callbacks.

Edges from the button arrive on gpiozero's thread (on mock pins: the caller's thread) and
cross into the event loop with ``call_soon_threadsafe``; everything else runs on the loop. Its
timers run on ``timers`` (the loop's; unit tests inject synthetic time, rtedge.timers).

A press counts once the button has been down ``min_press_ms`` without a break: taps, noise and
chatter (say 50 presses in a second) never reach ``on_press``. Once a press counted, contact
bounce on the way up is absorbed: the release counts when the button has stayed up for
``bounce_ms``. ``on_release`` only ever follows an ``on_press``. In ``toggle`` mode a counted
press starts talking and the next one ends it.

No press keeps the mic open longer than ``max_hold_s``: a forgotten HTTP press (a script that
died between press and release, or a page that got one in) and a stuck button both end there.
Pressing again while held renews the time; after an expiry a new press starts afresh.

A button press held ``forget_press_s`` (when set; HTTP presses never) is no turn:
``on_long_press`` is told instead of ``on_release``, at once (the user hears it happen), and the
button's eventual release is a no-op.
"""

from __future__ import annotations

import asyncio
import logging
import warnings
from collections.abc import Callable
from typing import Any

from rtedge.controls.gpio import gpio_class
from rtedge.settings import PttSettings
from rtedge.state import State
from rtedge.timers import LoopTimers, Timer, Timers

log = logging.getLogger(__name__)


class PushToTalk:
    def __init__(
        self,
        settings: PttSettings,
        on_press: Callable[[], None],
        on_release: Callable[[], None],
        *,
        loop: asyncio.AbstractEventLoop | None = None,
        pin_factory: Any = None,
        state: State | None = None,
        on_long_press: Callable[[], None] | None = None,
        timers: Timers | None = None,
    ) -> None:
        self.settings = settings
        self._state = state  # where a missing button shows (/healthz), when given
        self._on_press = on_press
        self._on_release = on_release
        self._loop = loop
        self._timers: Timers = timers if timers is not None else LoopTimers()
        self._pin_factory = pin_factory
        self.button: Any = None
        self._down = False  # raw (debounced by us) contact state
        self._confirm: Timer | None = None
        self._release: Timer | None = None
        self._held = False  # a counted press is in effect (hold) / talking (toggle)
        self._latched = False  # toggle: this physical press already toggled
        self._expire: Timer | None = None
        self._on_long_press = on_long_press
        self._long: Timer | None = None
        self.long_presses = 0
        self._via_http = False  # the press in effect came over HTTP (it has no long press)
        self.presses = 0
        self.ignored = 0
        self.expired = 0

    @property
    def held(self) -> bool:
        """True while talking: a counted press is held (hold) or toggled on (toggle)."""
        return self._held

    # ---- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Attach to the loop and open the GPIO button when ``gpio_pin`` is set. A GPIO that
        cannot be opened is logged, never raised: the HTTP path keeps working."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        pin = self.settings.gpio_pin
        if pin is None or self.button is not None:
            return
        # gpiozero tries each pin library in turn and warns (PinFactoryFallback, four lines
        # with file names on a PC) about every one that is missing; those become one line.
        with warnings.catch_warnings(record=True) as fallbacks:
            warnings.simplefilter("always")
            try:
                button_class = gpio_class("input_devices", "Button")

                bounce = self.settings.bounce_ms / 1000 if self.settings.bounce_ms else None
                self.button = button_class(
                    pin,
                    pull_up=self.settings.active_low,
                    bounce_time=bounce,
                    pin_factory=self._pin_factory,
                )
                error: Exception | None = None
            except Exception as exc:  # no GPIO chip, pin busy, no pin library...
                self.button = None
                error = exc
        for warning in fallbacks:
            log.debug("gpiozero: %s", warning.message)
        if error is not None:
            tried = [w for w in fallbacks if type(w.message).__name__ == "PinFactoryFallback"]
            reason = (
                "no GPIO pin library works on this machine (not a Raspberry Pi, or lgpio missing)"
                if tried and "pin factory" in str(error)
                else str(error)
            )
            detail = f"GPIO{pin}: {reason}"
            log.warning(
                "push-to-talk button unavailable: %s; push-to-talk over HTTP still works "
                '([ptt] gpio_pin = "" runs without a button, GPIOZERO_PIN_FACTORY=mock simulates '
                "one)",
                detail,
            )
            if self._state is not None:
                self._state.set_device("button", False, detail)
            return
        if self._state is not None:
            self._state.set_device("button", True)
        self.button.when_pressed = self._edge_down
        self.button.when_released = self._edge_up
        log.info(
            "push-to-talk on GPIO%s (%s, %s mode)",
            pin,
            "active low" if self.settings.active_low else "active high",
            self.settings.mode,
        )

    def close(self) -> None:
        if self.button is not None:
            try:
                self.button.close()
            except Exception as exc:
                log.debug("closing the button: %s", exc)
            self.button = None
        for handle in (self._confirm, self._release, self._expire, self._long):
            if handle is not None:
                handle.cancel()
        self._confirm = self._release = self._expire = self._long = None

    # ---- inputs -----------------------------------------------------------------------------

    def press(self) -> None:
        """The button went down (HTTP path; same logic as the GPIO edge, no long press)."""
        self._dispatch(lambda: self._down_edge(via_http=True))

    def release(self) -> None:
        """The button came up (HTTP path: no contact to bounce, so it takes effect at once)."""
        self._dispatch(lambda: self._up_edge(bounce=False))

    async def press_over_http(self) -> dict[str, Any]:
        """``POST /ptt/press``: press, and answer with what the press did. It counts only once
        held ``min_press_ms``; the answer says so rather than wait, since a client that waited
        before releasing would turn every tap into a press."""
        self.press()
        if self._confirm is not None:
            return {"ptt": "pressed", "counts_after_ms": self.settings.min_press_ms}
        return {"ptt": "pressed", "turn": self._turn()}

    async def release_over_http(self) -> dict[str, Any]:
        """``POST /ptt/release``: release, and answer with the turn it led to."""
        ignored_before = self.ignored
        self.release()
        answer: dict[str, Any] = {"ptt": "released", "turn": self._turn()}
        if self.ignored > ignored_before:
            answer["ignored"] = f"held less than min_press_ms ({self.settings.min_press_ms} ms)"
        return answer

    def _turn(self) -> str | None:
        return self._state.turn.value if self._state is not None else None

    def _edge_down(self, *_: Any) -> None:  # gpiozero thread (mock pins: the caller's)
        self._dispatch(self._down_edge)

    def _edge_up(self, *_: Any) -> None:  # gpiozero thread (mock pins: the caller's)
        self._dispatch(self._up_edge)

    def _post(self, fn: Callable[[], None]) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        loop.call_soon_threadsafe(fn)

    def _dispatch(self, fn: Callable[[], None]) -> None:
        loop = self._loop
        if loop is None:
            try:
                self._loop = loop = asyncio.get_running_loop()
            except RuntimeError:
                log.warning("push-to-talk used before start(): ignored")
                return
        if _on_loop_thread(loop):
            fn()
        else:
            self._post(fn)

    # ---- logic (event loop only) ------------------------------------------------------------

    def _down_edge(self, via_http: bool = False) -> None:
        if self._down:
            if self._held:
                self._arm_expiry()  # pressed again while held: renewed
            return
        self._down = True
        self._via_http = via_http
        if self._release is not None:
            # back down within bounce_ms of coming up: one press, still held
            self._release.cancel()
            self._release = None
            return
        self._confirm = self._timers.call_later(self.settings.min_press_ms / 1000, self._confirmed)

    def _up_edge(self, bounce: bool = True) -> None:
        if not self._down:
            return
        self._down = False
        if self._long is not None:
            self._long.cancel()
            self._long = None
        if self._confirm is not None:
            # came up before min_press_ms: a tap or chatter, ignored
            self._confirm.cancel()
            self._confirm = None
            self.ignored += 1
            return
        if self._held or self._latched:
            delay = self.settings.bounce_ms / 1000 if bounce else 0.0
            if delay <= 0:
                self._released()
            else:
                self._release = self._timers.call_later(delay, self._released)

    def _confirmed(self) -> None:
        self._confirm = None
        if not self._down:
            return
        self.presses += 1
        long_s = self.settings.forget_press_s
        if long_s is not None and self._on_long_press is not None and not self._via_http:
            after = max(0.0, long_s - self.settings.min_press_ms / 1000)
            self._long = self._timers.call_later(after, self._long_pressed)
        if self.settings.mode == "toggle":
            self._latched = True
            if self._held:
                self._set_held(False)
                self._fire(self._on_release)
            else:
                self._set_held(True)
                self._fire(self._on_press)
            return
        self._set_held(True)
        self._fire(self._on_press)

    def _long_pressed(self) -> None:
        self._long = None
        if not self._down:
            return
        self.long_presses += 1
        log.info("long press (%.1f s): no turn; forgetting", self.settings.forget_press_s or 0)
        # The contact is forgotten, as after max_hold_s: its release is a no-op.
        self._down = self._latched = False
        self._set_held(False)
        assert self._on_long_press is not None
        self._fire(self._on_long_press)

    def _released(self) -> None:
        self._release = None
        if self.settings.mode == "toggle":
            self._latched = False  # the next counted press toggles again
            return
        if self._held:
            self._set_held(False)
            self._fire(self._on_release)

    def _set_held(self, held: bool) -> None:
        self._held = held
        if held:
            self._arm_expiry()
        elif self._expire is not None:
            self._expire.cancel()
            self._expire = None

    def _arm_expiry(self) -> None:
        if self._expire is not None:
            self._expire.cancel()
        self._expire = self._timers.call_later(self.settings.max_hold_s, self._expired)

    def _expired(self) -> None:
        self._expire = None
        if not self._held:
            return
        self.expired += 1
        log.warning(
            "push-to-talk held longer than max_hold_s (%.0f s): released", self.settings.max_hold_s
        )
        # Forget the contact too: the stuck button's eventual release is a no-op, and the next
        # press (HTTP or button) starts a new hold.
        self._down = self._latched = False
        if self._release is not None:
            self._release.cancel()
            self._release = None
        self._set_held(False)
        self._fire(self._on_release)

    def _fire(self, callback: Callable[[], None]) -> None:
        try:
            callback()
        except Exception:
            log.exception("push-to-talk callback failed")


def _on_loop_thread(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


__all__ = ["PushToTalk"]
