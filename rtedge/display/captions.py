"""What the kiosk screen says: both sides' words, the assistant's paced by the voice actually
played, and a state indicator that matches the LED. Pure logic on an injected clock.

The transcript fields of ``State`` are the only input (whoever writes them: the Realtime
conversation, GPT-Live); so is the turn. A service's text usually arrives well ahead of its
audio (OpenAI streams the transcript as it generates; the local peer one second ahead), so the
assistant's words are revealed by how long the speaker has actually played voice, at
``pace_cps`` letters per second, never past the text received and never before the speaker
played a sound of that reply. When the turn ends (IDLE) everything received is shown; a
barge-in (LISTENING) leaves only what was heard.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal

from rtedge.controls.leds import pattern_for
from rtedge.state import State, Turn

IndicatorName = Literal["idle", "listening", "thinking", "speaking", "offline"]
INDICATOR_LABELS: Final[dict[str, str]] = {
    "idle": "Ready",
    "listening": "Listening",
    "thinking": "Thinking",
    "speaking": "Speaking",
    "offline": "Offline",
}
_WORD: Final = re.compile(r"\s*\S+")
#: Characters of a reply followed (the conversation keeps 500; a writer may keep more).
MAX_REPLY: Final = 2000
#: Characters a window may slide by between two looks (a few deltas) and still be followed.
_MAX_SLIDE: Final = 400
#: Letters a digit stands for when spoken ("7" is "seven"): keeps numbers from running ahead.
_DIGIT_WEIGHT: Final = 3


@dataclass(frozen=True, slots=True)
class Indicator:
    name: IndicatorName
    reason: str = ""

    @property
    def label(self) -> str:
        base = INDICATOR_LABELS[self.name]
        return f"{base}: {self.reason}" if self.reason else base


def indicator_for(state: State) -> Indicator:
    """The state at a glance, from the same rule as the LED (``leds.pattern_for``): the LED's
    connecting, error and off patterns are all "offline", with the reason a person can act on."""
    pattern = pattern_for(state)
    if pattern in ("idle", "listening", "thinking", "speaking"):
        return Indicator(pattern)
    if pattern == "off":
        return Indicator("offline", "stopping")
    problems = state.problems()
    return Indicator("offline", problems[0][:120] if problems else state.connection.value)


@dataclass(frozen=True, slots=True)
class CaptionView:
    """What is on screen: the user's words, the assistant's words so far, the indicator."""

    user: str
    assistant: str
    indicator: Indicator

    @property
    def empty(self) -> bool:
        return not self.user and not self.assistant


def spoken_weight(text: str) -> int:
    """Letters as spoken: digits count as short words, punctuation and spaces as nothing."""
    return sum(_DIGIT_WEIGHT if c.isdigit() else 1 for c in text if c.isalnum())


def reveal_upto(text: str, budget: float) -> int:
    """Length of the prefix of ``text`` whose words have been reached with ``budget`` spoken
    letters: a word counts once half of it has been said (it is being heard)."""
    end = 0
    acc = 0
    for m in _WORD.finditer(text):
        w = spoken_weight(m.group())
        if acc + w / 2 > budget:
            break
        acc += w
        end = m.end()
    return end


class CaptionPacer:
    """Follows ``State`` and answers what the screen should show now. ``clock`` measures the
    quiet period (seconds); ``update`` takes the audio clock (seconds played) and whether voice
    is audible at the speaker now. ``pace_cps=None`` reveals text as it arrives (the /kiosk
    page, which is text for screen readers rather than speech-synchronous captions)."""

    def __init__(
        self,
        *,
        pace_cps: float | None,
        clear_after_s: float,
        clock: Callable[[], float],
    ) -> None:
        self.pace_cps = pace_cps
        self.clear_after_s = clear_after_s
        self._clock = clock
        self._turn = Turn.IDLE
        self._user_base = ""  # transcript_user when the current exchange began: not shown
        self._reply_base = ""  # likewise transcript_assistant
        self._reply = ""  # the current reply's text as received
        self._voiced = 0.0  # seconds of voice played since the reply's text began
        self._audio_last: float | None = None
        self._revealed = 0  # characters of _reply shown
        self._heard = False  # the speaker has played voice during this reply
        self._last_change = clock()
        self._seen = ("", "")  # (user, assistant) transcripts at the last update

    def _new_exchange(self, *, user: bool) -> None:
        # What was there before this update belongs to the last exchange (a new reply's first
        # words may already be in State when the turn change is seen).
        if user:
            self._user_base = self._seen[0]
        self._reply_base = self._seen[1]
        self._reply = ""
        self._revealed = 0
        self._voiced = 0.0
        self._heard = False

    def update(self, state: State, audio_clock: float = 0.0, voice: bool = False) -> CaptionView:
        now = self._clock()
        turn = state.turn
        text = state.transcript_assistant[-MAX_REPLY:]
        if (state.transcript_user, text) != self._seen:
            self._last_change = now
        if turn is not self._turn:
            if turn is Turn.LISTENING:
                self._new_exchange(user=True)
            elif turn is Turn.THINKING and self._turn is Turn.IDLE and self._reply:
                # a reply that begins without a press (hands-free, a service's own turn)
                self._new_exchange(user=False)
            self._turn = turn
            self._last_change = now
        if text != self._reply_base and text != self._reply:
            if not text.startswith(self._reply):
                self._slide_or_restart(text)
            self._reply = text
            self._reply_base = ""
            self._last_change = now
        if self._audio_last is not None and voice and turn in (Turn.THINKING, Turn.SPEAKING):
            self._voiced += max(0.0, audio_clock - self._audio_last)
            self._heard = True
        self._audio_last = audio_clock
        self._revealed = max(self._revealed, self._reveal_target(turn))
        user = state.transcript_user if state.transcript_user != self._user_base else ""
        assistant = self._reply[: self._revealed]
        if turn is Turn.IDLE and now - self._last_change >= self.clear_after_s:
            self._user_base = state.transcript_user
            self._reply_base = text
            self._reply = ""
            self._revealed = 0
            user = assistant = ""
        self._seen = (state.transcript_user, text)
        return CaptionView(user, assistant, indicator_for(state))

    def _slide_or_restart(self, text: str) -> None:
        """``text`` does not extend the reply: either the writer's window slid (a long reply
        keeps only its last characters, its start dropped) or a new reply began."""
        old = self._reply
        for cut in range(1, min(len(old), _MAX_SLIDE) + 1):
            if text.startswith(old[cut:]):
                self._revealed = max(0, self._revealed - cut)
                if self.pace_cps:
                    self._voiced = max(0.0, self._voiced - spoken_weight(old[:cut]) / self.pace_cps)
                return
        self._revealed = 0
        self._voiced = 0.0
        self._heard = False

    def _reveal_target(self, turn: Turn) -> int:
        if not self._reply:
            return 0
        if self.pace_cps is None or turn is Turn.IDLE:
            return len(self._reply)
        if turn is Turn.LISTENING or not self._heard:
            return self._revealed  # cut off by a barge-in, or nothing heard yet
        return reveal_upto(self._reply, self._voiced * self.pace_cps)


__all__ = [
    "INDICATOR_LABELS",
    "CaptionPacer",
    "CaptionView",
    "Indicator",
    "IndicatorName",
    "indicator_for",
    "reveal_upto",
    "spoken_weight",
]
