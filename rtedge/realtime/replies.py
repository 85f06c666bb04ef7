"""One reply per press, with services that start replies of their own.

Some servers run their own VAD although push-to-talk sets ``turn_detection: null``: they commit
the user's audio and start a response when the user pauses (while the button is still held) or
soon after the release, alongside the one rtedge asks for. Played, those are a second answer to
the same question, or a stale reply to nothing played over the real one.

Each ``response.create`` we send is a credit; a ``response.created`` takes one. A response that
finds no credit was not asked for:

- while the button is held, it answers half a question: cancel it (the user is still talking);
- after the release but before our commit went out, the service answered the turn first: keep
  it as this press's reply and send neither commit nor ``response.create`` (one reply);
- otherwise (the service's VAD reacting after ours was made): cancel it by id, and, when no
  reply of ours is still being generated, clear the output buffer so its audio never plays.

Best-effort events (``input_audio_buffer.clear``, ``response.cancel``,
``output_audio_buffer.clear``) carry an ``event_id`` kept here: a service that answers one with an
error ("nothing to cancel", "not supported") is ignored quietly rather than logged as a fault.
"""

from __future__ import annotations

import itertools
from collections import deque
from typing import Literal

Verdict = Literal["accept", "take_over", "cancel", "cancel_and_clear"]

#: Event ids of best-effort events remembered (each press sends at most three).
BEST_EFFORT_KEPT = 32


class ReplyPolicy:
    def __init__(self) -> None:
        self._credits = 0
        self.unasked_cancelled = 0
        self._ids = itertools.count(1)
        self._best_effort: deque[str] = deque(maxlen=BEST_EFFORT_KEPT)

    def reset(self) -> None:
        """A new call, or a new press: earlier asks will not be answered any more."""
        self._credits = 0

    def asked(self) -> None:
        self._credits += 1

    def refused(self) -> None:
        """The service refused our ``response.create`` (one of its own is active)."""
        self._credits = max(0, self._credits - 1)

    def on_created(self, *, held: bool, commit_pending: bool, ours_generating: bool) -> Verdict:
        if self._credits > 0 and not held:
            self._credits -= 1
            return "accept"
        if held:
            self.unasked_cancelled += 1
            return "cancel"
        if commit_pending:
            return "take_over"
        self.unasked_cancelled += 1
        return "cancel" if ours_generating else "cancel_and_clear"

    def best_effort_id(self) -> str:
        event_id = f"rtedge_be_{next(self._ids)}"
        self._best_effort.append(event_id)
        return event_id

    def is_best_effort(self, event_id: object) -> bool:
        return isinstance(event_id, str) and event_id in self._best_effort


__all__ = ["ReplyPolicy", "Verdict"]
