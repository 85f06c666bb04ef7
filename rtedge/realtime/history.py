"""The conversation so far as text, in memory only: bounded, and shaped to seed a new session.

Only finished turns are kept: a user's words wait with the turn until its reply ends, so a turn
in progress when a call drops is not carried over (the new call would otherwise answer it again).
Nothing here is ever written to disk; ``summary`` shows counts and ages, text only when asked.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Literal

Role = Literal["user", "assistant"]
Clock = Callable[[], float]

#: One entry's text at most: a runaway reply or transcript must not fill the history alone.
MAX_ENTRY_CHARS: Final = 1000
#: GPT-Live's ``session.input`` limits (PROTOCOL-LIVE.md §2.7): messages, rendered tokens.
LIVE_MAX_MESSAGES: Final = 128
LIVE_MAX_TOKENS: Final = 8192
#: Rendered tokens a message costs beyond its text (role and framing), an upper estimate.
LIVE_MESSAGE_OVERHEAD_TOKENS: Final = 8
#: What a Live session is told about the history it starts with, as its first (developer) item:
#: the instructions stay the session's own; this only says how to treat what follows.
LIVE_PREAMBLE: Final = (
    "The messages that follow are the conversation so far, carried over from the previous "
    "session on this device. Continue it as the same conversation; do not repeat earlier replies."
)


def estimate_tokens(text: str) -> int:
    """An upper estimate of a text's tokens: English runs about four characters a token, so
    three keeps a margin for short words, digits and punctuation."""
    return (len(text) + 2) // 3


@dataclass(frozen=True, slots=True)
class Entry:
    seq: int
    role: Role
    text: str
    at: float


class History:
    def __init__(
        self, max_items: int = 40, max_chars: int = 6000, clock: Clock = time.monotonic
    ) -> None:
        self.max_items = max_items
        self.max_chars = max_chars
        self._clock = clock
        self._seq = itertools.count(1)
        self._entries: deque[Entry] = deque()
        self._chars = 0
        self._user: list[str] = []  # the open turn's words, waiting for its reply
        self._notes: list[str] = []  # the open turn's tool calls, as text
        self._answered = False  # the last turn was committed without the user's words
        self.forgotten = 0  # times forget() emptied a non-empty history
        self.trimmed = 0  # entries dropped from the old end to stay in bounds

    # -- recording -----------------------------------------------------------------------

    def begin_turn(self) -> None:
        """A new turn starts (a press, or speech heard hands-free): words of an earlier turn
        that never got a reply are dropped (nothing answered them, nothing will)."""
        self._user.clear()
        self._notes.clear()
        self._answered = False

    def user(self, text: str) -> None:
        """The user's words (a transcription). A transcription may arrive after the reply it
        led to: then it goes in before that reply."""
        text = _clip(text)
        if not text:
            return
        if self._answered and self._entries and self._entries[-1].role == "assistant":
            last = self._entries.pop()
            self._chars -= len(last.text)
            self._append("user", text)
            self._append("assistant", last.text)
            self._trim()
            return
        self._user.append(text)

    def tool_call(self, name: str | None, outcome: str) -> None:
        self._notes.append(f"[tool {name or 'unnamed'}: {outcome}]")

    def assistant(self, text: str) -> None:
        """A reply ended: the turn it answers is committed, user words first (the pieces a
        service transcribed separately, say its own VAD's commit and ours, as one message)."""
        said = " ".join([*self._notes, text.strip()]).strip()
        if not said and not self._user:
            return
        self._answered = not self._user
        if self._user:
            self._append("user", _clip(" ".join(self._user)))
        if said:
            self._append("assistant", _clip(said))
        self._user.clear()
        self._notes.clear()
        self._trim()

    def drop_open_turn(self) -> None:
        """The call ended: a turn without its reply is not carried into the next call."""
        self._user.clear()
        self._notes.clear()

    def forget(self) -> bool:
        """Empty it all; True when there was anything to forget."""
        had = bool(self._entries or self._user or self._notes)
        self._entries.clear()
        self._chars = 0
        self.drop_open_turn()
        self._answered = False
        if had:
            self.forgotten += 1
        return had

    # -- reading -------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def last_seq(self) -> int:
        return self._entries[-1].seq if self._entries else 0

    @property
    def last_at(self) -> float | None:
        return self._entries[-1].at if self._entries else None

    def entries(self, after_seq: int = 0) -> list[Entry]:
        return [e for e in self._entries if e.seq > after_seq]

    def summary(self, with_text: bool = False) -> dict[str, Any]:
        """For ``/status``: counts and ages; the text only when transcripts may be shown."""
        now = self._clock()
        out: dict[str, Any] = {
            "items": len(self._entries),
            "chars": self._chars,
            "oldest_age_s": round(now - self._entries[0].at, 1) if self._entries else None,
            "newest_age_s": round(now - self._entries[-1].at, 1) if self._entries else None,
            "forgotten": self.forgotten,
            "trimmed": self.trimmed,
        }
        if with_text:
            out["text"] = [{"role": e.role, "text": e.text} for e in self._entries]
        return out

    def realtime_items(self, after_seq: int = 0) -> list[dict[str, Any]]:
        """Conversation items (Realtime API, GA shape) for the entries after ``after_seq``:
        text only, the user's audio is not re-sent."""
        return [_realtime_item(e) for e in self.entries(after_seq)]

    def live_input(
        self,
        max_messages: int = LIVE_MAX_MESSAGES,
        max_tokens: int = LIVE_MAX_TOKENS,
        preamble: str | None = LIVE_PREAMBLE,
    ) -> list[dict[str, Any]]:
        """GPT-Live's ``session.input``: a developer preamble, then as many of the newest entries
        as fit ``max_messages`` and ``max_tokens`` (oldest dropped first). The preamble always
        stays; it does not restate or replace the session's instructions."""
        head: list[dict[str, Any]] = []
        budget_msgs, budget_tokens = max_messages, max_tokens
        if preamble and self._entries:
            head.append(_live_message("developer", preamble))
            budget_msgs -= 1
            budget_tokens -= estimate_tokens(preamble) + LIVE_MESSAGE_OVERHEAD_TOKENS
        kept: list[dict[str, Any]] = []
        for entry in reversed(self._entries):
            cost = estimate_tokens(entry.text) + LIVE_MESSAGE_OVERHEAD_TOKENS
            if budget_msgs <= 0 or cost > budget_tokens:
                break
            kept.append(_live_message(entry.role, entry.text))
            budget_msgs -= 1
            budget_tokens -= cost
        if not kept:
            return []
        return head + kept[::-1]

    # -- bounds --------------------------------------------------------------------------

    def _append(self, role: Role, text: str) -> None:
        self._entries.append(Entry(next(self._seq), role, text, self._clock()))
        self._chars += len(text)

    def _trim(self) -> None:
        while self._entries and (
            len(self._entries) > self.max_items or self._chars > self.max_chars
        ):
            gone = self._entries.popleft()
            self._chars -= len(gone.text)
            self.trimmed += 1


def _clip(text: str) -> str:
    text = " ".join(text.split())
    if len(text) > MAX_ENTRY_CHARS:
        return text[: MAX_ENTRY_CHARS - 1] + "\u2026"
    return text


def _realtime_item(entry: Entry) -> dict[str, Any]:
    part = "input_text" if entry.role == "user" else "output_text"
    return {
        "type": "message",
        "role": entry.role,
        "content": [{"type": part, "text": entry.text}],
    }


def _live_message(role: str, text: str) -> dict[str, Any]:
    part = "output_text" if role == "assistant" else "input_text"
    return {"type": "message", "role": role, "content": [{"type": part, "text": text}]}
