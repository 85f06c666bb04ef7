"""Push-to-talk, barge-in, turn state and transcripts on GPT-Live.

Live has no turn machinery and sends no speaking events, so the device leans on its own senses:
the mic is gated locally and the input muted at the service while the button is up (acks matched
by ``client_event_id``); a press while the assistant is audible flushes the local playout at once
and holds the service's audio until release and quiet; the turn state follows the local speaking
detector. Transcript deltas are hints, shown and logged. Delegations are answered by
rtedge.live.delegation.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Literal, Protocol

from rtedge.live import events as lev
from rtedge.live.delegation import LiveDelegation, ToolRunner
from rtedge.live.usage import LiveUsage
from rtedge.logs import event as log_event
from rtedge.protocol.server import ServerEvent
from rtedge.realtime.turnkeeper import TurnKeeper
from rtedge.state import State, Turn
from rtedge.timers import Timers

log = logging.getLogger(__name__)

Sender = Callable[[dict[str, Any]], bool]
MAX_TEXT = 500
#: A hands-free barge-in on Live: the cut reply's stream has yielded once it is quiet this long
#: (longer than a pause between words or sentences of a voice, shorter than the user's question
#: plus the model's own end-of-turn silence), or at the latest after YIELD_HOLDOFF_S.
YIELD_QUIET_S = 0.5
YIELD_HOLDOFF_S = 3.0


class LiveAudio(Protocol):
    talking: bool

    def flush(self, quiet_s: float = 0.0, holdoff_s: float | None = None) -> None: ...

    def hold_output(self, held: bool) -> None: ...

    def earcon(self, name: Literal["press", "release"]) -> None: ...


class LiveConversation(TurnKeeper):
    _log = log

    def __init__(
        self,
        state: State,
        audio: LiveAudio,
        usage: LiveUsage,
        *,
        log_transcripts: bool = True,
        run_tool: ToolRunner | None = None,
        on_reply_end: Callable[[], None] | None = None,
        timers: Timers | None = None,
    ) -> None:
        super().__init__(state, audio, timers)
        self.on_reply_end = on_reply_end  # the conversation memory records the turn
        self._audio = audio
        self.usage = usage
        self._log_transcripts = log_transcripts
        self.delegation = LiveDelegation(state, self._command, run_tool)
        self._send: Sender | None = None
        self._seq = 0
        self.voice = False
        self.muted: bool | None = None  # as acknowledged by the service
        self.pending: dict[str, str] = {}  # client_event_id -> command type, until acked
        self._user_text: list[str] = []
        self._assistant_text: list[str] = []
        self.tools_pending = 0
        self._reply_open = False
        self._hands_free_turn = False
        #: Called when the model's answer is heard while a hands-free turn is still open.
        self.on_answer_in_turn: Callable[[], None] | None = None
        audio.talking = False

    # -- call attachment (the supervisor) ---------------------------------------------------
    def attach(self, send: Sender) -> None:
        self._send = send
        self.muted = None
        self.pending.clear()
        self.delegation.reset()
        self.tools_pending = 0
        self._set_mute(not self.held)
        self._set_turn(Turn.LISTENING if self.held else Turn.IDLE)

    def configure(self, send: Sender) -> None:
        """A prepared call (make-before-break): nothing to send, a Live session is configured
        by its create request."""

    def abandon(self) -> None:
        """A long press forgets the conversation: on Live that is a new session (the renewal
        the continuity part asks for); nothing in flight here to drop."""

    def unasked(self, rid: str | None) -> bool:
        return False  # Live has no response ids: every reply is the model's own

    def detach(self) -> None:
        self._send = None
        self.pending.clear()
        if not self.held:
            self._set_turn(Turn.IDLE)

    @property
    def playing(self) -> bool:
        return self.voice

    @property
    def quiet(self) -> bool:
        """Nothing in flight: the session can be rotated without cutting a turn."""
        return (
            not self.held
            and not self.voice
            and self.tools_pending == 0
            and self._state.turn is Turn.IDLE
        )

    # -- push-to-talk ------------------------------------------------------------------------
    def press(self, *, button: bool = True) -> None:
        """The user's turn: the button, or (``button=False``) a hands-free turn whose capture
        gate is already open (rtedge.controls.handsfree_live: no earcon, no ptt_held)."""
        if button:
            if not self._button(True):
                return
        elif self.held:
            return
        else:
            self.held = True
        self._hands_free_turn = not button
        if self.voice:
            log_event(log, logging.INFO, "barge_in", "barge-in: reply cut by a press")
        # What is audible stops now. The button holds what is in flight until release and
        # quiet; a hands-free turn has no release to wait for (its end is the device's own
        # silence timer, later than the model's): the reply cut stays muted until its stream
        # goes quiet (the model yields), and the answer plays as soon as it comes. Quiet is a
        # run longer than the pauses inside a reply: the model yields only once it hears the
        # user, and a pause taken for its yield let the rest of the reply play, which then
        # passed for the answer and ended the user's turn before the model had heard it.
        if button:
            self._audio.flush()
            self._audio.hold_output(True)
        else:
            self._audio.flush(YIELD_QUIET_S, YIELD_HOLDOFF_S)
        self.voice = False
        self._user_text.clear()  # a new user turn
        self._audio.talking = button
        self._set_mute(False)
        self._set_turn(Turn.LISTENING)
        if self._send is None:
            log.warning("push-to-talk pressed while not connected: speech will not be sent")

    def release(self, *, button: bool = True, heard: bool = True) -> None:
        """``heard=False``: a hands-free turn in which nobody spoke (idle, not thinking)."""
        if button:
            if not self._button(False):
                return
            self._audio.hold_output(False)
        elif not self.held:
            return
        else:
            self.held = False
        self._audio.talking = False
        self._set_mute(True)
        # The model decides when to answer; until voice is heard the device is thinking.
        if not heard or self._send is None:
            self._set_turn(Turn.IDLE)
        else:
            self._set_turn(Turn.SPEAKING if self.voice else Turn.THINKING)
        self._reply_open = False

    def _set_mute(self, muted: bool) -> None:
        etype = "session.input_audio.mute" if muted else "session.input_audio.unmute"
        self._command({"type": etype})

    def _command(self, event: dict[str, Any]) -> str | None:
        if self._send is None:
            return None
        self._seq += 1
        event_id = f"rtedge_{self._seq}"
        if self._send({**event, "event_id": event_id}):
            self.pending[event_id] = str(event["type"])
            while len(self.pending) > 64:  # a service that never acks must not grow this
                self.pending.pop(next(iter(self.pending)))
            return event_id
        return None

    # -- the speaking detector -----------------------------------------------------------------
    def on_voice(self, speaking: bool) -> None:
        self.voice = speaking
        if self.held:
            if speaking and self._hands_free_turn and self.on_answer_in_turn is not None:
                self.on_answer_in_turn()  # the model took its turn: the user's is over
            return
        if speaking:
            self._set_turn(Turn.SPEAKING)
        elif self._state.turn is Turn.SPEAKING:
            self._set_turn(Turn.IDLE)
            self._log_reply()
            if self.on_reply_end is not None:
                self.on_reply_end()

    def _log_reply(self) -> None:
        # One line per reply (deltas come a word at a time; there is no done event on Live).
        text = "".join(self._assistant_text).strip()
        if self._log_transcripts and text:
            log_event(log, logging.INFO, "transcript", "assistant: %s", text, role="assistant")

    # -- server events ---------------------------------------------------------------------
    def on_event(self, event: ServerEvent) -> None:
        self._state.events_in[event.type] += 1
        handler = _HANDLERS.get(event.type)
        if handler is not None:
            handler(self, event)

    def _on_ack(self, event: ServerEvent) -> None:
        eid = lev.client_event_id(event)
        if eid is not None:
            self.pending.pop(eid, None)
            self.delegation.on_ack(eid)
        if event.type == "session.input_audio.muted":
            self.muted = True
        elif event.type == "session.input_audio.unmuted":
            self.muted = False

    def _on_input_transcript(self, event: ServerEvent) -> None:
        delta = lev.text(event, "delta")
        if not delta:
            return
        self._user_text.append(delta)
        text = "".join(self._user_text)[-MAX_TEXT:]
        self._state.update(transcript_user=text)
        if self._log_transcripts:
            log_event(log, logging.INFO, "transcript", "user: %s", delta, role="user")

    def _on_output_transcript(self, event: ServerEvent) -> None:
        delta = lev.text(event, "delta")
        if not delta:
            return
        if not self._reply_open:  # the first words after the user's turn: a new reply
            self._assistant_text.clear()
            self._reply_open = True
        self._assistant_text.append(delta)
        text = "".join(self._assistant_text)[-MAX_TEXT:]
        self._state.update(transcript_assistant=text)

    def _on_usage(self, event: ServerEvent) -> None:
        seconds = lev.number(event, "usage", "seconds")
        ratio = lev.number(event, "context_window", "usage_ratio")
        self.usage.update(seconds, ratio)

    def _on_closed(self, event: ServerEvent) -> None:
        self.usage.update(lev.number(event, "usage", "seconds"), None)

    def _on_error(self, event: ServerEvent) -> None:
        eid = lev.client_event_id(event)
        command = self.pending.pop(eid, None) if eid else None
        self.delegation.on_error(eid)
        code = lev.text(event, "error", "code") or "unknown"
        message = lev.text(event, "error", "message")
        self._log_service_error(code, f" (to {command})" if command else "", message)

    def _on_delegation(self, event: ServerEvent) -> None:
        self.delegation.on_created(event)

    def _on_response_event(self, event: ServerEvent) -> None:
        self.delegation.on_response_event(event)


_HANDLERS: dict[str, Callable[[LiveConversation, ServerEvent], None]] = {
    "session.input_audio.muted": LiveConversation._on_ack,
    "session.input_audio.unmuted": LiveConversation._on_ack,
    "session.instructions.appended": LiveConversation._on_ack,
    "session.thinking.appended": LiveConversation._on_ack,
    "session.commentary.appended": LiveConversation._on_ack,
    "session.updated": LiveConversation._on_ack,
    "session.input_transcript.delta": LiveConversation._on_input_transcript,
    "session.output_transcript.delta": LiveConversation._on_output_transcript,
    "session.usage.updated": LiveConversation._on_usage,
    "session.closed": LiveConversation._on_closed,
    "response.event": LiveConversation._on_response_event,
    "session.delegation.created": LiveConversation._on_delegation,
    "error": LiveConversation._on_error,
}
