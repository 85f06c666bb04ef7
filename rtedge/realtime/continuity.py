"""Conversation memory across calls: finished turns taken from the service's events, each new call
seeded with them before its first turn, and forgetting on cue (idle time, a reset, a long press).

The turn boundaries come from the device's own turn state (a press, or speech heard, starts a
turn), so this works with a service that sends none of the optional events: with no user
transcription only the replies are remembered, and a reply's text is taken from its ``.done``
event when no deltas came.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from rtedge.logs import event as log_event
from rtedge.protocol import client
from rtedge.protocol import server as ev
from rtedge.realtime.history import Clock, History
from rtedge.state import State, Turn

log = logging.getLogger(__name__)

Sender = Callable[[dict[str, Any]], bool]
#: Which history a call was seeded with: (the history's epoch, the last entry sent).
Mark = tuple[int, int]


class Continuity:
    def __init__(
        self,
        state: State,
        history: History,
        *,
        forget_after_idle_s: float | None = None,
        show_text: bool = False,
        is_unasked: Callable[[str | None], bool] = lambda rid: False,
        on_forget: Callable[[], None] | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self.history = history
        self.forget_after_idle_s = forget_after_idle_s
        self._show_text = show_text
        self._is_unasked = is_unasked
        self.on_forget = on_forget
        self._clock = clock
        self._epoch = 0
        self._turn = state.turn
        self._active_at = clock()
        self._reply: list[str] = []  # the reply in progress, from its deltas
        self._reply_done: str | None = None  # the same from its .done event
        self.seeded_calls = 0
        state.subscribe(self._on_state)

    # -- what was said -------------------------------------------------------------------

    def _on_state(self, state: State) -> None:
        if state.turn is self._turn:
            return
        self._turn = state.turn
        self._active_at = self._clock()
        if state.turn is Turn.LISTENING:
            self.history.begin_turn()

    def on_event(self, event: ev.ServerEvent) -> None:
        """Every server event of the current call, before the conversation handles it."""
        if isinstance(event, ev.InputTranscript):
            self.history.user(event.transcript)
        elif isinstance(event, ev.TextDelta):
            self._reply.append(event.delta)
        elif isinstance(event, ev.TextDone):
            self._reply_done = event.transcript or event.text
        elif isinstance(event, ev.ResponseCreated):
            self._reply, self._reply_done = [], None
        elif isinstance(event, ev.ResponseDone):
            rid = event.response.id if event.response else None
            text = "".join(self._reply) or self._reply_done or ""
            self._reply, self._reply_done = [], None
            if not self._is_unasked(rid):
                self.history.assistant(text)
        elif isinstance(event, ev.FunctionCallDone):
            self.history.tool_call(event.name, "not available on this device")

    # -- seeding -------------------------------------------------------------------------

    def seed(self, send: Sender) -> Mark:
        """Create the history in a new call's conversation (before its first turn)."""
        self.seeded_calls += 1
        items = self.history.realtime_items()
        for item in items:
            send(client.create_item(item))
        if items:
            log_event(
                log,
                logging.INFO,
                "seeded",
                "new call seeded with %d earlier items",
                len(items),
                items=len(items),
            )
        return self._epoch, self.history.last_seq

    def catch_up(self, send: Sender, mark: Mark) -> bool:
        """A call seeded earlier (make-before-break) is about to take over: send what was said
        since. False when the history was forgotten since: that call must not be used."""
        epoch, seq = mark
        if epoch != self._epoch:
            return False
        for item in self.history.realtime_items(after_seq=seq):
            send(client.create_item(item))
        return True

    def call_ended(self) -> None:
        """The call is gone: a reply cut off with it, and its turn, are not carried over."""
        self._reply, self._reply_done = [], None
        self.history.drop_open_turn()

    # -- forgetting ----------------------------------------------------------------------

    def forget(self, why: str) -> bool:
        """Forget everything and ask for a new session (the service still holds the old
        conversation). True when there was anything to forget."""
        had = self.history.forget()
        self._epoch += 1
        self._reply, self._reply_done = [], None
        log_event(
            log,
            logging.INFO,
            "forgotten",
            "conversation forgotten (%s)%s",
            why,
            "" if had else "; it was empty",
            why=why,
        )
        if self.on_forget is not None:
            self.on_forget()
        return had

    def idle_due(self) -> bool:
        """``forget_after_idle_s`` passed since the last turn ended, with something held."""
        limit = self.forget_after_idle_s
        if not limit or not len(self.history) or self._turn is not Turn.IDLE:
            return False
        last = max(self._active_at, self.history.last_at or 0.0)
        return self._clock() - last >= limit

    async def run(self) -> None:
        """Forget after ``forget_after_idle_s`` of idleness; returns at once when that is off."""
        limit = self.forget_after_idle_s
        if not limit:
            return
        interval = min(1.0, limit / 4)
        while True:
            await asyncio.sleep(interval)
            if self.idle_due():
                self.forget("idle")

    def summary(self) -> dict[str, Any]:
        out = self.history.summary(with_text=self._show_text)
        out["forget_after_idle_s"] = self.forget_after_idle_s
        return out

    def add_routes(self, app: web.Application) -> None:
        """``POST /conversation/reset``: forget now (the health server's guard applies)."""

        async def reset(_: web.Request) -> web.Response:
            had = self.forget("reset")
            return web.json_response({"forgotten": had, "items": len(self.history)})

        app.router.add_post("/conversation/reset", reset)
