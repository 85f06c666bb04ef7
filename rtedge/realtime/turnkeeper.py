"""What the Realtime and GPT-Live conversations do alike: the button's edges and the turn state."""

from __future__ import annotations

import logging
from typing import Literal, Protocol

from rtedge.logs import event as log_event
from rtedge.state import State, Turn
from rtedge.timers import LoopTimers, Timers


class Earcons(Protocol):
    def earcon(self, name: Literal["press", "release"]) -> None: ...


class TurnKeeper:
    """Holds whether the button is held and writes the turn to ``State``, the one place the LED,
    the display, captions and the supervisor follow it from. ``turn_since`` is when the current
    turn began on ``timers``' clock (liveness is judged from there)."""

    #: Turn changes are logged under the conversation's own name.
    _log = logging.getLogger(__name__)

    def __init__(self, state: State, earcons: Earcons, timers: Timers | None) -> None:
        self._state = state
        self._earcons = earcons
        self.timers: Timers = timers if timers is not None else LoopTimers()
        self.held = False
        self.turn_since = self.timers.time()

    def _button(self, held: bool) -> bool:
        """The button went down (``held``) or up: False when it already was (no edge)."""
        if self.held is held:
            return False
        self.held = held
        self._state.update(ptt_held=held)
        self._earcons.earcon("press" if held else "release")
        return True

    def _log_service_error(self, code: str | None, about: str, message: str | None) -> None:
        """The service's ``error``, one line: its code, what of ours it answers, its message."""
        log_event(
            self._log,
            logging.WARNING,
            "service_error",
            "service error %s%s: %s",
            code,
            about,
            (message or "")[:200],
            code=code,
        )

    def _set_turn(self, turn: Turn) -> None:
        if self._state.turn is not turn:
            self.turn_since = self.timers.time()
            self._state.update(turn=turn)
            value = turn.value
            log_event(self._log, logging.INFO, "turn_state", "turn: %s", value, turn=value)
