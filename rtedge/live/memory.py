"""GPT-Live's side of the conversation memory: transcript deltas made into turns, and back.

GPT-Live's side of the conversation memory: its transcript deltas made into finished turns of
the shared History, and the history handed to each new session as ``session.input``.

Live has no done events and no response ids, so the turn boundaries are the device's own: a
reply ends when the speaking detector hears it end (``reply_ended``), a press starts a new turn
(a reply cut by it is kept as far as it got), a call that drops takes its open turn with it, and
a turn begun before the conversation was forgotten is not recorded after it.
Live takes history only at creation, so there is nothing to send to a running call: ``seed`` is
a no-op that only marks which history the session started with.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rtedge.live import events as lev
from rtedge.protocol.server import ServerEvent
from rtedge.realtime.continuity import Continuity, Mark
from rtedge.state import State, Turn

#: One turn's text at most, while it is being assembled (History clips each entry further).
MAX_PENDING_CHARS = 4000


class LiveMemory:
    def __init__(self, continuity: Continuity, state: State) -> None:
        self._continuity = continuity
        self._user: list[str] = []
        self._reply: list[str] = []
        self._turn = state.turn
        self._since = self._epoch()  # the history the open turn belongs to
        state.subscribe(self._on_state)

    # -- what was said -------------------------------------------------------------------

    def on_event(self, event: ServerEvent) -> None:
        """Every event of the current Live session."""
        if event.type == "session.input_transcript.delta":
            _add(self._user, lev.text(event, "delta"))
        elif event.type == "session.output_transcript.delta":
            _add(self._reply, lev.text(event, "delta"))

    def _on_state(self, state: State) -> None:
        if state.turn is self._turn:
            return
        self._turn = state.turn
        if state.turn is Turn.LISTENING:
            # A press: a reply cut by it is kept as far as it got; words never answered go.
            if self._reply:
                self.reply_ended()
            self._user.clear()
            self._since = self._epoch()

    def reply_ended(self) -> None:
        """The device heard the reply end: the turn (user words, then the reply) is recorded.
        User words that come after their reply go in before it (History.user)."""
        history = self._continuity.history
        user, reply = "".join(self._user).strip(), "".join(self._reply).strip()
        self._user.clear()
        self._reply.clear()
        since, self._since = self._since, self._epoch()
        if since != self._since:
            return  # asked before the conversation was forgotten: it goes with the rest
        if user and not reply:
            history.user(user)  # a late transcription of the turn just recorded
            return
        history.begin_turn()
        if user:
            history.user(user)
        history.assistant(reply)

    def drop_turn(self) -> None:
        """The open turn goes unrecorded (the call dropped)."""
        self._user.clear()
        self._reply.clear()

    def _epoch(self) -> int:
        return self._continuity.mark()[0]

    # -- what a new session starts with --------------------------------------------------

    def session_input(self) -> list[dict[str, Any]]:
        """``session.input`` for the next session: the history within Live's limits."""
        return self._continuity.history.live_input()

    # -- the supervisor's seeder (rtedge.realtime.handover.Seeder) ----------------------

    def seed(self, send: Callable[[dict[str, object]], bool]) -> Mark:
        """Nothing to send: the session got the history in its create request."""
        self._continuity.seeded_calls += 1
        return self._continuity.mark()

    def catch_up(self, send: Callable[[dict[str, object]], bool], mark: Mark) -> bool:
        return False  # no make-before-break on Live: a prepared session is never taken over

    def call_ended(self) -> None:
        self.drop_turn()
        self._continuity.call_ended()


def _add(parts: list[str], delta: str | None) -> None:
    if delta and sum(map(len, parts)) < MAX_PENDING_CHARS:
        parts.append(delta)
